"""Implicit Q-Learning (Kostrikov et al. 2021): never queries Q at an action outside the dataset.

Per gradient step, on a batch (s, a, r, s', d) of the dataset:
  1. value (expectile)  L_V = mean |tau - 1(u < 0)| u^2,  u = min_j Q'_j(s, a) - V(s)   (tau > 0.5: an upper expectile)
  2. critic             y = r + gamma (1 - d) V(s')   (V before step 1),  L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2
  3. policy extraction  L_pi = -mean w log pi(a|s),  w = min(exp(beta (Q'(s, a) - V(s))), w_max)
                        (advantage-weighted regression onto the dataset's own actions; cosine-decayed step size)
  4. Polyak             theta'_Q <- tau_polyak theta_Q + (1 - tau_polyak) theta'_Q
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from polyak.algos.offline.host import OfflineAlgorithm
from polyak.algos.offline.learner import GaussianPolicy, OfflineAgent, OfflineConfig
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.distributions import DiagGaussian
from polyak.core.losses import bootstrap_target, polyak_average
from polyak.core.networks import MLP
from polyak.core.optim import gradient_step
from polyak.core.types import Transition, UpdateInfo


@dataclass(frozen=True)
class IQLConfig(OfflineConfig):
    expectile: float = 0.7  # tau of the value's expectile regression
    beta: float = 3.0  # inverse temperature of the advantage weights
    max_weight: float = 100.0  # exp-advantage weights are clipped here
    actor_lr_decay_steps: int = 1_000_000  # cosine decay of the policy's step size to 0 over these updates (0: none)

    def validate(self) -> None:
        super().validate()
        need(0 < self.expectile < 1, f"expectile must be in (0, 1), got {self.expectile}")
        need(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        need(self.max_weight > 0, f"max_weight must be > 0, got {self.max_weight}")
        need(self.actor_lr_decay_steps >= 0, f"actor_lr_decay_steps must be >= 0, got {self.actor_lr_decay_steps}")


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """mean |tau - 1(u < 0)| u^2 for u = target - prediction: positive errors weigh tau, negative 1 - tau."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return jnp.mean(weight * diff**2)


def advantage_weights(advantage: jax.Array, beta: float, max_weight: float) -> jax.Array:
    """w = min(exp(beta A), w_max): constants for the policy's gradient."""
    return jax.lax.stop_gradient(jnp.minimum(jnp.exp(beta * advantage), max_weight))


class IQLState(NamedTuple):
    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    value_params: Any
    actor_opt: Any
    critic_opt: Any
    value_opt: Any
    n_updates: jax.Array


@dataclass(frozen=True)
class IQLAgent(OfflineAgent):
    cfg: IQLConfig

    @cached_property
    def actor(self) -> GaussianPolicy:
        return GaussianPolicy(self.cfg.actor_hidden, self.act_dim, tanh_mean=True)

    @cached_property
    def value(self) -> MLP:
        return MLP(self.cfg.critic_hidden, 1)

    @cached_property
    def actor_optimizer(self) -> optax.GradientTransformation:
        cfg = self.cfg
        if cfg.actor_lr_decay_steps == 0:
            return optax.adam(cfg.actor_learning_rate)
        return optax.adam(optax.cosine_decay_schedule(cfg.actor_learning_rate, cfg.actor_lr_decay_steps))

    def init(self, key: jax.Array) -> IQLState:
        k_actor, k_critic, k_value = jax.random.split(key, 3)
        obs, act = jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.act_dim))
        actor_params = self.actor.init(k_actor, obs)
        critic_params = self.critic.init(k_critic, obs, act)
        value_params = self.value.init(k_value, obs)
        return IQLState(actor_params, critic_params, critic_params, value_params,
                        self.actor_optimizer.init(actor_params), self.optimizer.init(critic_params),
                        self.optimizer.init(value_params), jnp.zeros((), jnp.int32))

    def act(self, state: IQLState, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        dist = self.actor.apply(state.actor_params, obs)
        action = DiagGaussian.mode(dist) if deterministic else DiagGaussian.sample(dist, key)
        return jnp.clip(action, -1.0, 1.0)

    def v(self, value_params, obs: jax.Array) -> jax.Array:
        return self.value.apply(value_params, obs)[..., 0]

    def update(self, state: IQLState, batch: Transition, key: jax.Array) -> tuple[IQLState, dict, UpdateInfo]:
        cfg = self.cfg
        target_q = self.critic.apply(state.target_critic_params, batch.obs, batch.action).min(axis=0)
        next_v = self.v(state.value_params, batch.next_obs)

        # 1. value: expectile regression of V(s) onto min_j Q'_j(s, a)
        def value_loss_fn(value_params):
            v = self.v(value_params, batch.obs)
            return expectile_loss(target_q - v, cfg.expectile), v

        value_params, value_opt, value_loss, v = gradient_step(self.optimizer, value_loss_fn, state.value_params,
                                                               state.value_opt)
        # 2. critic: y = r + gamma (1 - d) V(s')
        y = jax.lax.stop_gradient(bootstrap_target(batch.reward, batch.terminated, cfg.gamma, next_v))
        critic_params, critic_opt, critic_loss, q = self.critic_step(state.critic_params, state.critic_opt, batch, y)

        # 3. policy extraction: -mean min(exp(beta (Q'(s, a) - V(s))), w_max) log pi(a|s)
        advantage = target_q - v
        weights = advantage_weights(advantage, cfg.beta, cfg.max_weight)

        actor_params, actor_opt, actor_loss = self.weighted_regression_step(state.actor_params, state.actor_opt,
                                                                            batch.obs, batch.action, weights)
        # 4. Polyak averaging of the target critics
        target = polyak_average(critic_params, state.target_critic_params, cfg.tau)
        new_state = IQLState(actor_params, critic_params, target, value_params, actor_opt, critic_opt, value_opt,
                             state.n_updates + 1)
        metrics = {"critic_loss": critic_loss, "value_loss": value_loss, "actor_loss": actor_loss,
                   "advantage_mean": advantage.mean(), "weight_mean": weights.mean(), "q_mean": q.mean()}
        return new_state, metrics, UpdateInfo(q_abs_max=jnp.abs(q).max())


@register(family="offline", action_kinds=("Box",), jitted_loop=False)
class IQL(OfflineAlgorithm):
    """IQL. ``IQL("MlpPolicy", dataset=ID, expectile=0.7, beta=3.0)``."""

    name = "iql"
    config_cls = IQLConfig
    agent_cls = IQLAgent
