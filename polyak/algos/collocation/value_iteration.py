"""The reference for the Euler-equation method: value iteration on a fine grid of the controlled state.

For an Euler-class env (s1' = alpha s1 + beta a + delta, s2' ~ P[s2, :]) the action is implied by the next
controlled state, a = (s1' - alpha s1 - delta) / beta, so the maximisation runs over next states on the grid
itself: no interpolation of V, and the grid's ends are the domain's bounds (the env's clip of s1' to [0, 1]).

    grid s1_0 < ... < s1_{M-1};   a_ij = (s1_j - alpha s1_i - delta) / beta;   a_ij outside the box: excluded
    W(j, k)    = sum_k' P[k, k'] V(j, k')                                       E V(s1_j, s2') given s2 = k
    (T V)(i, k) = max_j  r(s1_i, k, a_ij) + gamma W(j, k)                        the Bellman optimality backup
Modified policy iteration: each backup (greedy next states j*(i, k)) is followed by `sweeps` evaluation sweeps
V <- r(., ., a_{i j*}) + gamma W(j*, .) of that greedy choice; it stops when the backup changes V by at most
`tol` (then |V - V*| <= gamma tol / (1 - gamma)). Computed in float64 (`jax.enable_x64`): neighbouring next
states differ in Q by ~ r_aa h^2 / beta^2, below float32's resolution of V on a fine grid.

The policy is refined below the grid spacing h: a parabola through Q at j* - 1, j*, j*+1 (the next state's
offset is h (Q_- - Q_+) / (2 (Q_- - 2 Q_0 + Q_+)), within +-h/2), so its error is set by V's accuracy, not by
h / beta. `interior` says whether the optimum is interior (away from the grid's ends and the action box)
at every state: what the Euler equation needs.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from polyak.envs.storage import EulerClassEnv


class GridSolution(NamedTuple):
    s1: np.ndarray  # (M,) the grid of the controlled state
    levels: np.ndarray  # (K,) the observed level of each exogenous state
    value: np.ndarray  # (M, K) V*
    policy: np.ndarray  # (M, K) the optimal action, refined below the grid spacing
    interior: np.ndarray  # (M, K) the best next state is not at a grid end and the action is inside the box
    backups: int  # Bellman backups (policy improvements) until convergence
    bellman_residual: float  # |T V - V| at the last backup

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions (n, 1) for observations (n, 2) = (s1, level of s2): linear interpolation in s1."""
        obs = np.atleast_2d(np.asarray(obs, np.float64))
        k = np.argmin(np.abs(obs[:, 1:2] - self.levels[None]), axis=1)
        return np.stack([np.interp(s, self.s1, self.policy[:, j]) for s, j in zip(obs[:, 0], k)])[:, None]

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """The model API's predict (so `polyak.evaluation.evaluate_policy` runs it): (action, None)."""
        single = np.ndim(observation) == 1
        action = self.act(observation).astype(np.float32)
        return (action[0] if single else action), None


def solve_on_grid(env: EulerClassEnv, params: Any, gamma: float, n_grid: int = 2001, tol: float = 1e-10,
                  sweeps: int = 100, max_backups: int = 1000) -> GridSolution:
    """V* and the optimal policy of an Euler-class env on an n_grid-point grid of s1 (see the module docstring)."""
    if not 0 < gamma < 1:
        raise ValueError(f"gamma must be in (0, 1), got {gamma}")
    if n_grid < 3:
        raise ValueError(f"n_grid must be >= 3, got {n_grid}")
    with jax.enable_x64(True):
        s1, levels, V, policy, interior, backups, residual = _solve(env, int(n_grid), float(gamma), float(tol),
                                                                    int(sweeps), int(max_backups), params)
        return GridSolution(np.asarray(s1), np.asarray(levels), np.asarray(V), np.asarray(policy),
                            np.asarray(interior), int(backups), float(residual))


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _solve(env: EulerClassEnv, n_grid: int, gamma: float, tol: float, sweeps: int, max_backups: int, params):
    m = env.euler_model(params)
    s1 = jnp.linspace(m.s1_low, m.s1_high, n_grid)
    K = m.levels.shape[0]
    a = (s1[None, :] - m.alpha * s1[:, None] - m.delta) / m.beta  # a_ij: from s1_i to s1_j
    reward = jax.vmap(jax.vmap(jax.vmap(env.reward, (None, None, 0, None)), (None, 0, None, None)),
                      (0, None, 0, None))(s1, jnp.arange(K), a, params)  # r(s1_i, k, a_ij): (M, K, M)
    feasible = (a >= m.action_low) & (a <= m.action_high)
    reward = jnp.where(feasible[:, None, :], reward, -jnp.inf)
    V, backups, residual, Q = _modified_policy_iteration(reward, m.transition, gamma, tol, sweeps, max_backups)
    j = jnp.argmax(Q, axis=-1)  # (M, K) the best next state
    q0 = jnp.take_along_axis(Q, j[..., None], -1)[..., 0]
    qm = jnp.take_along_axis(Q, jnp.maximum(j - 1, 0)[..., None], -1)[..., 0]
    qp = jnp.take_along_axis(Q, jnp.minimum(j + 1, n_grid - 1)[..., None], -1)[..., 0]
    inner = (j > 0) & (j < n_grid - 1) & jnp.isfinite(qm) & jnp.isfinite(qp)
    curvature = qm - 2.0 * q0 + qp
    offset = jnp.where(inner & (curvature < 0), 0.5 * (qm - qp) / jnp.where(curvature < 0, curvature, -1.0), 0.0)
    h = (m.s1_high - m.s1_low) / (n_grid - 1)
    s1_next = s1[j] + jnp.clip(offset, -0.5, 0.5) * h
    policy = (s1_next - m.alpha * s1[:, None] - m.delta) / m.beta
    interior = inner & (policy > m.action_low) & (policy < m.action_high)
    return s1, m.levels, V, policy, interior, backups, residual


def _modified_policy_iteration(reward: jax.Array, P: jax.Array, gamma: float, tol: float, sweeps: int,
                               max_backups: int):
    """(V, backups, |T V - V|, Q) by modified policy iteration on reward (M, K, M) and P (K, K)."""
    M, K, _ = reward.shape

    def q_values(V):
        W = V @ P.T  # W(j, k) = sum_k' P[k, k'] V(j, k')
        return reward + gamma * W.T[None]  # Q(i, k, j) = r(s1_i, k, a_ij) + gamma W(j, k)

    def evaluate(V, j):
        r = jnp.take_along_axis(reward, j[..., None], -1)[..., 0]  # r of the greedy choice (M, K)
        sweep = lambda V, _: (r + gamma * (V @ P.T)[j, jnp.arange(K)[None, :]], None)  # noqa: E731
        return jax.lax.scan(sweep, V, None, length=sweeps)[0]

    def body(carry):
        V, n, _ = carry
        Q = q_values(V)
        TV = Q.max(axis=-1)  # the Bellman optimality backup
        return evaluate(TV, jnp.argmax(Q, axis=-1)), n + 1, jnp.max(jnp.abs(TV - V))

    def running(carry):
        return (carry[2] > tol) & (carry[1] < max_backups)

    V0 = jnp.zeros((M, K), reward.dtype)
    V, n, residual = jax.lax.while_loop(running, body, (V0, jnp.zeros((), jnp.int32), jnp.asarray(jnp.inf, reward.dtype)))
    return V, n, residual, q_values(V)


__all__ = ["GridSolution", "solve_on_grid"]
