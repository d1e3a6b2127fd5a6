"""Advantage-weighted regression (AWR; Peng, Kumar, Zhang & Levine 2019).

Two supervised regressions on a replay of the most recent rollouts. Per rollout (n_steps x n_envs
transitions collected with the current policy):
  1. replay        write the rollout into a ring of the last K rollouts (the oldest is overwritten)
  2. targets       R^lambda_t = A^GAE_t + V(s_t)   TD(lambda) returns with the *current* V, per stored
                   rollout, never across an episode boundary (bootstrapped at time limits and cuts)
  3. value         value_steps Adam steps on   mean (V(s) - R^lambda)^2          (minibatches, R fixed)
                   V(s) = mu + sigma f(s): f regresses the targets standardised by their mean and std
                   over the replay; the last layer of f is rescaled when (mu, sigma) change so that V is
                   unchanged (PopArt's "preserve outputs", van Hasselt et al. 2016). Unscaled targets of
                   Pendulum's size saturate the tanh net to a constant V (BENCHMARKS.md, 'AWR').
  4. advantages    A = R^lambda - V with the new V (GAE again), normalised over the filled rows
     policy        policy_steps Adam steps on  -mean log pi(a|s) w,   w = min(exp(A / beta), w_max)
                   (beta: temperature, w_max: weight clip; rows of unfilled slots have w = 0)

The maximiser of E[log pi(a|s) exp(A(s, a) / beta)] over all policies is pi*(a|s) ~ mu(a|s) exp(A / beta),
the best policy within a KL(pi || mu) trust region around the replay's mixture mu of past policies;
the regression projects it onto the network. A stored action is the Gaussian sample as recorded
(unclipped), so log pi is that of the action actually drawn.

Rows are stored as the rollout holds them: observations normalised with the statistics of their
time. The running statistics cover the whole run, so after the first rollouts they move little and
the oldest (most stale) rows are the first to leave the ring.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import optax

from polyak.algos.onpolicy.host import OnPolicyAlgorithm
from polyak.algos.onpolicy.learner import (
    OnPolicyConfig,
    OnPolicySpec,
    PolicyGradientAgent,
    Rollout,
    compiled,
    normalize_advantages,
)
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.optim import gradient_step
from polyak.core.returns import gae_advantages


@dataclass(frozen=True)
class AWRConfig(OnPolicyConfig):
    learning_rate: float = 3e-4  # policy (Adam)
    value_learning_rate: float = 1e-3  # value function (Adam)
    n_steps: int = 200  # rollout length per environment: new samples between updates
    buffer_rollouts: int = 250  # K: the replay holds the last K rollouts (K n_steps n_envs samples: 50k)
    temperature: float = 1.0  # beta in exp(A / beta) (A normalised when normalize_advantage)
    weight_clip: float = 20.0  # w_max
    value_steps: int = 50  # value minibatch steps per update
    policy_steps: int = 250  # policy minibatch steps per update
    batch_size: int = 256
    learn_std: bool = True  # False: the Gaussian's std stays exp(log_std_init)
    normalize_value_targets: bool = True  # V = mu + sigma f(s), (mu, sigma) of the replay's targets
    max_grad_norm: float = math.inf

    def validate(self) -> None:
        super().validate()
        need(self.value_learning_rate > 0, f"value_learning_rate must be > 0, got {self.value_learning_rate}")
        need(self.buffer_rollouts >= 1, f"buffer_rollouts must be >= 1, got {self.buffer_rollouts}")
        need(self.temperature > 0, f"temperature (beta) must be > 0, got {self.temperature}")
        need(self.weight_clip > 0, f"weight_clip (w_max) must be > 0, got {self.weight_clip}")
        need(self.value_steps >= 0, f"value_steps must be >= 0, got {self.value_steps}")
        need(self.policy_steps >= 0, f"policy_steps must be >= 0, got {self.policy_steps}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")


def awr_weights(advantage: jax.Array, valid: jax.Array, temperature: float, weight_clip: float) -> jax.Array:
    """w = min(exp(A / beta), w_max) on valid rows, exactly 0 on the others (whatever A holds there)."""
    w = jnp.minimum(jnp.exp(jnp.where(valid, advantage, 0.0) / temperature), weight_clip)
    return jnp.where(valid, w, 0.0)


class AWRState(NamedTuple):
    params: dict  # {"policy": ..., "value": ..., "log_std": ..., "value_norm": {"mean": mu, "std": sigma}}
    opt_state: dict  # {"policy": Adam state of policy + log_std, "value": Adam state of value}
    n_updates: jax.Array
    ring: Rollout  # every leaf (K, n_steps, n_envs, ...): the last K rollouts
    filled: jax.Array  # (K,) 1.0 where a slot holds a rollout
    slot: jax.Array  # the slot the next rollout is written to


def ring_write(state: AWRState, rollout: Rollout) -> AWRState:
    """Write a rollout into the next slot (the oldest once the ring is full)."""
    ring = jax.tree.map(lambda r, x: r.at[state.slot].set(x), state.ring, rollout)
    return state._replace(ring=ring, filled=state.filled.at[state.slot].set(1.0),
                          slot=(state.slot + 1) % state.filled.shape[0])


def _policy_part(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in ("value", "value_norm")}


MIN_TARGET_STD = 1e-3  # floor of sigma (targets that are all equal)


def rescale_value_head(value_params: dict, old: dict, new: dict) -> dict:
    """Last-layer weights of f such that mu' + sigma' f'(s) = mu + sigma f(s) for every s."""
    head = max(value_params["params"], key=lambda name: int(name.split("_")[-1]))  # Dense_<n hidden>
    layer = value_params["params"][head]
    ratio = old["std"] / new["std"]
    layer = {"kernel": layer["kernel"] * ratio, "bias": (layer["bias"] * old["std"] + old["mean"] - new["mean"]) / new["std"]}
    return {"params": dict(value_params["params"], **{head: layer})}


@dataclass(frozen=True)
class AWRAgent(PolicyGradientAgent):
    cfg: AWRConfig
    n_envs: int = 1  # the ring's shape needs it

    def _adam(self, learning_rate: float) -> optax.GradientTransformation:
        step = optax.adam(learning_rate, eps=1e-5)
        clip = self.cfg.max_grad_norm
        return optax.chain(optax.clip_by_global_norm(clip), step) if math.isfinite(clip) else step

    @cached_property
    def policy_optimizer(self) -> optax.GradientTransformation:
        return self._adam(self.cfg.learning_rate)

    @cached_property
    def value_optimizer(self) -> optax.GradientTransformation:
        return self._adam(self.cfg.value_learning_rate)

    def init(self, key: jax.Array) -> AWRState:
        cfg = self.cfg
        params = dict(self.init_params(key), value_norm={"mean": jnp.zeros(()), "std": jnp.ones(())})
        opt_state = {"policy": self.policy_optimizer.init(_policy_part(params)),
                     "value": self.value_optimizer.init(params["value"])}
        shape = (cfg.buffer_rollouts, cfg.n_steps, self.n_envs)
        z = functools.partial(jnp.zeros, dtype=jnp.float32)
        ring = Rollout(z(shape + (self.obs_dim,)), z(shape + (self.act_dim,)), z(shape), z(shape),
                       z(shape + (self.obs_dim,)), z(shape), z(shape), z(shape))
        return AWRState(params, opt_state, jnp.zeros((), jnp.int32), ring, z((cfg.buffer_rollouts,)),
                        jnp.zeros((), jnp.int32))

    def value(self, params: dict, obs: jax.Array) -> jax.Array:
        """V(s) = mu + sigma f(s)."""
        norm = params["value_norm"]
        return norm["mean"] + norm["std"] * super().value(params, obs)

    def lambda_returns(self, params: dict, ring: Rollout) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(A^GAE, R^lambda, V(s)) of every stored row with the given V, each (K, n_steps, n_envs)."""
        value, next_value = self.value(params, ring.obs), self.value(params, ring.next_obs)
        gae = functools.partial(gae_advantages, gamma=self.cfg.gamma, lam=self.cfg.gae_lambda)
        advantage, target = jax.vmap(gae)(ring.reward, value, next_value, ring.terminated, ring.episode_end)
        return advantage, target, value

    def weights(self, params: dict, state: AWRState) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(w, A, valid) per stored row: AWR weights from (normalised) advantages with the given V."""
        cfg = self.cfg
        valid = jnp.broadcast_to(state.filled[:, None, None] > 0, state.ring.reward.shape)
        advantage, _, _ = self.lambda_returns(params, state.ring)
        advantage = jnp.where(valid, advantage, 0.0)
        if cfg.normalize_advantage:
            advantage = normalize_advantages(advantage, valid.astype(advantage.dtype))
        return awr_weights(advantage, valid, cfg.temperature, cfg.weight_clip), advantage, valid

    def value_loss(self, value_params, obs, target):
        """mean (f(s) - (R^lambda - mu) / sigma)^2, i.e. mean (V(s) - R^lambda)^2 / sigma^2 (target standardised)."""
        loss = jnp.mean((super().value(dict(value=value_params), obs) - target) ** 2)
        return loss, {}

    def policy_loss(self, policy_params, obs, action, weight):
        """-mean w log pi(a|s) - c_H H[pi]   (w constant)."""
        cfg, D = self.cfg, self.distribution
        if not self.discrete and not cfg.learn_std:
            policy_params = dict(policy_params, log_std=jax.lax.stop_gradient(policy_params["log_std"]))
        dist = self.dist(policy_params, obs)
        log_prob = D.log_prob(dist, action)
        entropy = D.entropy(dist).mean()
        loss = -jnp.mean(weight * log_prob) - cfg.ent_coef * entropy
        return loss, {"log_prob": log_prob.mean(), "entropy": entropy}

    def _minibatch_steps(self, optimizer, params, opt_state, loss_fn, data, key, n_steps: int, n_rows):
        """n_steps Adam steps of loss_fn(params, *minibatch) on minibatches drawn uniformly from data's
        first n_rows rows (the filled slots: slots fill in the order 0, 1, ..., K - 1)."""
        if n_steps == 0:
            return params, opt_state, {}
        batch = self.cfg.batch_size
        index = jax.random.randint(key, (n_steps, batch), 0, n_rows)

        def step(carry, idx):
            params, opt_state, loss, metrics = gradient_step(optimizer, loss_fn, *carry, *(x[idx] for x in data))
            return (params, opt_state), dict(metrics, loss=loss)

        (params, opt_state), metrics = jax.lax.scan(step, (params, opt_state), index)
        return params, opt_state, {k: v.mean() for k, v in metrics.items()}

    def update(self, state: AWRState, rollout: Rollout, key: jax.Array):
        cfg = self.cfg
        k_value, k_policy = jax.random.split(key)
        flat = lambda x: x.reshape((-1,) + x.shape[3:])  # noqa: E731  (K, T, n, ...) -> (K T n, ...)
        # 1. replay: the new rollout replaces the oldest
        state = ring_write(state, rollout)
        n_rows = (state.filled.sum() * (cfg.n_steps * self.n_envs)).astype(jnp.int32)
        params = state.params

        # 2. TD(lambda) targets with the current V
        _, target, value_before = self.lambda_returns(params, state.ring)
        valid = jnp.broadcast_to(state.filled[:, None, None] > 0, target.shape)
        v = valid.astype(jnp.float32)
        masked_mean = lambda x: jnp.where(valid, x, 0.0).sum() / v.sum()  # noqa: E731  (over filled rows)
        masked_var = lambda x: masked_mean((x - masked_mean(x)) ** 2)  # noqa: E731
        if cfg.normalize_value_targets:  # (mu, sigma) <- the targets' mean and std; V itself unchanged
            norm = {"mean": masked_mean(target), "std": jnp.maximum(jnp.sqrt(masked_var(target)), MIN_TARGET_STD)}
            params = dict(params, value=rescale_value_head(params["value"], params["value_norm"], norm), value_norm=norm)
        # 3. regress V on them:  f(s) on (R^lambda - mu) / sigma
        norm = params["value_norm"]
        value_params, value_opt, value_metrics = self._minibatch_steps(
            self.value_optimizer, params["value"], state.opt_state["value"], self.value_loss,
            (flat(state.ring.obs), flat((target - norm["mean"]) / norm["std"])), k_value, cfg.value_steps, n_rows)
        params = dict(params, value=value_params)

        # 4. advantages with the new V -> w = min(exp(A / beta), w_max);  weighted regression of pi
        weight, _, _ = self.weights(params, state)
        policy_params, policy_opt, policy_metrics = self._minibatch_steps(
            self.policy_optimizer, _policy_part(params), state.opt_state["policy"], self.policy_loss,
            (flat(state.ring.obs), flat(state.ring.action), flat(weight)), k_policy, cfg.policy_steps, n_rows)
        params = dict(params, **policy_params)

        state = state._replace(params=params, opt_state={"policy": policy_opt, "value": value_opt},
                               n_updates=state.n_updates + 1)
        metrics = {"value_loss": value_metrics.get("loss", jnp.zeros(())),  # in standardised units
                   "policy_loss": policy_metrics.get("loss", jnp.zeros(())),
                   "entropy": policy_metrics.get("entropy", jnp.zeros(())),
                   "weight_mean": masked_mean(weight),
                   "weight_clipped_fraction": masked_mean((weight >= cfg.weight_clip).astype(jnp.float32)),
                   "explained_variance": 1.0 - masked_var(target - value_before) / (masked_var(target) + 1e-8),
                   "value_mean": norm["mean"], "value_std": norm["std"],
                   "replay_fill": state.filled.mean()}
        return state, metrics


@register(family="onpolicy", action_kinds=("Box", "Discrete"))
class AWR(OnPolicyAlgorithm):
    """AWR. ``AWR("MlpPolicy", env, temperature=1.0, weight_clip=20, buffer_rollouts=250, ...)``."""

    name = "awr"
    config_cls = AWRConfig
    agent_cls = AWRAgent

    def _build(self, obs_dim: int, action_space: gym.Space, n_envs: int) -> None:
        # as OnPolicyAlgorithm._build, with n_envs for the ring's shape
        self.agent = self.agent_cls(self.config, obs_dim, *self._action_layout(action_space), n_envs)
        self.spec = OnPolicySpec(self.agent, n_envs)
        self._fns = compiled(self.spec)
