"""Twin Delayed DDPG (Fujimoto et al. 2018).

Per gradient step, on a batch (s, a, r, s', d):
  1. target smoothing  a' = clip(mu'(s') + clip(eps, -c, c), -1, 1),  eps ~ N(0, sigma~^2)
  2. clipped double Q  y = r + gamma (1 - d) min_j Q'_j(s', a')
  3. critic loss       L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2
  4. every `policy_delay` critic steps:
       actor loss      L_mu = -mean Q_1(s, mu(s))
       Polyak          theta' <- tau theta + (1 - tau) theta'  (actor and critics)
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from polyak.algos.offpolicy.actor_critic import DeterministicAgent, TD3State
from polyak.algos.offpolicy.host import OffPolicyAlgorithm
from polyak.algos.registry import register
from polyak.core.config import HyperparameterError, OffPolicyConfig
from polyak.core.losses import bootstrap_target, polyak_average
from polyak.core.types import Transition, UpdateInfo


@dataclass(frozen=True)
class TD3Config(OffPolicyConfig):
    policy_delay: int = 2
    target_policy_noise: float = 0.2
    target_noise_clip: float = 0.5
    exploration_noise: float = 0.1  # default Gaussian sigma when no action_noise is given

    def validate(self) -> None:
        super().validate()
        if self.policy_delay < 1:
            raise HyperparameterError(f"policy_delay must be >= 1, got {self.policy_delay}")
        if self.target_policy_noise < 0 or self.target_noise_clip < 0:
            raise HyperparameterError("target_policy_noise and target_noise_clip must be >= 0")
        if self.exploration_noise < 0:
            raise HyperparameterError(f"exploration_noise must be >= 0, got {self.exploration_noise}")


@dataclass(frozen=True)
class TD3Agent(DeterministicAgent):
    cfg: TD3Config

    def update(self, state: TD3State, batch: Transition, key: jax.Array) -> tuple[TD3State, dict, UpdateInfo]:
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

        # 4. delayed actor step on Q_1, then Polyak averaging of all targets
        def delayed(state: TD3State) -> TD3State:
            actor_params, actor_opt, actor_loss = self.actor_step(state, state.critic_params, batch.obs)
            return state._replace(
                actor_params=actor_params, actor_opt=actor_opt, last_actor_loss=actor_loss,
                target_actor_params=polyak_average(actor_params, state.target_actor_params, cfg.tau),
                target_critic_params=polyak_average(state.critic_params, state.target_critic_params, cfg.tau))

        state = jax.lax.cond(n_updates % cfg.policy_delay == 0, delayed, lambda s: s, state)
        metrics = {"critic_loss": critic_loss, "actor_loss": state.last_actor_loss, "q_mean": q.mean()}
        return state, metrics, UpdateInfo(q_abs_max=jnp.abs(q).max())


@register(family="offpolicy", action_kinds=("Box",))
class TD3(OffPolicyAlgorithm):
    """TD3. ``TD3("MlpPolicy", env, policy_delay=2, target_policy_noise=0.2, ...)``."""

    name = "td3"
    config_cls = TD3Config
    agent_cls = TD3Agent
    gaussian_exploration = True
