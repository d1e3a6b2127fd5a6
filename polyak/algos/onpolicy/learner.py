"""The on-policy machinery shared by the policy-gradient family (REINFORCE, A2C, PPO, AWR, A3C).

An algorithm supplies a hashable agent (a `PolicyGradientAgent` subclass, a `polyak.core.types.Agent`)
whose only own function is the pure `update(state, rollout, key) -> (state, metrics)`, consuming one
whole rollout.
Everything else lives here, once:

* `Rollout`: a pytree of device arrays of shape (n_steps, n_envs, ...) holding, per row,
  (s_t, a_t, log pi_old(a_t|s_t), r_t, s'_t, terminated_t, episode_end_t, t_in_episode). s'_t is the
  *true* next observation (the final one on a time limit); advantages and returns are computed
  from it by `polyak.common.boundaries` (GAE, reward-to-go), never across an episode boundary.
* `OnPolicyLearner`: agent state + rollout + observation/return normalisers + RNG + counters.
* Three pure steps, composed into the two jitted calls the host makes per environment step:
      observe(packed)  normaliser update, write (r_t, s'_t, flags) into row t, t += 1
      update()         agent.update on the full rollout, t = 0          (only when the rollout is full)
      act(obs)         sample a_t ~ pi(.|s_t) and write (s_t, a_t, log pi) into row t
  `onpolicy.jitted` composes the very same functions with a JAX environment under `lax.scan`;
  the host loop (`onpolicy.host`) calls them over Gymnasium envs.

Observations are normalised when they are acted on and stored normalised, so the log-probabilities
recorded during the rollout are exactly those of the stored inputs (the ratio starts at 1).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from polyak.algos.packing import Columns
from polyak.core.config import Config, HyperparameterError, need
from polyak.core.distributions import Categorical, DiagGaussian
from polyak.core.monitor import Diagnostics, record_nonfinite
from polyak.core.networks import MLP
from polyak.core.normalizer import RunningMeanStd, rms_init, rms_normalize, rms_update
from polyak.core.optim import apply_gradients
from polyak.core.types import Agent

ACTIVATIONS = {"tanh": jnp.tanh, "relu": nn.relu}


# --------------------------------------------------------------------------------------------
# Hyperparameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnPolicyConfig(Config):
    may_be_infinite = frozenset({"max_grad_norm"})  # inf: no gradient clipping

    learning_rate: float = 3e-4
    n_steps: int = 2048  # rollout length per environment
    gamma: float = 0.99
    gae_lambda: float = 0.95
    normalize_advantage: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5  # clip the global gradient norm (inf: no clipping)
    policy_hidden: tuple[int, ...] = (64, 64)
    value_hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    ortho_init: bool = True  # orthogonal init, gains sqrt(2) / 0.01 (policy out) / 1 (value out)
    log_std_init: float = 0.0  # Gaussian policies: initial state-independent log std
    optimizer: str = "adam"  # "adam" (eps 1e-5) or "rmsprop" (decay 0.99, eps 1e-5, as A2C)
    normalize_obs: bool = True
    normalize_reward: bool = False  # divide rewards by a running std of the discounted return

    def validate(self) -> None:
        need(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(self.n_steps >= 1, f"n_steps must be >= 1, got {self.n_steps}")
        need(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        need(0 <= self.gae_lambda <= 1, f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        need(self.ent_coef >= 0, f"ent_coef must be >= 0, got {self.ent_coef}")
        need(self.vf_coef >= 0, f"vf_coef must be >= 0, got {self.vf_coef}")
        need(self.max_grad_norm > 0, f"max_grad_norm must be > 0 (math.inf: no clipping), got {self.max_grad_norm}")
        need(all(w >= 1 for w in self.policy_hidden + self.value_hidden),
             f"hidden layer widths must be >= 1, got {self.policy_hidden} / {self.value_hidden}")
        need(self.activation in ACTIVATIONS, f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        need(self.optimizer in ("adam", "rmsprop"), f"optimizer must be 'adam' or 'rmsprop', got {self.optimizer!r}")

    @classmethod
    def policy_kwargs_to_fields(cls, policy_kwargs: dict[str, Any]) -> dict[str, Any]:
        """SB3's policy_kwargs: net_arch=[...] or dict(pi=[...], vf=[...]), activation_fn, ortho_init, log_std_init."""
        policy_kwargs, out = dict(policy_kwargs), {}
        net_arch = policy_kwargs.pop("net_arch", None)
        if isinstance(net_arch, dict):
            out["policy_hidden"], out["value_hidden"] = tuple(net_arch["pi"]), tuple(net_arch["vf"])
        elif net_arch is not None:
            out["policy_hidden"] = out["value_hidden"] = tuple(net_arch)
        if "activation_fn" in policy_kwargs:
            fn = policy_kwargs.pop("activation_fn")
            out["activation"] = fn if isinstance(fn, str) else getattr(fn, "__name__", str(fn)).lower()
        for key in ("ortho_init", "log_std_init"):
            if key in policy_kwargs:
                out[key] = policy_kwargs.pop(key)
        if policy_kwargs:
            raise HyperparameterError(f"unsupported policy_kwargs: {', '.join(sorted(policy_kwargs))} "
                                      "(supported: net_arch, activation_fn, ortho_init, log_std_init)")
        return out


# --------------------------------------------------------------------------------------------
# The agent: policy and value networks, acting, the optimiser step
# --------------------------------------------------------------------------------------------


class Rollout(NamedTuple):
    """One rollout; every leaf has leading dimensions (n_steps, n_envs)."""

    obs: jax.Array  # s_t, normalised as the policy saw it
    action: jax.Array  # a_t: (.., act_dim) Gaussian sample (unclipped) or (.., 1) float index
    log_prob: jax.Array  # log pi_old(a_t | s_t)
    reward: jax.Array  # r_t (scaled when normalize_reward)
    next_obs: jax.Array  # s'_t, the true next observation, normalised
    terminated: jax.Array  # 1.0: s'_t is terminal (no bootstrap)
    episode_end: jax.Array  # 1.0: the episode ended at this step (terminated or truncated)
    time_in_episode: jax.Array  # t within the episode (0 at reset), for time-dependent baselines


class PGState(NamedTuple):
    params: dict  # {"policy": ..., "value": ..., "log_std": ...}
    opt_state: Any
    n_updates: jax.Array


@dataclass(frozen=True)
class PolicyGradientAgent(Agent):
    """Hyperparameters and space sizes (hashable, jit-static). n_actions > 0 for Discrete actions."""

    cfg: OnPolicyConfig
    obs_dim: int
    act_dim: int  # columns of a stored action: the Box dimension, or 1 for Discrete
    n_actions: int = 0

    @property
    def discrete(self) -> bool:
        return self.n_actions > 0

    @property
    def distribution(self):
        return Categorical if self.discrete else DiagGaussian

    @cached_property
    def policy_net(self) -> MLP:
        cfg = self.cfg
        return MLP(cfg.policy_hidden, self.n_actions or self.act_dim, ACTIVATIONS[cfg.activation],
                   math.sqrt(2.0) if cfg.ortho_init else None, 0.01)

    @cached_property
    def value_net(self) -> MLP:
        cfg = self.cfg
        return MLP(cfg.value_hidden, 1, ACTIVATIONS[cfg.activation], math.sqrt(2.0) if cfg.ortho_init else None, 1.0)

    @cached_property
    def optimizer(self) -> optax.GradientTransformation:
        cfg = self.cfg
        step = (optax.adam(cfg.learning_rate, eps=1e-5) if cfg.optimizer == "adam"
                else optax.rmsprop(cfg.learning_rate, decay=0.99, eps=1e-5))
        return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), step) if math.isfinite(cfg.max_grad_norm) else step

    def init_params(self, key: jax.Array) -> dict:
        k_pi, k_v = jax.random.split(key)
        obs = jnp.zeros((1, self.obs_dim))
        params = {"policy": self.policy_net.init(k_pi, obs), "value": self.value_net.init(k_v, obs)}
        if not self.discrete:
            params["log_std"] = jnp.full((self.act_dim,), self.cfg.log_std_init, jnp.float32)
        return params

    def init(self, key: jax.Array) -> PGState:
        params = self.init_params(key)
        return PGState(params, self.optimizer.init(params), jnp.zeros((), jnp.int32))

    # pi(.|s) and V(s)
    def dist(self, params: dict, obs: jax.Array):
        out = self.policy_net.apply(params["policy"], obs)
        return out if self.discrete else (out, jnp.broadcast_to(params["log_std"], out.shape))

    def value(self, params: dict, obs: jax.Array) -> jax.Array:
        return self.value_net.apply(params["value"], obs)[..., 0]

    def act(self, state, obs: jax.Array, key: jax.Array, deterministic: bool) -> tuple[jax.Array, jax.Array]:
        """(action, log pi(action | s)); Gaussian actions are unclipped (the env adapter clips)."""
        dist = self.dist(state.params, obs)
        action = self.distribution.mode(dist) if deterministic else self.distribution.sample(dist, key)
        return action, self.distribution.log_prob(dist, action)

    def gradient_step(self, state, loss_fn: Callable, *args):
        """One optimiser step on loss_fn(params, *args) -> (loss, metrics); returns (state, metrics)."""
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, *args)
        params, opt_state = apply_gradients(self.optimizer, state.params, grads, state.opt_state)
        metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads))
        return state._replace(params=params, opt_state=opt_state, n_updates=state.n_updates + 1), metrics

    def rollout_values(self, params: dict, rollout: Rollout) -> tuple[jax.Array, jax.Array]:
        """V(s_t) and V(s'_t) for every row, in one batched pass each."""
        return self.value(params, rollout.obs), self.value(params, rollout.next_obs)

    def update(self, state, rollout: Rollout, key: jax.Array):
        raise NotImplementedError


def normalize_advantages(advantages: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """(A - mean A) / (std A + 1e-8), over the rows with weight 1 when `weights` is given."""
    if weights is None:
        return (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    n = jnp.maximum(weights.sum(), 1.0)
    mean = (advantages * weights).sum() / n
    std = jnp.sqrt((((advantages - mean) ** 2) * weights).sum() / n)
    return (advantages - mean) / (std + 1e-8)


def explained_variance(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """1 - Var(target - prediction) / Var(target): 1 is a perfect value function, <= 0 no better than a constant."""
    return 1.0 - jnp.var(target - prediction) / (jnp.var(target) + 1e-8)


# --------------------------------------------------------------------------------------------
# The learner and its pure steps
# --------------------------------------------------------------------------------------------


class OnPolicyLearner(NamedTuple):
    agent: Any
    rollout: Rollout
    row: jax.Array  # next rollout row to fill
    obs_rms: RunningMeanStd
    return_rms: RunningMeanStd  # running moments of the discounted return (reward normalisation)
    discounted_return: jax.Array  # (n_envs,)
    time_in_episode: jax.Array  # (n_envs,) of the observation being acted on
    key: jax.Array
    step: jax.Array  # environment transitions so far
    metrics: dict[str, jax.Array]  # of the latest update
    nonfinite_step: jax.Array  # first env step where a metric was NaN or inf (-1: never)
    nonfinite_code: jax.Array  # bit i set: sorted(metrics)[i] was not finite


@dataclass(frozen=True)
class OnPolicySpec:
    agent: Any
    n_envs: int

    @property
    def cfg(self) -> OnPolicyConfig:
        return self.agent.cfg

    @cached_property
    def columns(self) -> Columns:
        """The packed host->device array of one step, one row per env: the step's reward, next
        observation and flags, and the observation to act on next."""
        o = (self.agent.obs_dim,)
        return Columns.of(reward=(), next_obs=o, terminated=(), truncated=(), act_obs=o, episode_start=())


def empty_rollout(spec: OnPolicySpec) -> Rollout:
    t, n, a = spec.cfg.n_steps, spec.n_envs, spec.agent
    z = functools.partial(jnp.zeros, dtype=jnp.float32)
    return Rollout(z((t, n, a.obs_dim)), z((t, n, a.act_dim)), z((t, n)), z((t, n)), z((t, n, a.obs_dim)),
                   z((t, n)), z((t, n)), z((t, n)))


def init_learner(spec: OnPolicySpec, key: jax.Array) -> OnPolicyLearner:
    """A fresh learner (pure: jittable and vmappable over keys)."""
    agent, n = spec.agent, spec.n_envs
    k_agent, k_loop = jax.random.split(key)
    agent_state = agent.init(k_agent)
    rollout = empty_rollout(spec)
    metric_shapes = jax.eval_shape(agent.update, agent_state, rollout, k_loop)[1]
    metrics = {k: jnp.zeros(v.shape, v.dtype) for k, v in metric_shapes.items()}
    minus_one = jnp.asarray(-1, jnp.int32)
    return OnPolicyLearner(agent_state, rollout, jnp.zeros((), jnp.int32), rms_init(agent.obs_dim), rms_init(1),
                           jnp.zeros((n,)), jnp.zeros((n,)), k_loop, jnp.zeros((), jnp.int32), metrics,
                           minus_one, jnp.zeros((), jnp.int32))


def _set_row(rollout: Rollout, row, **values) -> Rollout:
    return rollout._replace(**{k: getattr(rollout, k).at[row].set(v.astype(jnp.float32)) for k, v in values.items()})


def observe(spec: OnPolicySpec, learner: OnPolicyLearner, packed: jax.Array) -> tuple[OnPolicyLearner, jax.Array]:
    """Record one vector-env step: update the normalisers, write (r_t, s'_t, flags) into the current row.

    Returns the learner and the normalised observation to act on next.
    """
    cfg = spec.cfg
    x = spec.columns.unpack(packed)
    reward, terminated, truncated, episode_start = (x[k] for k in ("reward", "terminated", "truncated",
                                                                    "episode_start"))
    rms = rms_update(learner.obs_rms, x["act_obs"], cfg.normalize_obs)
    normalize = functools.partial(rms_normalize, rms, enabled=cfg.normalize_obs)
    end = jnp.maximum(terminated, truncated)
    return_rms, discounted = learner.return_rms, learner.discounted_return
    if cfg.normalize_reward:  # r / std(discounted return), the return accumulated per env
        discounted = discounted * cfg.gamma + reward
        return_rms = rms_update(return_rms, discounted[:, None])
        reward = reward / jnp.sqrt(return_rms.var[0] + 1e-8)
        discounted = jnp.where(end > 0, 0.0, discounted)
    rollout = _set_row(learner.rollout, learner.row, reward=reward, next_obs=normalize(x["next_obs"]),
                       terminated=terminated, episode_end=end)
    time_in_episode = jnp.where(episode_start > 0, 0.0, learner.time_in_episode + 1.0)
    learner = learner._replace(rollout=rollout, row=learner.row + 1, obs_rms=rms, return_rms=return_rms,
                               discounted_return=discounted, time_in_episode=time_in_episode,
                               step=learner.step + spec.n_envs)
    return learner, normalize(x["act_obs"])


def act(spec: OnPolicySpec, learner: OnPolicyLearner, obs: jax.Array) -> tuple[OnPolicyLearner, jax.Array]:
    """Sample a_t ~ pi(.|s_t) for the normalised observation and write (s_t, a_t, log pi) into the row."""
    key, k_act = jax.random.split(learner.key)
    action, log_prob = spec.agent.act(learner.agent, obs, k_act, False)
    rollout = _set_row(learner.rollout, learner.row, obs=obs, action=action, log_prob=log_prob,
                       time_in_episode=learner.time_in_episode)
    return learner._replace(rollout=rollout, key=key), action


def update(spec: OnPolicySpec, learner: OnPolicyLearner) -> OnPolicyLearner:
    """agent.update on the full rollout; checks the metrics; starts a new rollout."""
    key, k_update = jax.random.split(learner.key)
    agent, metrics = spec.agent.update(learner.agent, learner.rollout, k_update)
    nonfinite_step, nonfinite_code = record_nonfinite(metrics, learner.step, learner.nonfinite_step,
                                                      learner.nonfinite_code)
    return learner._replace(agent=agent, key=key, row=jnp.zeros((), jnp.int32), metrics=metrics,
                            nonfinite_step=nonfinite_step, nonfinite_code=nonfinite_code)


def diagnostics(learner: OnPolicyLearner) -> Diagnostics:
    """The learner's metrics and checks in the shape every family's loop reads (`core.monitor`)."""
    return Diagnostics(learner.metrics, learner.nonfinite_step, learner.nonfinite_code)


def start(spec: OnPolicySpec, learner: OnPolicyLearner, obs: jax.Array):
    """First observation of a run: update the normaliser and choose the first action."""
    rms = rms_update(learner.obs_rms, obs, spec.cfg.normalize_obs)
    learner = learner._replace(obs_rms=rms, time_in_episode=jnp.zeros_like(learner.time_in_episode))
    return act(spec, learner, rms_normalize(rms, obs, enabled=spec.cfg.normalize_obs))


def collect_step(spec: OnPolicySpec, learner: OnPolicyLearner, packed: jax.Array):
    """observe -> act: one environment step inside a rollout."""
    learner, obs = observe(spec, learner, packed)
    return act(spec, learner, obs)


def collect_and_update_step(spec: OnPolicySpec, learner: OnPolicyLearner, packed: jax.Array):
    """observe -> update -> act: the step that completes a rollout."""
    learner, obs = observe(spec, learner, packed)
    return act(spec, update(spec, learner), obs)


class ParamsOnly(NamedTuple):
    """A stand-in agent state for acting: `PolicyGradientAgent.act` reads only `state.params`."""

    params: dict


def host_collect_step(spec: OnPolicySpec, params: dict, learner: OnPolicyLearner, packed: jax.Array):
    """`collect_step` for the host loop, called with the learner's agent state and metrics left out
    (`learner._replace(agent=None, metrics=None)`) and the parameters passed separately, not donated.

    Same computation, fewer arrays per call: a jitted call pays dispatch per array in and out, and the
    agent state (parameters and optimiser moments) and the metrics are 51 of a PPO learner's 72 arrays,
    none of which a collect step changes (BENCHMARKS.md, 'PPO and A2C speed').
    """
    learner, action = collect_step(spec, learner._replace(agent=ParamsOnly(params)), packed)
    return learner._replace(agent=None), action


def policy_action(spec: OnPolicySpec, agent_state, obs_rms, obs, key, deterministic: bool):
    obs = rms_normalize(obs_rms, obs, enabled=spec.cfg.normalize_obs)
    return spec.agent.act(agent_state, obs, key, deterministic)[0]


def state_values(spec: OnPolicySpec, agent_state, obs_rms, obs):
    """V(s) of raw observations, with the frozen normaliser (in the learner's reward units)."""
    return spec.agent.value(agent_state.params, rms_normalize(obs_rms, obs, enabled=spec.cfg.normalize_obs))


@functools.lru_cache(maxsize=64)
def compiled(spec: OnPolicySpec):
    """Jitted functions for one spec, shared across instances with equal specs."""
    return {
        "init": jax.jit(functools.partial(init_learner, spec)),
        "start": jax.jit(functools.partial(start, spec), donate_argnums=0),
        "collect": jax.jit(functools.partial(collect_step, spec), donate_argnums=0),
        "host_collect": jax.jit(functools.partial(host_collect_step, spec), donate_argnums=1),
        "collect_update": jax.jit(functools.partial(collect_and_update_step, spec), donate_argnums=0),
        "predict": jax.jit(functools.partial(policy_action, spec), static_argnums=4),
        "value": jax.jit(functools.partial(state_values, spec)),
    }
