"""Deep Deterministic Policy Gradient (Lillicrap et al. 2016).

Per gradient step, on a batch (s, a, r, s', d):
  1. target        y = r + gamma (1 - d) Q'(s', mu'(s'))
  2. critic loss   L_Q = 1/2 mean (Q(s, a) - y)^2
  3. actor loss    L_mu = -mean Q(s, mu(s))
  4. Polyak        theta' <- tau theta + (1 - tau) theta'  (actor and critic)
Exploration: a = clip(mu(s) + noise, -1, 1) with Gaussian or Ornstein-Uhlenbeck noise.
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
class DDPGConfig(OffPolicyConfig):
    n_critics: int = 1
    exploration_noise: float = 0.1  # default Gaussian sigma when no action_noise is given

    def validate(self) -> None:
        super().validate()
        if self.n_critics != 1:
            raise HyperparameterError(f"DDPG uses one critic (n_critics=1), got {self.n_critics}; TD3 uses two")
        if self.exploration_noise < 0:
            raise HyperparameterError(f"exploration_noise must be >= 0, got {self.exploration_noise}")


@dataclass(frozen=True)
class DDPGAgent(DeterministicAgent):
    cfg: DDPGConfig

    def update(self, state: TD3State, batch: Transition, key: jax.Array) -> tuple[TD3State, dict, UpdateInfo]:
        cfg = self.cfg
        # 1. target: y = r + gamma (1 - d) Q'(s', mu'(s'))
        next_action = self.actor.apply(state.target_actor_params, batch.next_obs)
        next_q = self.critic.apply(state.target_critic_params, batch.next_obs, next_action)[0]
        y = jax.lax.stop_gradient(bootstrap_target(batch.reward, batch.terminated, cfg.gamma, next_q))
        # 2. critic step, 3. actor step (on the updated critic)
        critic_params, critic_opt, critic_loss, q = self.critic_step(state.critic_params, state.critic_opt, batch, y)
        actor_params, actor_opt, actor_loss = self.actor_step(state, critic_params, batch.obs)
        # 4. Polyak averaging
        new_state = TD3State(
            actor_params, critic_params,
            polyak_average(actor_params, state.target_actor_params, cfg.tau),
            polyak_average(critic_params, state.target_critic_params, cfg.tau),
            actor_opt, critic_opt, state.n_updates + 1, actor_loss)
        metrics = {"critic_loss": critic_loss, "actor_loss": actor_loss, "q_mean": q.mean()}
        return new_state, metrics, UpdateInfo(q_abs_max=jnp.abs(q).max())


@register(family="offpolicy", action_kinds=("Box",))
class DDPG(OffPolicyAlgorithm):
    """DDPG. ``DDPG("MlpPolicy", env, action_noise=NormalActionNoise(...), ...)``."""

    name = "ddpg"
    config_cls = DDPGConfig
    agent_cls = DDPGAgent
    gaussian_exploration = True
