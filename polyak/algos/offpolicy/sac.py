"""Soft Actor-Critic (Haarnoja et al. 2018) with automatic temperature.

Per gradient step, on a batch (s, a, r, s', d):
  1. soft target     y = r + gamma (1 - d) (min_j Q'_j(s', a') - alpha log pi(a'|s')),  a' ~ pi(.|s')
  2. critic loss     L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2
  3. actor loss      L_pi = mean (alpha log pi(a~|s) - min_j Q_j(s, a~)),  a~ ~ pi(.|s) reparameterised
  4. temperature     L_alpha = -mean log_alpha (log pi(a~|s) + H_target),  H_target = -dim(A)
  5. Polyak          theta'_Q <- tau theta_Q + (1 - tau) theta'_Q
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from polyak.algos.offpolicy.actor_critic import ActorCriticAgent
from polyak.algos.offpolicy.host import OffPolicyAlgorithm
from polyak.algos.registry import register
from polyak.core.config import HyperparameterError, OffPolicyConfig
from polyak.core.losses import bootstrap_target, polyak_average
from polyak.core.networks import GaussianActor, squashed_gaussian_sample
from polyak.core.optim import apply_gradients, gradient_step
from polyak.core.types import Transition, UpdateInfo


@dataclass(frozen=True)
class SACConfig(OffPolicyConfig):
    ent_coef: str | float = "auto"  # "auto", "auto_<initial value>" or a fixed alpha > 0
    target_entropy: str | float = "auto"  # "auto" means -dim(A)
    target_update_interval: int = 1

    def validate(self) -> None:
        super().validate()
        _ = self.initial_alpha  # raises on an invalid ent_coef
        if self.target_entropy != "auto" and not isinstance(self.target_entropy, (int, float)):
            raise HyperparameterError(f"target_entropy must be 'auto' or a number, got {self.target_entropy!r}")
        if self.target_update_interval < 1:
            raise HyperparameterError(f"target_update_interval must be >= 1, got {self.target_update_interval}")

    @property
    def learn_alpha(self) -> bool:
        return isinstance(self.ent_coef, str)

    @property
    def initial_alpha(self) -> float:
        value = self.ent_coef
        if isinstance(value, str):
            if value == "auto":
                return 1.0
            if value.startswith("auto_"):
                try:
                    value = float(value[5:])
                except ValueError:
                    value = -1.0
            else:
                raise HyperparameterError(f"ent_coef must be 'auto', 'auto_<float>' or a float > 0, got {self.ent_coef!r}")
        if not float(value) > 0:
            raise HyperparameterError(f"ent_coef must be > 0, got {self.ent_coef!r}")
        return float(value)


class SACState(NamedTuple):
    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    n_updates: jax.Array


@dataclass(frozen=True)
class SACAgent(ActorCriticAgent):
    """The pure functions of SAC for given hyperparameters and space sizes (hashable, jit-static)."""

    cfg: SACConfig

    @cached_property
    def actor(self) -> GaussianActor:
        return GaussianActor(self.cfg.actor_hidden, self.act_dim)

    @property
    def target_entropy(self) -> float:
        t = self.cfg.target_entropy
        return -float(self.act_dim) if t == "auto" else float(t)

    def init(self, key: jax.Array) -> SACState:
        k_actor, k_critic = jax.random.split(key)
        obs, act = jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.act_dim))
        actor_params = self.actor.init(k_actor, obs)
        critic_params = self.critic.init(k_critic, obs, act)
        log_alpha = jnp.log(jnp.asarray(self.cfg.initial_alpha, jnp.float32))
        return SACState(
            actor_params, critic_params, critic_params, log_alpha,
            self.optimizer.init(actor_params), self.optimizer.init(critic_params), self.optimizer.init(log_alpha),
            jnp.zeros((), jnp.int32))

    def act(self, state: SACState, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        mean, log_std = self.actor.apply(state.actor_params, obs)
        if deterministic:
            return jnp.tanh(mean)
        return squashed_gaussian_sample(mean, log_std, key)[0]

    def sample_action(self, actor_params, obs, key):
        return squashed_gaussian_sample(*self.actor.apply(actor_params, obs), key)

    def entropy_temperature(self, state: SACState) -> jax.Array:
        return jnp.exp(state.log_alpha)

    def policy_entropy(self, state: SACState, obs: jax.Array, key: jax.Array, n_samples: int = 256) -> jax.Array:
        """H(pi(.|s)) = -E_{a~pi} log pi(a|s) per state, a Monte-Carlo estimate over n_samples actions."""
        sample = lambda k: self.sample_action(state.actor_params, obs, k)  # noqa: E731
        _, log_prob = jax.vmap(sample)(jax.random.split(key, n_samples))
        return -log_prob.mean(axis=0)

    def update(self, state: SACState, batch: Transition, key: jax.Array) -> tuple[SACState, dict, UpdateInfo]:
        cfg = self.cfg
        k_next, k_pi = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)

        # 1. soft target: y = r + gamma (1 - d) (min_j Q'_j(s', a') - alpha log pi(a'|s'))
        next_action, next_log_prob = self.sample_action(state.actor_params, batch.next_obs, k_next)
        next_q = self.critic.apply(state.target_critic_params, batch.next_obs, next_action).min(axis=0)
        y = jax.lax.stop_gradient(bootstrap_target(batch.reward, batch.terminated, cfg.gamma, next_q - alpha * next_log_prob))

        # 2. critic loss: 1/2 sum_j mean (Q_j(s, a) - y)^2
        critic_params, critic_opt, critic_loss, q = self.critic_step(state.critic_params, state.critic_opt, batch, y)

        # 3. actor loss: mean (alpha log pi(a~|s) - min_j Q_j(s, a~))
        def actor_loss_fn(actor_params):
            action, log_prob = self.sample_action(actor_params, batch.obs, k_pi)
            q_pi = self.critic.apply(critic_params, batch.obs, action).min(axis=0)
            return (alpha * log_prob - q_pi).mean(), log_prob

        actor_params, actor_opt, actor_loss, log_prob = gradient_step(self.optimizer, actor_loss_fn,
                                                                      state.actor_params, state.actor_opt)

        # 4. temperature: L(log_alpha) = -mean log_alpha (log pi + H_target)
        log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
        entropy_gap = jax.lax.stop_gradient(log_prob + self.target_entropy).mean()
        alpha_loss = -state.log_alpha * entropy_gap
        if cfg.learn_alpha:  # dL/dlog_alpha = -mean (log pi + H_target)
            log_alpha, alpha_opt = apply_gradients(self.optimizer, state.log_alpha, -entropy_gap, state.alpha_opt)

        # 5. Polyak averaging of the target critics
        n_updates = state.n_updates + 1
        target = polyak_average(critic_params, state.target_critic_params, cfg.tau)
        if cfg.target_update_interval > 1:
            due = n_updates % cfg.target_update_interval == 0
            target = jax.tree.map(lambda new, old: jnp.where(due, new, old), target, state.target_critic_params)

        new_state = SACState(actor_params, critic_params, target, log_alpha, actor_opt, critic_opt, alpha_opt, n_updates)
        entropy = -log_prob.mean()
        metrics = {"critic_loss": critic_loss, "actor_loss": actor_loss, "alpha_loss": alpha_loss,
                   "alpha": alpha, "entropy": entropy, "q_mean": q.mean()}
        # the soft target adds alpha H per step to the reward: |Q| <= (max |r| + alpha |H|) / (1 - gamma)
        return new_state, metrics, UpdateInfo(q_abs_max=jnp.abs(q).max(), soft_bonus=alpha * jnp.abs(entropy))


@register(family="offpolicy", action_kinds=("Box",))
class SAC(OffPolicyAlgorithm):
    """Soft Actor-Critic. ``SAC("MlpPolicy", env, ent_coef="auto", ...)`` as in Stable-Baselines3."""

    name = "sac"
    config_cls = SACConfig
    agent_cls = SACAgent
