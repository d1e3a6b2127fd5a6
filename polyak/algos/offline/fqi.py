"""Fitted Q-iteration with an explicit maximiser over continuous actions (Ernst et al. 2005; NFQ, Riedmiller 2005).

Outer iteration k is `iteration_steps` gradient steps; per gradient step, on a batch (s, a, r, s', d) of the data:
  1. new iteration      Q_k <- Q at its first step (frozen; Q_{k+1} warm-starts from Q_k)
  2. explicit max       a* = argmax_a' Q_k(s', a') for every s' of the batch: projected gradient ascent on
                        [-1, 1]^d with restarts until delta < eps (or CEM), `polyak.core.maximize`
  3. target             y = r + gamma (1 - d) Q_k(s', a*)
  4. regression         L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2, one Adam step
Acting: pi(s) = argmax_a Q(s, a) by the same maximiser; there is no policy network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from polyak.algos.offline.fitted_q import FittedQAgent, FittedQConfig, freeze, new_iteration
from polyak.algos.offline.host import OfflineAlgorithm
from polyak.algos.registry import register
from polyak.core.maximize import Argmax
from polyak.core.losses import bootstrap_target
from polyak.core.types import Transition, UpdateInfo


@dataclass(frozen=True)
class FQIConfig(FittedQConfig):
    """FQI's hyperparameters: those every fitted Q-iteration shares (`fitted_q.FittedQConfig`)."""


class FQIState(NamedTuple):
    critic_params: Any
    target_critic_params: Any  # Q_k, frozen for the iteration
    critic_opt: Any
    n_updates: jax.Array


@dataclass(frozen=True)
class FQIAgent(FittedQAgent):
    cfg: FQIConfig

    def init(self, key: jax.Array) -> FQIState:
        params = self.critic.init(key, jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.act_dim)))
        return FQIState(params, params, self.optimizer.init(params), jnp.zeros((), jnp.int32))

    def act(self, state: FQIState, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        return self.argmax_q(state.critic_params, obs, self.greedy_key(key, deterministic)).action

    def target(self, q_k, batch: Transition, key: jax.Array) -> tuple[jax.Array, Argmax]:
        """y = r + gamma (1 - d) max_a' Q_k(s', a'): the explicit maximiser chooses a' on Q_k, Q_k evaluates it."""
        best = self.argmax_q(q_k, batch.next_obs, key)
        return jax.lax.stop_gradient(bootstrap_target(batch.reward, batch.terminated, self.cfg.gamma, best.value)), best

    def update(self, state: FQIState, batch: Transition, key: jax.Array) -> tuple[FQIState, dict, UpdateInfo]:
        cfg = self.cfg
        # 1. a new iteration starts from Q_k <- Q
        q_k = freeze(state.critic_params, state.target_critic_params,
                     new_iteration(state.n_updates, cfg.iteration_steps))
        # 2.-3. y = r + gamma (1 - d) max_a' Q_k(s', a'), the max by the explicit maximiser
        y, best = self.target(q_k, batch, key)
        # 4. one regression step of Q_{k+1} onto y
        critic_params, critic_opt, critic_loss, q = self.critic_step(state.critic_params, state.critic_opt, batch, y)
        state = FQIState(critic_params, q_k, critic_opt, state.n_updates + 1)
        metrics = {"critic_loss": critic_loss, "q_mean": q.mean(), "target_mean": y.mean(),
                   "ascent_iterations": best.iterations.astype(jnp.float32)}
        return state, metrics, UpdateInfo(q_abs_max=jnp.abs(q).max())


@register(family="offline", action_kinds=("Box",), jitted_loop=False)
class FQI(OfflineAlgorithm):
    """FQI with an explicit maximiser. ``FQI("MlpPolicy", dataset=ID, iteration_steps=200, maximizer="gradient")``."""

    name = "fqi"
    config_cls = FQIConfig
    agent_cls = FQIAgent
