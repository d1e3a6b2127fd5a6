"""TD3+BC (Fujimoto & Gu 2021): TD3 whose actor also regresses onto the dataset's actions.

Per gradient step, on a batch (s, a, r, s', d) of the dataset:
  1. target smoothing  a' = clip(mu'(s') + clip(eps, -c, c), -1, 1),  eps ~ N(0, sigma~^2)
  2. clipped double Q  y = r + gamma (1 - d) min_j Q'_j(s', a')
  3. critic loss       L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2
  4. every `policy_delay` critic steps:
       actor loss      L_mu = -lambda mean Q_1(s, mu(s)) + mean (mu(s) - a)^2,  lambda = alpha / mean |Q_1(s, mu(s))|
       Polyak          theta' <- tau theta + (1 - tau) theta'  (actor and critics)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from polyak.algos.offline.host import OfflineAlgorithm
from polyak.algos.offline.learner import OfflineAgent, OfflineConfig
from polyak.algos.offpolicy.actor_critic import DeterministicAgent, TD3State
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.losses import bootstrap_target, polyak_average
from polyak.core.optim import gradient_step
from polyak.core.types import Transition, UpdateInfo


@dataclass(frozen=True)
class TD3BCConfig(OfflineConfig):
    alpha: float = 2.5  # weight of the Q term against behaviour cloning (lambda = alpha / mean |Q|)
    policy_delay: int = 2
    target_policy_noise: float = 0.2
    target_noise_clip: float = 0.5
    exploration_noise: float = 0.1  # online fine-tuning only: std of the Gaussian noise added to mu(s) (TD3's)

    def validate(self) -> None:
        super().validate()
        need(self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}")
        need(self.policy_delay >= 1, f"policy_delay must be >= 1, got {self.policy_delay}")
        need(self.target_policy_noise >= 0 and self.target_noise_clip >= 0,
             "target_policy_noise and target_noise_clip must be >= 0")
        need(self.exploration_noise >= 0, f"exploration_noise must be >= 0, got {self.exploration_noise}")


def td3_bc_actor_loss(q_pi: jax.Array, pi_action: jax.Array, data_action: jax.Array, alpha: float):
    """L = -lambda mean Q(s, mu(s)) + mean (mu(s) - a)^2 with lambda = alpha / mean |Q(s, mu(s))| held constant
    (no gradient through lambda): the Q term's scale is fixed whatever the rewards' scale. Returns (L, lambda, BC term
    mean (mu(s) - a)^2)."""
    lam = alpha / jax.lax.stop_gradient(jnp.abs(q_pi).mean())
    bc = jnp.mean((pi_action - data_action) ** 2)
    return -lam * q_pi.mean() + bc, lam, bc


# TD3's state (the same fields, derived, not restated) plus the behaviour-cloning term of the latest actor step:
# mean (mu(s) - a)^2 on that step's batch, before the step, logged as `bc_mse` between actor steps
TD3BCState = NamedTuple("TD3BCState", [*TD3State.__annotations__.items(), ("last_bc_mse", jax.Array)])


@dataclass(frozen=True)
class TD3BCAgent(DeterministicAgent, OfflineAgent):
    cfg: TD3BCConfig

    def init(self, key: jax.Array) -> TD3BCState:
        return TD3BCState(*super().init(key), last_bc_mse=jnp.zeros((), jnp.float32))

    def update(self, state: TD3BCState, batch: Transition, key: jax.Array) -> tuple[TD3BCState, dict, UpdateInfo]:
        cfg = self.cfg
        # 1. target policy smoothing: a' = clip(mu'(s') + clip(eps, -c, c), -1, 1)
        next_action = self.smoothed_target_action(state.target_actor_params, batch.next_obs, key)
        # 2. clipped double Q: y = r + gamma (1 - d) min_j Q'_j(s', a')
        next_q = self.critic.apply(state.target_critic_params, batch.next_obs, next_action).min(axis=0)
        y = jax.lax.stop_gradient(bootstrap_target(batch.reward, batch.terminated, cfg.gamma, next_q))
        # 3. critic step
        critic_params, critic_opt, critic_loss, q = self.critic_step(state.critic_params, state.critic_opt, batch, y)
        n_updates = state.n_updates + 1
        state = state._replace(critic_params=critic_params, critic_opt=critic_opt, n_updates=n_updates)

        # 4. delayed actor step: -lambda Q_1(s, mu(s)) + (mu(s) - a)^2; Polyak averaging of all targets
        def delayed(state: TD3BCState) -> TD3BCState:
            def actor_loss_fn(actor_params):
                pi = self.actor.apply(actor_params, batch.obs)
                q_pi = self.q1(state.critic_params, batch.obs, pi)
                loss, _lam, bc = td3_bc_actor_loss(q_pi, pi, batch.action, cfg.alpha)
                return loss, bc

            actor_params, actor_opt, actor_loss, bc = gradient_step(self.actor_optimizer, actor_loss_fn,
                                                                    state.actor_params, state.actor_opt)
            return state._replace(
                actor_params=actor_params, actor_opt=actor_opt, last_actor_loss=actor_loss, last_bc_mse=bc,
                target_actor_params=polyak_average(actor_params, state.target_actor_params, cfg.tau),
                target_critic_params=polyak_average(state.critic_params, state.target_critic_params, cfg.tau))

        state = jax.lax.cond(n_updates % cfg.policy_delay == 0, delayed, lambda s: s, state)
        # the actor's loss terms are those of its latest step (no extra actor pass per critic step)
        metrics = {"critic_loss": critic_loss, "actor_loss": state.last_actor_loss, "bc_mse": state.last_bc_mse,
                   "q_mean": q.mean()}
        return state, metrics, UpdateInfo(q_abs_max=jnp.abs(q).max())


@register(family="offline", action_kinds=("Box",), jitted_loop=False)
class TD3BC(OfflineAlgorithm):
    """TD3+BC. ``TD3BC("MlpPolicy", dataset="polyak/Pendulum-v1/medium-v0", alpha=2.5)``."""

    name = "td3_bc"
    config_cls = TD3BCConfig
    agent_cls = TD3BCAgent
    gaussian_exploration = True  # online fine-tuning: mu(s) + N(0, exploration_noise^2)
