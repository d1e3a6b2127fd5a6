"""The Euler-equation method: a policy that solves the Euler equation at collocation nodes, by Newton's method.

For an Euler-class problem (`polyak.envs.storage.EulerClassEnv`): a controlled state that moves affinely,
s1' = alpha s1 + beta a + delta, an exogenous Markov state s2' ~ P[s2, :] and a reward r(s1, s2, a) smooth in
s1 and a. From the Bellman equation V(s) = max_a r(s, a) + gamma E_{s2'|s2} V(alpha s1 + beta a + delta, s2'):

    first-order condition    r_a(s, a) + gamma beta E V_1(s') = 0                                    (1)
    envelope theorem         V_1(s) = r_1(s, a) + gamma alpha E V_1(s')                               (2)
    (1) into (2)             V_1(s) = r_1(s, a) - (alpha / beta) r_a(s, a)                            (3)
    (3) at s' into (1)       0 = r_a(s, a) + gamma beta E_{s2'|s2}[ r_1(s', a') - (alpha / beta) r_a(s', a') ]

with a = pi(s), a' = pi(s'), s' = (alpha s1 + beta a + delta, s2'); r_1 and r_a are the reward's partial
derivatives (`jax.grad` of the env's reward). This is the Euler equation: no value function appears, only the
policy at s and at the K possible next states.

    pi_theta(s1, s2) = sum_{j=0..n} theta[s2, j] T_j(x(s1))       Chebyshev polynomials in s1, one row per s2
    G(theta)_i       = the Euler equation's right side at node i    N Chebyshev nodes in s1 x K states s2
    repeat: G, J = G(theta), dG/dtheta                              J by forward-mode autodiff (jax.jacfwd)
            d = argmin_d |J d + G|^2 + mu |d|^2                     Levenberg-Marquardt (mu -> 0: Gauss-Newton;
                                                                    N = n + 1 makes J square: Newton's step)
            if |G(theta + d)| < |G(theta)|: theta <- theta + d, mu <- mu / nu   else mu <- mu nu
    until max |G| <= tol (converged) or mu > max_damping (no step lowers |G|: stalled)

Bounds. (1) is an equality only where the optimal action is interior, and (3) needs it interior at s' too; at
a binding bound (1) becomes an inequality (a complementarity condition). This method assumes an interior
optimum: the env's costs must keep it inside the action box and the states' domain (for polyak/Storage-v0,
value iteration on a fine grid confirms it; `collocation.value_iteration`). `predict` clips pi to the action
box; x(s1) is clipped to [-1, 1], so pi is constant beyond the domain.

Budget. There are no environment samples: `num_timesteps` counts model transitions. An iteration evaluates G
at N K states, each averaging over K next states, twice (at theta and at theta + d): 2 N K^2 transitions (the
Jacobian's forward-mode passes are not counted). `learn(total_timesteps)` runs whole iterations until that
many more transitions are spent or the iteration has converged or stalled; every iteration is logged (max and
RMS |G|, mu, step length) with the returns of `eval_episodes` episodes of the policy from fixed starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak.algos.algorithm import Algorithm, NonFiniteError
from polyak.algos.registry import by_action_kind, register
from polyak.core.config import Config, HyperparameterError, need
from polyak.envs.protocol import GymnasiumAdapter, GymnasiumVectorAdapter
from polyak.envs.spaces import SpaceError, check_spaces, make_env
from polyak.envs.storage import EulerClassEnv
from polyak.io.logger import RunLogger


@dataclass(frozen=True)
class EulerConfig(Config):
    """Hyperparameters of the Euler-equation method."""

    gamma: float = 0.99  # discount of the Bellman equation the Euler equation comes from
    degree: int = 12  # n: Chebyshev polynomials T_0..T_n in s1, for each exogenous state
    n_nodes: int | None = None  # N: collocation nodes in s1 per exogenous state; None: n + 1 (a square system)
    damping: float = 1e-3  # mu_0 of Levenberg-Marquardt
    damping_factor: float = 10.0  # nu: mu / nu after an accepted step, mu * nu after a rejected one
    tol: float = 1e-5  # converged when max |G| <= tol (units of the reward per unit of action)
    max_damping: float = 1e8  # stalled when mu exceeds this: no step lowers |G| any more
    eval_episodes: int = 8  # episodes of the policy after each iteration, from fixed starts (the learning curve)
    max_episode_steps: int = 1000  # those episodes stop here even if the env's own go on

    def validate(self) -> None:
        need(0 < self.gamma < 1, f"gamma must be in (0, 1) (the Euler equation of a discounted problem), got {self.gamma}")
        need(self.degree >= 1, f"degree must be >= 1, got {self.degree}")
        need(self.n_nodes is None or self.n_nodes >= self.degree + 1,
             f"n_nodes must be >= degree + 1 = {self.degree + 1} (fewer nodes than coefficients leave theta "
             f"underdetermined), got {self.n_nodes}")
        need(self.damping > 0, f"damping must be > 0, got {self.damping}")
        need(self.damping_factor > 1, f"damping_factor must be > 1, got {self.damping_factor}")
        need(self.tol > 0, f"tol must be > 0, got {self.tol}")
        need(self.max_damping > self.damping, f"max_damping must exceed damping, got {self.max_damping}")
        need(self.eval_episodes >= 0, f"eval_episodes must be >= 0, got {self.eval_episodes}")
        need(self.max_episode_steps >= 1, f"max_episode_steps must be >= 1, got {self.max_episode_steps}")

    @property
    def nodes(self) -> int:
        return self.degree + 1 if self.n_nodes is None else self.n_nodes

    @classmethod
    def policy_kwargs_to_fields(cls, policy_kwargs: dict[str, Any]) -> dict[str, Any]:
        if policy_kwargs:
            raise HyperparameterError(f"Euler's policy is a Chebyshev polynomial per exogenous state, not a network: "
                                      f"policy_kwargs must be empty (got {sorted(policy_kwargs)}); set degree=")
        return {}


# ---------------------------------------------------------------------------------------------
# The policy: Chebyshev polynomials in s1, one coefficient row per exogenous state
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChebyshevPolicy:
    """pi_theta(s1, s2) = sum_{j=0..n} theta[s2, j] T_j(x),  x = clip(2 (s1 - low) / (high - low) - 1, -1, 1).

    The observation is (s1, levels[s2]); `act` reads s2 back as the nearest level.
    """

    degree: int
    levels: tuple[float, ...]  # the observed value of each exogenous state
    s1_low: float  # the domain of s1 the polynomials span
    s1_high: float
    action_low: float
    action_high: float
    obs_dim: int = 2

    @property
    def n_states(self) -> int:
        return len(self.levels)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_states, self.degree + 1)

    def basis(self, s1: jax.Array) -> jax.Array:
        """(..., n + 1): T_0(x) .. T_n(x) by T_{j+1} = 2 x T_j - T_{j-1}."""
        x = jnp.clip(2.0 * (s1 - self.s1_low) / (self.s1_high - self.s1_low) - 1.0, -1.0, 1.0)
        T = [jnp.ones_like(x), x]
        for _ in range(2, self.degree + 1):
            T.append(2.0 * x * T[-1] - T[-2])
        return jnp.stack(T[:self.degree + 1], axis=-1)

    def __call__(self, theta: jax.Array, s1: jax.Array, s2: jax.Array) -> jax.Array:
        """pi_theta(s1, s2), unclipped (what the Euler equation sees); broadcasts over s1 and s2."""
        return jnp.sum(theta[s2] * self.basis(s1), axis=-1)

    def nodes(self, n: int) -> np.ndarray:
        """The n Chebyshev nodes (zeros of T_n) mapped to [s1_low, s1_high]."""
        x = np.cos((2.0 * np.arange(1, n + 1) - 1.0) * np.pi / (2.0 * n))[::-1]
        return self.s1_low + 0.5 * (x + 1.0) * (self.s1_high - self.s1_low)

    def act(self, theta: jax.Array, obs: jax.Array) -> jax.Array:
        """Actions (n, 1) in the env's units for observations (n, 2) = (s1, level of s2), clipped to the box."""
        s2 = jnp.argmin(jnp.abs(obs[:, 1:2] - jnp.asarray(self.levels, obs.dtype)), axis=1)
        return jnp.clip(self(theta, obs[:, 0], s2), self.action_low, self.action_high)[:, None]


# ---------------------------------------------------------------------------------------------
# The Euler equation and one Newton (Levenberg-Marquardt) step
# ---------------------------------------------------------------------------------------------
def euler_residual(env: EulerClassEnv, params, policy: ChebyshevPolicy, gamma: float, theta: jax.Array,
                   s1: jax.Array, s2: jax.Array) -> jax.Array:
    """r_a(s, a) + gamma beta E_{s2'|s2}[ r_1(s', a') - (alpha / beta) r_a(s', a') ] at one state s = (s1, s2)."""
    m = env.euler_model(params)
    r_1 = jax.grad(env.reward, argnums=0)  # dr/ds1
    r_a = jax.grad(env.reward, argnums=2)  # dr/da
    a = policy(theta, s1, s2)  # a = pi(s)
    s1_next = m.alpha * s1 + m.beta * a + m.delta  # the affine controlled dynamics
    s2_next = jnp.arange(policy.n_states)  # every next exogenous state ...
    a_next = policy(theta, s1_next, s2_next)  # a' = pi(s')
    at_next = partial(jax.vmap, in_axes=(None, 0, 0, None))
    v1_next = at_next(r_1)(s1_next, s2_next, a_next, params) - m.alpha / m.beta * at_next(r_a)(
        s1_next, s2_next, a_next, params)  # V_1(s') = r_1 - (alpha / beta) r_a       (3)
    return r_a(s1, s2, a, params) + gamma * m.beta * m.transition[s2] @ v1_next  # ... weighted by P(s2'|s2)  (1)


@dataclass(frozen=True)
class Spec:
    """The static side of a solve (hashable: a jit static argument); only what the solve reads, so models that
    differ in other settings share its compiled step."""

    policy: ChebyshevPolicy
    gamma: float
    n_nodes: int  # N per exogenous state
    damping_factor: float  # nu
    n_envs: int = 1

    @classmethod
    def of(cls, cfg: EulerConfig, policy: ChebyshevPolicy, n_envs: int = 1) -> "Spec":
        return cls(policy, float(cfg.gamma), int(cfg.nodes), float(cfg.damping_factor), int(n_envs))

    @property
    def collocation_states(self) -> tuple[np.ndarray, np.ndarray]:
        """(s1, s2) of the N K nodes: the Chebyshev nodes in s1 for every exogenous state."""
        s1 = self.policy.nodes(self.n_nodes)
        return np.tile(s1, self.policy.n_states), np.repeat(np.arange(self.policy.n_states), len(s1))

    @property
    def transitions_per_iteration(self) -> int:
        """2 N K^2: G is evaluated twice, at N K states, each averaging over K next states."""
        return 2 * self.n_nodes * self.policy.n_states ** 2


def residuals(spec: Spec, env: EulerClassEnv, params, theta_flat: jax.Array, s1=None, s2=None) -> jax.Array:
    """G(theta): the Euler residual at the collocation nodes (or at the states s1, s2 given), flat theta."""
    if s1 is None:
        s1, s2 = spec.collocation_states
    theta = jnp.asarray(theta_flat).reshape(spec.policy.shape)
    one = partial(euler_residual, env, params, spec.policy, spec.gamma, theta)
    return jax.vmap(one)(jnp.asarray(s1, theta.dtype), jnp.asarray(s2))


class EulerLearner(NamedTuple):
    """Everything a solve needs to go on exactly (checkpoints name these fields)."""

    theta: jax.Array  # (K, n + 1) Chebyshev coefficients: the policy `predict` acts with
    damping: jax.Array  # mu
    iteration: jax.Array  # Newton iterations taken (accepted or rejected)
    step: jax.Array  # model transitions evaluated (what `learn`'s budget counts)
    residual_max: jax.Array  # max |G(theta)| at the nodes (inf before the first iteration)


def init_learner(spec: Spec, damping: float) -> EulerLearner:
    """theta_0 = 0 (the policy a = 0), mu = mu_0."""
    return EulerLearner(jnp.zeros(spec.policy.shape, jnp.float32), jnp.float32(damping),
                        jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), jnp.float32(jnp.inf))


def newton_step(spec: Spec, env: EulerClassEnv, params, learner: EulerLearner) -> tuple[EulerLearner, dict]:
    """One Levenberg-Marquardt step on G(theta) = 0 (see the module docstring)."""
    G_of = partial(residuals, spec, env, params)
    theta, mu = learner.theta.ravel(), learner.damping
    G = G_of(theta)  # G(theta)
    J = jax.jacfwd(G_of)(theta)  # dG/dtheta (N K x P)
    P = theta.shape[0]
    # d = argmin |J d + G|^2 + mu |d|^2, as the least-squares solution of [J; sqrt(mu) I] d = [-G; 0]
    d = jnp.linalg.lstsq(jnp.concatenate([J, jnp.sqrt(mu) * jnp.eye(P)]), jnp.concatenate([-G, jnp.zeros(P)]))[0]
    G_trial = G_of(theta + d)
    accept = jnp.all(jnp.isfinite(G_trial)) & (jnp.sum(G_trial**2) < jnp.sum(G**2))  # |G| decreased
    G_new = jnp.where(accept, G_trial, G)
    learner = EulerLearner(jnp.where(accept, theta + d, theta).reshape(spec.policy.shape),
                           jnp.where(accept, mu / spec.damping_factor, mu * spec.damping_factor),
                           learner.iteration + 1, learner.step + spec.transitions_per_iteration,
                           jnp.max(jnp.abs(G_new)))
    metrics = {"residual_max": jnp.max(jnp.abs(G_new)), "residual_rms": jnp.sqrt(jnp.mean(G_new**2)),
               "damping": learner.damping, "step_norm": jnp.linalg.norm(d), "accepted": accept.astype(jnp.float32)}
    return learner, metrics


_newton_step = jax.jit(newton_step, static_argnums=(0, 1))  # compiled once per (spec, env); params traced


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def episode_returns(policy: ChebyshevPolicy, env: EulerClassEnv, episodes: int, max_steps: int, params,
                    theta: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(returns, lengths) of `episodes` episodes of pi_theta on the JAX env, vmapped; an ended episode is frozen."""
    reset_key, key = jax.random.split(key)
    states, obs = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, episodes), params)

    def body(carry):
        t, key, states, obs, done, returns, lengths = carry
        key, step_key = jax.random.split(key)
        new_states, new_obs, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(step_key, episodes), states, policy.act(theta, obs), params)
        alive = ~done
        keep = lambda new, old: jnp.where(alive.reshape(alive.shape + (1,) * (old.ndim - 1)), new, old)  # noqa: E731
        return (t + 1, key, jax.tree.map(keep, new_states, states), keep(new_obs, obs), done | terminated | truncated,
                returns + jnp.where(alive, reward, 0.0), lengths + alive.astype(jnp.int32))

    carry = (jnp.zeros((), jnp.int32), key, states, obs, jnp.zeros(episodes, bool), jnp.zeros(episodes),
             jnp.zeros(episodes, jnp.int32))
    carry = jax.lax.while_loop(lambda c: (c[0] < max_steps) & ~jnp.all(c[4]), body, carry)
    return carry[5], carry[6]


@partial(jax.jit, static_argnums=0)
def _predict(policy: ChebyshevPolicy, theta: jax.Array, obs: jax.Array) -> jax.Array:
    return policy.act(theta, obs)


@partial(jax.jit, static_argnums=(0, 1))
def _euler_errors(spec: Spec, env: EulerClassEnv, params, theta: jax.Array, s1: jax.Array, s2: jax.Array):
    """(G, r_aa) at the states (s1, s2): the Euler residual and the reward's curvature in a at a = pi(s)."""
    G = residuals(spec, env, params, theta.ravel(), s1, s2)
    r_aa = jax.vmap(jax.grad(jax.grad(env.reward, argnums=2), argnums=2), in_axes=(0, 0, 0, None))
    return G, r_aa(s1, s2, spec.policy(theta, s1, s2), params)


def euler_problem_of(env) -> tuple[EulerClassEnv, Any]:
    """(JAX env, params) behind polyak's Gymnasium adapter of an Euler-class env, else SpaceError.

    The solver reads the model of `env.unwrapped`: Gymnasium wrappers on top (a reward wrapper, a different
    time limit) are not seen.
    """
    base = env.unwrapped
    if isinstance(base, (GymnasiumAdapter, GymnasiumVectorAdapter)) and isinstance(base.env, EulerClassEnv):
        return base.env, base.params
    inner = type(base.env).__name__ if isinstance(base, (GymnasiumAdapter, GymnasiumVectorAdapter)) else None
    raise SpaceError(f"Euler solves the model of an Euler-class JAX env (affine controlled state, exogenous Markov "
                     f"state, smooth reward: a polyak.envs.storage.EulerClassEnv such as polyak/Storage-v0), got "
                     f"{inner or type(base).__name__}" + ("" if inner else " (not a polyak JAX env)"))


# ---------------------------------------------------------------------------------------------
# The SB3-style model
# ---------------------------------------------------------------------------------------------
@register(family="collocation", action_kinds=("Box",), jitted_loop=False)
class Euler(Algorithm):
    """The Euler-equation method (collocation + Levenberg-Marquardt) with the model API of the other algorithms.

        model = Euler("ChebyshevPolicy", "polyak/Storage-v0", degree=12)   # or Euler(env=...)
        model.learn(100_000)                 # model transitions, in whole Newton iterations (stops when converged)
        action, _ = model.predict(obs)       # pi_theta(s), clipped to the action box
        model.euler_errors()                 # the Euler residual on a fine grid of s1, off the nodes
        model.save("euler.polyak"); Euler.load("euler.polyak", env=...)

    Deterministic: the seed is recorded but nothing is random.
    """

    name = "euler"
    config_cls = EulerConfig
    default_policy = "ChebyshevPolicy"
    example_env = "polyak/Storage-v0"

    def __init__(self, policy: str = "ChebyshevPolicy", env: Any = None, **kwargs: Any):
        if policy != "ChebyshevPolicy":
            raise HyperparameterError(f"Euler's policy is a Chebyshev polynomial per exogenous state: policy must be "
                                      f"'ChebyshevPolicy', got {policy!r}")
        super().__init__(policy, env, **kwargs)

    # -- what the base class asks of a family -------------------------------------------------
    def _init_host_state(self) -> None:
        super()._init_host_state()
        self._problem = None  # (EulerClassEnv, params) of the attached env

    def _check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        check_spaces(observation_space, action_space, "Euler", "Box", by_action_kind())
        if action_space.shape != (1,) or observation_space.shape != (2,):
            raise SpaceError(f"Euler needs one action and the observation (s1, s2's level); got actions "
                             f"{action_space.shape}, observations {observation_space.shape}")

    def _attach_env(self, env: Any) -> None:
        env = make_env(env)
        jax_env, params = euler_problem_of(env)  # before the space checks: the more useful message
        super()._attach_env(env)
        m = jax.device_get(jax_env.euler_model(params))
        policy = ChebyshevPolicy(self.config.degree, tuple(float(x) for x in np.ravel(m.levels)), float(m.s1_low),
                                 float(m.s1_high), float(m.action_low), float(m.action_high))
        if self.agent is not None and policy != self.agent:
            raise ValueError(f"the env's model ({policy}) differs from the one this policy was solved for "
                             f"({self.agent})")
        self._problem, self._policy = (jax_env, params), policy

    def _restore_options(self, metadata: dict[str, Any]) -> None:
        p = metadata["euler_policy"]
        self._policy = ChebyshevPolicy(int(p["degree"]), tuple(float(x) for x in p["levels"]), float(p["s1_low"]),
                                       float(p["s1_high"]), float(p["action_low"]), float(p["action_high"]))

    def _extra_metadata(self, include_buffer: bool) -> dict[str, Any]:
        p = self.agent
        return {"euler_policy": {"degree": p.degree, "levels": list(p.levels), "s1_low": p.s1_low,
                                 "s1_high": p.s1_high, "action_low": p.action_low, "action_high": p.action_high}}

    def _build(self, obs_dim: int, action_space: gym.Space, n_envs: int) -> None:
        self.spec = Spec.of(self.config, self._policy, int(n_envs))
        self.agent = self._policy  # what the base class reads: obs_dim

    def _init_learner(self, key: jax.Array) -> EulerLearner:
        return init_learner(self.spec, self.config.damping)

    # -- solving -------------------------------------------------------------------------------
    @property
    def converged(self) -> bool:
        """max |G| <= tol at the nodes."""
        return float(self.learner.residual_max) <= self.config.tol

    @property
    def stalled(self) -> bool:
        """mu > max_damping: no step lowered |G| (e.g. more nodes than coefficients: G cannot reach 0)."""
        return float(self.learner.damping) > self.config.max_damping

    def learn(self, total_timesteps: int, callback=None, log_interval: int = 1000, progress_bar: bool = False,
              run_dir=None, reset_num_timesteps: bool = False, logger: RunLogger | None = None):
        """Newton iterations until `total_timesteps` more model transitions are spent (whole iterations) or the
        solve has converged or stalled. Every iteration is logged, with `eval_episodes` episodes of the policy
        (their steps are not counted); `callback(model)` runs after each (False stops). `log_interval` is accepted for the API and unused: iterations are few."""
        with self._learning(total_timesteps, reset_num_timesteps, logger, run_dir, progress_bar) as logger:
            target = self.num_timesteps + int(total_timesteps)
            env, params = self._problem
            logger.start(int(total_timesteps), self.num_timesteps)
            while self.num_timesteps < target and not (self.converged or self.stalled):
                learner, metrics = _newton_step(self.spec, env, params, self.learner)
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                bad = sorted(k for k, v in metrics.items() if not np.isfinite(v))
                if bad or not np.all(np.isfinite(np.asarray(learner.theta))):
                    raise NonFiniteError(f"non-finite {', '.join(bad) or 'theta'} in Newton iteration "
                                         f"{int(learner.iteration)}")
                self.learner = learner
                logger.progress(int(learner.step) - self.num_timesteps)
                self.num_timesteps = int(learner.step)
                if self.config.eval_episodes:  # the policy's return after this iteration, same starts every time
                    returns, lengths = jax.device_get(episode_returns(
                        self.agent, env, self.config.eval_episodes, self.config.max_episode_steps, params,
                        learner.theta, jax.random.PRNGKey(self.seed)))
                    for ret, length in zip(returns, lengths):
                        logger.episode(self.num_timesteps, float(ret), int(length))
                logger.metrics(self.num_timesteps, {"iteration": int(learner.iteration), **metrics})
                if self._callback_stops(callback):
                    break
        return self

    def euler_errors(self, n_points: int = 1001) -> dict[str, float]:
        """The Euler residual of the current policy on n_points equally spaced s1 per exogenous state (off the
        nodes): max and mean |G|, and |G| / |r_aa| -- in units of the action, the error a one-step optimiser
        would make in a (the usual unit-free Euler-equation error)."""
        if self._problem is None:
            raise ValueError("euler_errors needs the model: pass env= to load() or call set_env(env)")
        env, params = self._problem
        p = self.agent
        s1 = jnp.asarray(np.tile(np.linspace(p.s1_low, p.s1_high, n_points), p.n_states), jnp.float32)
        s2 = jnp.asarray(np.repeat(np.arange(p.n_states), n_points))
        G, r_aa = (np.abs(np.asarray(x)) for x in _euler_errors(self.spec, env, params, self.learner.theta, s1, s2))
        in_action = G / np.maximum(r_aa, 1e-12)
        return {"euler_residual_max": float(G.max()), "euler_residual_mean": float(G.mean()),
                "euler_error_action_max": float(in_action.max()), "euler_error_action_mean": float(in_action.mean()),
                "newton_iterations": int(self.learner.iteration)}

    def evaluation_extras(self) -> tuple[dict[str, Any], list[str]]:
        errors = self.euler_errors()
        return errors, [f"Euler residual on a 1001-point grid per exogenous state: max {errors['euler_residual_max']:.3g}"
                        f", mean {errors['euler_residual_mean']:.3g}; as an action error |G / r_aa|: max "
                        f"{errors['euler_error_action_max']:.3g} ({errors['newton_iterations']} Newton iterations)"]

    # -- inference -----------------------------------------------------------------------------
    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Action(s) in the env's units for one observation (2,) or a batch (n, 2); returns (action, None)."""
        obs, single = self._predict_observations(observation)
        action = np.asarray(_predict(self.agent, self.learner.theta, obs[None] if single else obs))
        return (action[0] if single else action), None


__all__ = ["Euler", "EulerConfig", "EulerLearner", "ChebyshevPolicy", "Spec", "euler_residual", "residuals",
           "newton_step", "init_learner", "euler_problem_of", "episode_returns"]
