"""Amortised fitted Q-iteration: exact maximisers on a few states, a policy network regressed on them for the rest.

Explicit FQI runs the maximiser for every target; here a policy pi(s) ~ argmax_a Q(s, a) stands in for it, trained
by regression onto exact maximisers computed on a subset B_opt of states per iteration and kept for K iterations.
Outer iteration k is `iteration_steps` gradient steps; per gradient step, on a batch (s, a, r, s', d) of the data:
  1. new iteration (its first step only):
       Q_k <- Q                                      (frozen; Q_{k+1} warm-starts from Q_k)
       a*(s) = argmax_a Q_k(s, a),  s in B_opt       (B_opt: the first `opt_states` s' of the batch; the explicit
                                                      maximiser of `polyak.core.maximize`, one start at pi(s))
       window <- (B_opt, a*), dropping iteration k - K's pairs   (a sliding window of K iterations)
       pi <- `policy_steps` Adam steps on L_pi = mean_window |pi(s) - a*(s)|^2   (warm start from pi)
  2. target       y = r + gamma (1 - d) Q_k(s', pi(s'))     (the amortised maximiser: one forward pass)
  3. regression   L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2, one Adam step
The metric `amortization_gap` is mean_{B_opt} [Q_k(s, a*) - Q_k(s, pi(s))] before the regression of step 1.
Acting: pi(s).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from polyak.algos.offline.fitted_q import FittedQAgent, FittedQConfig, new_iteration
from polyak.algos.offline.host import OfflineAlgorithm
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.losses import bootstrap_target
from polyak.core.networks import DeterministicActor
from polyak.core.optim import gradient_step
from polyak.core.types import Transition, UpdateInfo


@dataclass(frozen=True)
class AmortizedFQIConfig(FittedQConfig):
    opt_states: int = 256  # |B_opt|: states per iteration whose exact maximiser is computed (<= batch_size)
    window_iterations: int = 10  # K: the policy regresses on the maximisers of the last K iterations
    policy_steps: int = 50  # Adam steps of the policy regression per iteration (each on the whole window)

    def validate(self) -> None:
        super().validate()
        need(1 <= self.opt_states <= self.batch_size,
             f"opt_states must be in [1, batch_size={self.batch_size}], got {self.opt_states}")
        need(self.window_iterations >= 1, f"window_iterations must be >= 1, got {self.window_iterations}")
        need(self.policy_steps >= 1, f"policy_steps must be >= 1, got {self.policy_steps}")


class AmortizedFQIState(NamedTuple):
    actor_params: Any
    critic_params: Any
    target_critic_params: Any  # Q_k, frozen for the iteration
    actor_opt: Any
    critic_opt: Any
    window_obs: jax.Array  # (K |B_opt|, obs_dim): the states of the last K iterations, iteration k in slot k mod K
    window_action: jax.Array  # (K |B_opt|, act_dim): their exact maximisers a*(s) under that iteration's Q_k
    n_updates: jax.Array
    policy_loss: jax.Array  # the last regression loss
    amortization_gap: jax.Array  # the last iteration's mean Q_k(s, a*) - Q_k(s, pi(s)) on B_opt


@dataclass(frozen=True)
class AmortizedFQIAgent(FittedQAgent):
    cfg: AmortizedFQIConfig

    @cached_property
    def actor(self) -> DeterministicActor:
        return DeterministicActor(self.cfg.actor_hidden, self.act_dim)

    def init(self, key: jax.Array) -> AmortizedFQIState:
        k_actor, k_critic = jax.random.split(key)
        obs, act = jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.act_dim))
        actor_params, critic_params = self.actor.init(k_actor, obs), self.critic.init(k_critic, obs, act)
        rows = self.cfg.window_iterations * self.cfg.opt_states
        zero = jnp.zeros((), jnp.float32)
        return AmortizedFQIState(actor_params, critic_params, critic_params, self.actor_optimizer.init(actor_params),
                                 self.optimizer.init(critic_params), jnp.zeros((rows, self.obs_dim)),
                                 jnp.zeros((rows, self.act_dim)), jnp.zeros((), jnp.int32), zero, zero)

    def act(self, state: AmortizedFQIState, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        return self.actor.apply(state.actor_params, obs)

    def start_iteration(self, state: AmortizedFQIState, obs: jax.Array, key: jax.Array) -> AmortizedFQIState:
        """Step 1: Q_k <- Q, exact maximisers on B_opt = `obs` into the window, the policy regressed on the window."""
        cfg, n_opt = self.cfg, self.cfg.opt_states
        q_k = state.critic_params
        pi_s = self.actor.apply(state.actor_params, obs)
        best = self.argmax_q(q_k, obs, key, init=pi_s)
        gap = (best.value - self.q(q_k, obs, pi_s)).mean()
        # the sliding window: iteration k overwrites the pairs of iteration k - K
        k = state.n_updates // cfg.iteration_steps
        slot = (k % cfg.window_iterations) * n_opt
        window_obs = jax.lax.dynamic_update_slice(state.window_obs, obs, (slot, 0))
        window_action = jax.lax.dynamic_update_slice(state.window_action, best.action, (slot, 0))
        filled = jnp.arange(window_obs.shape[0]) < jnp.minimum(k + 1, cfg.window_iterations) * n_opt

        def regression_loss(actor_params):  # L_pi = mean over the filled window of |pi(s) - a*(s)|^2
            err = ((self.actor.apply(actor_params, window_obs) - window_action) ** 2).sum(-1)
            return jnp.where(filled, err, 0.0).sum() / filled.sum(), None

        def regression_step(carry, _):
            params, opt, _, _ = gradient_step(self.actor_optimizer, regression_loss, *carry)
            return (params, opt), None

        (actor_params, actor_opt), _ = jax.lax.scan(regression_step, (state.actor_params, state.actor_opt), None,
                                                    length=cfg.policy_steps)
        return state._replace(actor_params=actor_params, target_critic_params=q_k, actor_opt=actor_opt,
                              window_obs=window_obs, window_action=window_action,
                              policy_loss=regression_loss(actor_params)[0], amortization_gap=gap)

    def target(self, q_k, actor_params, batch: Transition) -> jax.Array:
        """y = r + gamma (1 - d) Q_k(s', pi(s')): the policy chooses a' in the maximiser's place, Q_k evaluates it."""
        next_q = self.q(q_k, batch.next_obs, self.actor.apply(actor_params, batch.next_obs))
        return jax.lax.stop_gradient(bootstrap_target(batch.reward, batch.terminated, self.cfg.gamma, next_q))

    def update(self, state: AmortizedFQIState, batch: Transition,
               key: jax.Array) -> tuple[AmortizedFQIState, dict, UpdateInfo]:
        cfg = self.cfg
        # 1. at an iteration's first step: Q_k, exact maximisers on B_opt, the window, the policy's regression
        b_opt = batch.next_obs[:cfg.opt_states]
        state = jax.lax.cond(new_iteration(state.n_updates, cfg.iteration_steps),
                             lambda s: self.start_iteration(s, b_opt, key), lambda s: s, state)
        # 2. y = r + gamma (1 - d) Q_k(s', pi(s')): the policy stands in for the maximiser
        y = self.target(state.target_critic_params, state.actor_params, batch)
        # 3. one regression step of Q_{k+1} onto y
        critic_params, critic_opt, critic_loss, q = self.critic_step(state.critic_params, state.critic_opt, batch, y)
        state = state._replace(critic_params=critic_params, critic_opt=critic_opt, n_updates=state.n_updates + 1)
        metrics = {"critic_loss": critic_loss, "policy_loss": state.policy_loss,
                   "amortization_gap": state.amortization_gap, "q_mean": q.mean()}
        return state, metrics, UpdateInfo(q_abs_max=jnp.abs(q).max())


@register(family="offline", action_kinds=("Box",), jitted_loop=False)
class AmortizedFQI(OfflineAlgorithm):
    """Amortised FQI. ``AmortizedFQI("MlpPolicy", dataset=ID, opt_states=256, window_iterations=10)``."""

    name = "amortized_fqi"
    config_cls = AmortizedFQIConfig
    agent_cls = AmortizedFQIAgent
