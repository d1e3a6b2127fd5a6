"""Returns, written once: n-step rows for replay buffers, GAE and reward-to-go for rollouts, d-step segments for
path consistency (pure JAX).

Every function respects episode boundaries as `losses.bootstrap_target` states them: a termination
stops the return and its bootstrap; a time-limit truncation stops the sum and bootstraps from the
*true* final observation (stored as next_obs, never the auto-reset one). No sum crosses an episode.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from polyak.core.losses import bootstrap_target
from polyak.core.types import NStepTransition

# --------------------------------------------------------------------------------------------
# n-step returns for replay buffers: a small window per env, before rows are written.
# --------------------------------------------------------------------------------------------


class NStepWindow(NamedTuple):
    """The last n one-step transitions of each env (oldest first, slot n-1 the newest), not yet
    complete as n-step rows. Leading dimensions (n_envs, n); lives in the learner and is saved with it."""

    obs: Any  # (n_envs, n, obs_dim)
    action: Any  # (n_envs, n, act_dim)
    reward: Any  # (n_envs, n)
    count: Any  # (n_envs,) int32: how many of the newest slots belong to the running episode


def nstep_init(n_envs: int, n: int, obs_dim: int, act_dim: int) -> NStepWindow:
    return NStepWindow(jnp.zeros((n_envs, n, obs_dim)), jnp.zeros((n_envs, n, act_dim)), jnp.zeros((n_envs, n)),
                       jnp.zeros((n_envs,), jnp.int32))


def nstep_push(window: NStepWindow, rows, truncated, valid, gamma: float):
    """Add one step of one-step transitions (a `Transition` per env) and return the n-step rows it completes.

    Slot i of the window, after the push, starts a row that sums the rewards of slots i..n-1:
        G_i = sum_{j=i}^{n-1} gamma^(j-i) r_j,   next_obs = s' of the newest step,   discount = gamma^(n-i).
    A row is written when it holds n rewards (slot 0 of a full window), or when the episode ends at
    this step, which flushes every slot of the episode:
      * termination: the sum stops there and `terminated` = 1, so the target does not bootstrap;
      * time-limit truncation: the sum stops there and the target bootstraps from the true final
        observation with gamma^k, k < n the rewards summed.
    Rows with valid=False (the reset step of NEXT_STEP vector envs) leave the window unchanged.

    Returns (window, out, out_valid): `out` an `NStepTransition` of n_envs * n candidate rows (env by
    env, oldest first), `out_valid` which of them to write. Pure and jittable.
    """
    n = window.reward.shape[1]
    slot = np.arange(n)
    power = slot[None, :] - slot[:, None]  # j - i
    weights = jnp.asarray(np.where(power >= 0, float(gamma) ** np.maximum(power, 0), 0.0), jnp.float32)
    discount = jnp.asarray(float(gamma) ** (n - slot), jnp.float32)

    def push_one(w: NStepWindow, row, truncated, valid):
        shift = lambda old, new: jnp.concatenate([old[1:], new[None].astype(old.dtype)])  # noqa: E731
        obs, action, reward = shift(w.obs, row.obs), shift(w.action, row.action), shift(w.reward, row.reward)
        count = jnp.minimum(w.count + 1, n)
        returns = jnp.sum(weights * reward[None, :], axis=1)  # G_i (elementwise: exact float32 on any device)
        terminated = row.terminated > 0
        done = terminated | (truncated > 0)
        in_episode = slot >= n - count
        emit = (valid > 0) & in_episode & (done | ((slot == 0) & (count == n)))
        out = NStepTransition(obs, action, returns, jnp.broadcast_to(row.next_obs, obs.shape),
                              jnp.broadcast_to(row.terminated, (n,)).astype(returns.dtype), discount)
        keep = valid > 0
        new = NStepWindow(obs, action, reward, jnp.where(done, 0, count).astype(jnp.int32))
        w = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, w)
        return w, out, emit

    window, out, emit = jax.vmap(push_one)(window, rows, truncated, valid)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    return window, jax.tree.map(flat, out), flat(emit)


def nstep_clear(window: NStepWindow) -> NStepWindow:
    """Forget the pending steps (the environments start new episodes)."""
    return window._replace(count=window.count * 0)


# --------------------------------------------------------------------------------------------
# Advantages and returns over a rollout (on-policy methods). Arrays have shape (T, n_envs);
# row t holds the transition (s_t, a_t, r_t, s'_t), s'_t the *true* next observation.
# --------------------------------------------------------------------------------------------


def gae_advantages(reward, value, next_value, terminated, episode_end, gamma: float, lam: float):
    """Generalised advantage estimation, GAE(gamma, lambda), over a (T, n_envs) rollout.

        delta_t = r_t + gamma (1 - terminated_t) V(s'_t) - V(s_t)
        A_t     = delta_t + gamma lambda (1 - end_t) A_{t+1},      A_T = 0

    `next_value` is V of the true next observation, so a time-limit cut (end_t without
    terminated_t) bootstraps from the final observation, a termination does not, and the recursion
    never crosses an episode boundary. The last row bootstraps from V(s'_{T-1}) (the rollout cut).
    lambda = 1 gives Monte-Carlo advantages G_t - V(s_t) (bootstrapped at cuts); lambda = 0 the
    one-step TD error. Returns (advantages, returns = advantages + value), both (T, n_envs).
    """
    delta = bootstrap_target(reward, terminated, gamma, next_value) - value
    not_end = 1.0 - episode_end.astype(delta.dtype)

    def backward(next_advantage, x):
        delta_t, not_end_t = x
        advantage = delta_t + gamma * lam * not_end_t * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(delta[0]), (delta, not_end), reverse=True)
    return advantages, advantages + value


def reward_to_go(reward, terminated, episode_end, gamma: float, cut_value=None):
    """Discounted reward-to-go G_t = r_t + gamma (1 - end_t) G_{t+1} over a (T, n_envs) rollout.

    At a cut that is not a termination (a time limit, or the rollout's last row) the sum is
    bootstrapped with `cut_value` (V of the true next observation), or stops there when
    `cut_value` is None (REINFORCE without a critic: the cut tail is then treated as an episode
    end; `complete_episodes` marks the rows whose episode ended inside the rollout).
    """
    last_row = jnp.zeros_like(reward, dtype=bool).at[-1].set(True)
    cut = (episode_end.astype(bool) | last_row) & ~terminated.astype(bool)
    bootstrap = jnp.zeros_like(reward) if cut_value is None else jnp.where(cut, cut_value, 0.0)
    # GAE with V = 0 inside episodes and lambda = 1 is exactly the discounted sum.
    returns, _ = gae_advantages(reward, jnp.zeros_like(reward), bootstrap, terminated, episode_end, gamma, 1.0)
    return returns


def complete_episodes(episode_end):
    """(T, n_envs) bool: row t's episode ends at some row >= t of the same env inside the rollout."""
    def backward(later_end, end_t):
        complete = end_t | later_end
        return complete, complete

    _, complete = jax.lax.scan(backward, jnp.zeros_like(episode_end[0], dtype=bool), episode_end.astype(bool),
                               reverse=True)
    return complete


# --------------------------------------------------------------------------------------------
# d-step segments of a trajectory (PCL): for every start row i of a time-major (T, ...) trajectory,
# which rows i..i+d-1 belong to the segment that starts there; a segment stops after a row where the
# episode ends (its last row's `terminated` then says whether to bootstrap) and at the trajectory's last row.
# --------------------------------------------------------------------------------------------


class Segments(NamedTuple):
    """The d-step segments of a time-major (T, ...) trajectory, one per start row i."""

    index: jax.Array  # (d, T) int32: row i + j (clipped to the last row)
    mask: jax.Array  # (d, T, ...) bool: row i + j belongs to the segment that starts at row i


def dstep_segments(episode_end: jax.Array, d: int) -> Segments:
    """For each start row i, the rows i .. i + d - 1 of its segment.

    A segment holds at most d rows and stops after the first row where the episode ends (that row is
    its last) or at the trajectory's last row (a cut, as the rollout's end). Rows i and i + j share an
    episode when no row in i .. i + j - 1 ends one: the count of ends before each row is the same.
    """
    T = episode_end.shape[0]
    end = episode_end.astype(jnp.float32)
    ends_before = jnp.cumsum(end, axis=0) - end  # episode ends in rows < t (small integers: exact)
    start = jnp.arange(T, dtype=jnp.int32)
    offset = jnp.arange(d, dtype=jnp.int32)[:, None]
    index = jnp.minimum(start[None, :] + offset, T - 1)
    inside = (start[None, :] + offset < T).reshape((d, T) + (1,) * (end.ndim - 1))
    return Segments(index, inside & (ends_before[index] == ends_before[None]))


def segment_sum(x: jax.Array, segments: Segments, gamma: float) -> jax.Array:
    """sum_{j<k} gamma^j x[i + j] over each segment (k its length), shape (T, ...)."""
    d = segments.index.shape[0]
    discount = (gamma ** jnp.arange(d, dtype=jnp.float32)).reshape((d,) + (1,) * x.ndim)
    return jnp.sum(jnp.where(segments.mask, discount * x[segments.index], 0.0), axis=0)


def segment_last(x: jax.Array, segments: Segments) -> tuple[jax.Array, jax.Array]:
    """(x at each segment's last row i + k - 1, k = the segment's length), both (T, ...)."""
    k = segments.mask.sum(axis=0).astype(jnp.int32)
    start = jnp.arange(x.shape[0], dtype=jnp.int32).reshape((-1,) + (1,) * (x.ndim - 1))
    return jnp.take_along_axis(x, start + k - 1, axis=0), k
