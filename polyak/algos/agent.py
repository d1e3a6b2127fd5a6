"""What every actor-critic agent shares: the critic ensemble, the optimiser and the critic step."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import jax
import optax

from polyak.algos.config import OffPolicyConfig
from polyak.common.buffer import Transition
from polyak.common.networks import CriticEnsemble


@dataclass(frozen=True)
class ActorCriticAgent:
    """Base of the hashable agent objects (jit-static): hyperparameters and space sizes."""

    cfg: OffPolicyConfig
    obs_dim: int
    act_dim: int

    @cached_property
    def critic(self) -> CriticEnsemble:
        return CriticEnsemble(self.cfg.critic_hidden, self.cfg.n_critics)

    @cached_property
    def optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.cfg.learning_rate)

    def adam_step(self, params, grads, opt_state):
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def critic_step(self, critic_params, critic_opt, batch: Transition, y: jax.Array):
        """L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2 and one Adam step; returns (params, opt, loss, Q)."""
        def critic_loss_fn(params):
            q = self.critic.apply(params, batch.obs, batch.action)
            return 0.5 * ((q - y) ** 2).mean(axis=1).sum(), q

        (loss, q), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(critic_params)
        critic_params, critic_opt = self.adam_step(critic_params, grads, critic_opt)
        return critic_params, critic_opt, loss, q
