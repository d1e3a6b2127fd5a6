"""NFQCA (Hafner & Riedmiller 2011): neural fitted Q-iteration with a continuous actor, in alternating phases.

Outer iteration k is `critic_steps` + `actor_steps` gradient steps; per gradient step, on a batch (s, a, r, s', d):
  1. new iteration (its first step)   Q_k <- Q   (frozen; Q and pi carry on from where they are: warm starts)
  2. the first K_q = `critic_steps`:  y = r + gamma (1 - d) Q_k(s', pi(s'))   (pi is fixed in this phase)
                                      L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2, one Adam step
  3. the next K_pi = `actor_steps`:   L_pi = -mean q(s, pi(s)) with the Q_{k+1} just fitted, one Adam step
                                      (q = min_j Q_j; pi(s) = tanh(MLP(s)), deterministic)
Acting: pi(s).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from polyak.algos.offline.fitted_q import check_tau_unused, freeze, new_iteration
from polyak.algos.offline.host import OfflineAlgorithm
from polyak.algos.offline.learner import OfflineAgent, OfflineConfig
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.losses import bootstrap_target
from polyak.core.networks import DeterministicActor
from polyak.core.optim import gradient_step
from polyak.core.types import Transition, UpdateInfo


@dataclass(frozen=True)
class NFQCAConfig(OfflineConfig):
    critic_steps: int = 200  # K_q: critic gradient steps per outer iteration, onto the targets of Q_k and pi
    actor_steps: int = 50  # K_pi: actor gradient steps per outer iteration, on the critic just fitted

    def validate(self) -> None:
        super().validate()
        check_tau_unused(self)
        need(self.critic_steps >= 1 and self.actor_steps >= 1,
             f"critic_steps and actor_steps must be >= 1, got {self.critic_steps} and {self.actor_steps}")


class NFQCAState(NamedTuple):
    actor_params: Any
    critic_params: Any
    target_critic_params: Any  # Q_k, frozen for the iteration
    actor_opt: Any
    critic_opt: Any
    n_updates: jax.Array
    critic_loss: jax.Array  # the last critic step's loss
    actor_loss: jax.Array  # the last actor step's loss


@dataclass(frozen=True)
class NFQCAAgent(OfflineAgent):
    cfg: NFQCAConfig

    @cached_property
    def actor(self) -> DeterministicActor:
        return DeterministicActor(self.cfg.actor_hidden, self.act_dim)

    def init(self, key: jax.Array) -> NFQCAState:
        k_actor, k_critic = jax.random.split(key)
        obs, act = jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.act_dim))
        actor_params, critic_params = self.actor.init(k_actor, obs), self.critic.init(k_critic, obs, act)
        zero = jnp.zeros((), jnp.float32)
        return NFQCAState(actor_params, critic_params, critic_params, self.actor_optimizer.init(actor_params),
                          self.optimizer.init(critic_params), jnp.zeros((), jnp.int32), zero, zero)

    def act(self, state: NFQCAState, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        return self.actor.apply(state.actor_params, obs)

    def q(self, critic_params, obs: jax.Array, action: jax.Array) -> jax.Array:
        return self.critic.apply(critic_params, obs, action).min(axis=0)

    def target(self, q_k, actor_params, batch: Transition) -> jax.Array:
        """y = r + gamma (1 - d) Q_k(s', pi(s')): the actor chooses a', the frozen Q_k evaluates it."""
        next_q = self.q(q_k, batch.next_obs, self.actor.apply(actor_params, batch.next_obs))
        return jax.lax.stop_gradient(bootstrap_target(batch.reward, batch.terminated, self.cfg.gamma, next_q))

    def update(self, state: NFQCAState, batch: Transition, key: jax.Array) -> tuple[NFQCAState, dict, UpdateInfo]:
        cfg = self.cfg
        step = state.n_updates % (cfg.critic_steps + cfg.actor_steps)
        # 1. a new iteration freezes Q_k <- Q
        q_k = freeze(state.critic_params, state.target_critic_params,
                     new_iteration(state.n_updates, cfg.critic_steps + cfg.actor_steps))
        state = state._replace(target_critic_params=q_k)

        def critic_phase(state: NFQCAState) -> tuple[NFQCAState, jax.Array]:
            # 2. y = r + gamma (1 - d) Q_k(s', pi(s')), one regression step
            y = self.target(state.target_critic_params, state.actor_params, batch)
            params, opt, loss, q = self.critic_step(state.critic_params, state.critic_opt, batch, y)
            return state._replace(critic_params=params, critic_opt=opt, critic_loss=loss), jnp.abs(q).max()

        def actor_phase(state: NFQCAState) -> tuple[NFQCAState, jax.Array]:
            # 3. L_pi = -mean q(s, pi(s)) on the fitted critic, one step
            def actor_loss_fn(actor_params):
                q_pi = self.q(state.critic_params, batch.obs, self.actor.apply(actor_params, batch.obs))
                return -q_pi.mean(), q_pi

            params, opt, loss, q_pi = gradient_step(self.actor_optimizer, actor_loss_fn, state.actor_params,
                                                    state.actor_opt)
            return state._replace(actor_params=params, actor_opt=opt, actor_loss=loss), jnp.abs(q_pi).max()

        state, q_abs_max = jax.lax.cond(step < cfg.critic_steps, critic_phase, actor_phase, state)
        state = state._replace(n_updates=state.n_updates + 1)
        metrics = {"critic_loss": state.critic_loss, "actor_loss": state.actor_loss}
        return state, metrics, UpdateInfo(q_abs_max=q_abs_max)


@register(family="offline", action_kinds=("Box",), jitted_loop=False)
class NFQCA(OfflineAlgorithm):
    """NFQCA. ``NFQCA("MlpPolicy", dataset=ID, critic_steps=200, actor_steps=50)``."""

    name = "nfqca"
    config_cls = NFQCAConfig
    agent_cls = NFQCAAgent
