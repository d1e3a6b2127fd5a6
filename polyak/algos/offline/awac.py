"""Advantage-Weighted Actor-Critic (Nair et al. 2020), as CORL's AWAC.

Per gradient step, on a batch (s, a, r, s', d) of the dataset:
  1. target        y = r + gamma (1 - d) min_j Q'_j(s', a'),  a' ~ pi(.|s') clipped to [-1, 1]
  2. critic loss   L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2
  3. policy        A = min_j Q_j(s, a) - min_j Q_j(s, a_pi),  a_pi ~ pi(.|s)   (critics after step 2)
                   L_pi = -mean w log pi(a|s),  w = min(exp(A / lambda), w_max)
  4. Polyak        theta'_Q <- tau theta_Q + (1 - tau) theta'_Q
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from polyak.algos.offline.host import OfflineAlgorithm
from polyak.algos.offline.learner import GaussianPolicy, OfflineAgent, OfflineConfig
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.distributions import DiagGaussian
from polyak.core.losses import bootstrap_target, polyak_average
from polyak.core.types import Transition, UpdateInfo


@dataclass(frozen=True)
class AWACConfig(OfflineConfig):
    awac_lambda: float = 1.0  # temperature of the advantage weights exp(A / lambda)
    max_weight: float = 100.0  # the weights are clipped here

    def validate(self) -> None:
        super().validate()
        need(self.awac_lambda > 0, f"awac_lambda must be > 0, got {self.awac_lambda}")
        need(self.max_weight > 0, f"max_weight must be > 0, got {self.max_weight}")


def awac_weights(advantage: jax.Array, awac_lambda: float, max_weight: float) -> jax.Array:
    """w = min(exp(A / lambda), w_max): constants for the policy's gradient."""
    return jax.lax.stop_gradient(jnp.minimum(jnp.exp(advantage / awac_lambda), max_weight))


class AWACState(NamedTuple):
    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    actor_opt: Any
    critic_opt: Any
    n_updates: jax.Array


@dataclass(frozen=True)
class AWACAgent(OfflineAgent):
    cfg: AWACConfig

    @cached_property
    def actor(self) -> GaussianPolicy:
        return GaussianPolicy(self.cfg.actor_hidden, self.act_dim)

    def init(self, key: jax.Array) -> AWACState:
        k_actor, k_critic = jax.random.split(key)
        obs, act = jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.act_dim))
        actor_params = self.actor.init(k_actor, obs)
        critic_params = self.critic.init(k_critic, obs, act)
        return AWACState(actor_params, critic_params, critic_params, self.actor_optimizer.init(actor_params),
                         self.optimizer.init(critic_params), jnp.zeros((), jnp.int32))

    def act(self, state: AWACState, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        dist = self.actor.apply(state.actor_params, obs)
        return jnp.clip(DiagGaussian.mode(dist) if deterministic else DiagGaussian.sample(dist, key), -1.0, 1.0)

    def update(self, state: AWACState, batch: Transition, key: jax.Array) -> tuple[AWACState, dict, UpdateInfo]:
        cfg = self.cfg
        k_next, k_pi = jax.random.split(key)
        sample = lambda obs, k: jnp.clip(  # noqa: E731
            DiagGaussian.sample(self.actor.apply(state.actor_params, obs), k), -1.0, 1.0)
        # 1. target: y = r + gamma (1 - d) min_j Q'_j(s', a'), a' ~ pi(.|s')
        next_q = self.critic.apply(state.target_critic_params, batch.next_obs, sample(batch.next_obs, k_next))
        y = jax.lax.stop_gradient(bootstrap_target(batch.reward, batch.terminated, cfg.gamma, next_q.min(axis=0)))
        # 2. critic step
        critic_params, critic_opt, critic_loss, q = self.critic_step(state.critic_params, state.critic_opt, batch, y)

        # 3. policy: advantage of the dataset's action over the policy's, weights min(exp(A / lambda), w_max)
        q_data = self.critic.apply(critic_params, batch.obs, batch.action).min(axis=0)
        v_pi = self.critic.apply(critic_params, batch.obs, sample(batch.obs, k_pi)).min(axis=0)
        advantage = q_data - v_pi
        weights = awac_weights(advantage, cfg.awac_lambda, cfg.max_weight)

        actor_params, actor_opt, actor_loss = self.weighted_regression_step(state.actor_params, state.actor_opt,
                                                                            batch.obs, batch.action, weights)
        # 4. Polyak averaging of the target critics
        target = polyak_average(critic_params, state.target_critic_params, cfg.tau)
        new_state = AWACState(actor_params, critic_params, target, actor_opt, critic_opt, state.n_updates + 1)
        metrics = {"critic_loss": critic_loss, "actor_loss": actor_loss, "advantage_mean": advantage.mean(),
                   "weight_mean": weights.mean(), "q_mean": q.mean()}
        return new_state, metrics, UpdateInfo(q_abs_max=jnp.abs(q).max())


@register(family="offline", action_kinds=("Box",), jitted_loop=False)
class AWAC(OfflineAlgorithm):
    """AWAC. ``AWAC("MlpPolicy", dataset=ID, awac_lambda=1.0)``."""

    name = "awac"
    config_cls = AWACConfig
    agent_cls = AWACAgent
