"""What every off-policy actor-critic agent shares: the critic ensemble, the optimiser and the critic step;
and the deterministic actor of DDPG and TD3."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from polyak.core.config import OffPolicyConfig
from polyak.core.networks import CriticEnsemble, DeterministicActor
from polyak.core.optim import gradient_step
from polyak.core.types import Agent, Transition


@dataclass(frozen=True)
class ActorCriticAgent(Agent):
    """Base of the hashable agent objects (jit-static): hyperparameters and space sizes."""

    cfg: OffPolicyConfig
    obs_dim: int
    act_dim: int
    has_critic: ClassVar[bool] = True

    @cached_property
    def critic(self) -> CriticEnsemble:
        return CriticEnsemble(self.cfg.critic_hidden, self.cfg.n_critics)

    @cached_property
    def optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.cfg.learning_rate)

    @cached_property
    def first_critic(self) -> CriticEnsemble:
        """The ensemble's module with one member: applied to member 0's parameters it is Q_1 alone."""
        return CriticEnsemble(self.cfg.critic_hidden, 1)

    def q_values(self, state, obs: jax.Array, action: jax.Array) -> jax.Array:
        return self.critic.apply(state.critic_params, obs, action)

    def q1(self, critic_params, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Q_1(s, a) alone. Slicing the whole ensemble's output would compute every critic (one batched matmul per
        layer), and in an actor step also back-propagate through every one."""
        return self.first_critic.apply(jax.tree.map(lambda x: x[:1], critic_params), obs, action)[0]

    def critic_step(self, critic_params, critic_opt, batch: Transition, y: jax.Array):
        """L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2 and one Adam step; returns (params, opt, loss, Q)."""
        def critic_loss_fn(params):
            q = self.critic.apply(params, batch.obs, batch.action)
            return 0.5 * ((q - y) ** 2).mean(axis=1).sum(), q

        return gradient_step(self.optimizer, critic_loss_fn, critic_params, critic_opt)


class TD3State(NamedTuple):
    actor_params: Any
    critic_params: Any
    target_actor_params: Any
    target_critic_params: Any
    actor_opt: Any
    critic_opt: Any
    n_updates: jax.Array
    last_actor_loss: jax.Array  # TD3 updates the actor every `policy_delay` steps; this is the latest loss


@dataclass(frozen=True)
class DeterministicAgent(ActorCriticAgent):
    """Actor, initialisation and acting shared by DDPG and TD3 (a deterministic policy mu(s))."""

    @cached_property
    def actor(self) -> DeterministicActor:
        return DeterministicActor(self.cfg.actor_hidden, self.act_dim)

    def init(self, key: jax.Array) -> TD3State:
        k_actor, k_critic = jax.random.split(key)
        obs, act = jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.act_dim))
        actor_params = self.actor.init(k_actor, obs)
        critic_params = self.critic.init(k_critic, obs, act)
        return TD3State(actor_params, critic_params, actor_params, critic_params,
                        self.optimizer.init(actor_params), self.optimizer.init(critic_params),
                        jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32))

    def act(self, state: TD3State, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        return self.actor.apply(state.actor_params, obs)  # exploration noise is added by the loop

    def smoothed_target_action(self, target_actor_params, next_obs: jax.Array, key: jax.Array) -> jax.Array:
        """TD3's target policy smoothing: a' = clip(mu'(s') + clip(eps, -c, c), -1, 1), eps ~ N(0, sigma~^2)
        (`cfg.target_policy_noise`, `cfg.target_noise_clip`); shared by TD3 and TD3+BC."""
        cfg = self.cfg
        eps = cfg.target_policy_noise * jax.random.normal(key, next_obs.shape[:-1] + (self.act_dim,))
        eps = jnp.clip(eps, -cfg.target_noise_clip, cfg.target_noise_clip)
        return jnp.clip(self.actor.apply(target_actor_params, next_obs) + eps, -1.0, 1.0)

    def actor_step(self, state: TD3State, critic_params, obs: jax.Array):
        """L_mu = -mean Q_1(s, mu(s)), one Adam step."""
        def actor_loss_fn(actor_params):
            return -self.q1(critic_params, obs, self.actor.apply(actor_params, obs)).mean(), None

        actor_params, actor_opt, loss, _ = gradient_step(self.optimizer, actor_loss_fn, state.actor_params,
                                                         state.actor_opt)
        return actor_params, actor_opt, loss
