"""Conservative Q-Learning (Kumar et al. 2020), SAC-based, as CORL's continuous CQL(H).

Per gradient step, on a batch (s, a, r, s', d) of the dataset:
  1. actor loss      L_pi = mean (alpha log pi(a~|s) - min_j Q_j(s, a~)),  a~ ~ pi(.|s) reparameterised
  2. temperature     L_alpha = -mean log_alpha (log pi(a~|s) + H_target),  H_target = -dim(A)
  3. target          y = r + gamma (1 - d) min_j Q'_j(s', a'),  a' ~ pi(.|s')  (no entropy term)
  4. penalty         C_j = mean_s [ T logsumexp_k (Q_j(s, a_k) / T - log rho(a_k|s)) ] - mean Q_j(s, a),
                     a_k: N uniform actions (rho = 2^-dim(A)), N from pi(.|s), N from pi(.|s') (rho = pi),
                     so the first term estimates T log integral exp(Q_j(s, .)/T): a soft maximum over actions
  5. critic loss     L_Q = sum_j mean (Q_j(s, a) - y)^2 + alpha_cql sum_j w C_j,
                     w = 1, or with the Lagrange variant w = alpha' (C_j - gap), alpha' > 0 learned by
  6. Lagrange        L_alpha' = -alpha' alpha_cql mean_j (C_j - gap)   (raises alpha' while C_j > gap)
  7. Polyak          theta'_Q <- tau theta_Q + (1 - tau) theta'_Q
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from polyak.algos.offline.host import OfflineAlgorithm
from polyak.algos.offline.learner import OfflineAgent, OfflineConfig
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.losses import bootstrap_target, polyak_average
from polyak.core.networks import GaussianActor, squashed_gaussian_sample
from polyak.core.optim import apply_gradients, gradient_step
from polyak.core.types import Transition, UpdateInfo


@dataclass(frozen=True)
class CQLConfig(OfflineConfig):
    actor_learning_rate: float = 3e-5
    actor_hidden: tuple[int, ...] = (256, 256, 256)
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    cql_alpha: float = 10.0  # weight of the conservative penalty
    cql_n_actions: int = 10  # actions sampled per source (uniform, pi(.|s), pi(.|s')) for the logsumexp
    cql_temperature: float = 1.0  # T
    cql_lagrange: bool = False  # learn alpha' so that the penalty stays near cql_target_action_gap
    cql_target_action_gap: float = -1.0
    alpha_prime_init: float = 1.0

    def validate(self) -> None:
        super().validate()
        need(self.cql_alpha >= 0, f"cql_alpha must be >= 0, got {self.cql_alpha}")
        need(self.cql_n_actions >= 1, f"cql_n_actions must be >= 1, got {self.cql_n_actions}")
        need(self.cql_temperature > 0, f"cql_temperature must be > 0, got {self.cql_temperature}")
        need(self.alpha_prime_init > 0, f"alpha_prime_init must be > 0, got {self.alpha_prime_init}")


def cql_logsumexp(q_random, q_pi, log_pi, q_next_pi, log_next_pi, act_dim: int, temperature: float) -> jax.Array:
    """T log sum_k exp(Q(s, a_k)/T - log rho(a_k)) over the sampled actions (axis 0: the N samples of each
    source), importance weights 1/rho: uniform rho = 0.5^dim(A) on [-1, 1]^dim(A), policy rho = pi. Per state."""
    log_uniform = act_dim * math.log(0.5)
    stacked = jnp.concatenate([q_random - log_uniform, q_next_pi - log_next_pi, q_pi - log_pi], axis=0)
    return temperature * jax.scipy.special.logsumexp(stacked / temperature, axis=0)


def cql_penalty(q_random, q_pi, log_pi, q_next_pi, log_next_pi, q_data, act_dim: int,
                temperature: float) -> jax.Array:
    """C = mean_s [T logsumexp_k (...)] - mean_s Q(s, a): how much the critic prefers sampled actions to the data's."""
    return (cql_logsumexp(q_random, q_pi, log_pi, q_next_pi, log_next_pi, act_dim, temperature) - q_data).mean()


class CQLState(NamedTuple):
    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    log_alpha: jax.Array
    log_alpha_prime: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    alpha_prime_opt: Any
    n_updates: jax.Array


@dataclass(frozen=True)
class CQLAgent(OfflineAgent):
    cfg: CQLConfig

    @cached_property
    def actor(self) -> GaussianActor:
        return GaussianActor(self.cfg.actor_hidden, self.act_dim)

    def init(self, key: jax.Array) -> CQLState:
        k_actor, k_critic = jax.random.split(key)
        obs, act = jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.act_dim))
        actor_params = self.actor.init(k_actor, obs)
        critic_params = self.critic.init(k_critic, obs, act)
        log_alpha = jnp.zeros((), jnp.float32)
        log_alpha_prime = jnp.log(jnp.asarray(self.cfg.alpha_prime_init, jnp.float32))
        return CQLState(actor_params, critic_params, critic_params, log_alpha, log_alpha_prime,
                        self.actor_optimizer.init(actor_params), self.optimizer.init(critic_params),
                        self.actor_optimizer.init(log_alpha), self.optimizer.init(log_alpha_prime),
                        jnp.zeros((), jnp.int32))

    def act(self, state: CQLState, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        mean, log_std = self.actor.apply(state.actor_params, obs)
        return jnp.tanh(mean) if deterministic else squashed_gaussian_sample(mean, log_std, key)[0]

    def sample_actions(self, actor_params, obs: jax.Array, key: jax.Array, n: int):
        """n reparameterised samples a ~ pi(.|s) per row and their log-densities: (n, B, dim(A)), (n, B)."""
        mean, log_std = self.actor.apply(actor_params, obs)
        return jax.vmap(lambda k: squashed_gaussian_sample(mean, log_std, k))(jax.random.split(key, n))

    def update(self, state: CQLState, batch: Transition, key: jax.Array) -> tuple[CQLState, dict, UpdateInfo]:
        cfg, n = self.cfg, self.cfg.cql_n_actions
        k_pi, k_next, k_rand, k_cql_pi, k_cql_next = jax.random.split(key, 5)
        alpha = jnp.exp(state.log_alpha)
        target_entropy = -float(self.act_dim)

        # 1. actor loss: mean (alpha log pi(a~|s) - min_j Q_j(s, a~))
        def actor_loss_fn(actor_params):
            action, log_prob = squashed_gaussian_sample(*self.actor.apply(actor_params, batch.obs), k_pi)
            q_pi = self.critic.apply(state.critic_params, batch.obs, action).min(axis=0)
            return (alpha * log_prob - q_pi).mean(), log_prob

        actor_params, actor_opt, actor_loss, log_prob = gradient_step(self.actor_optimizer, actor_loss_fn,
                                                                      state.actor_params, state.actor_opt)
        # 2. temperature: dL/dlog_alpha = -mean (log pi + H_target)
        entropy_gap = jax.lax.stop_gradient(log_prob + target_entropy).mean()
        log_alpha, alpha_opt = apply_gradients(self.actor_optimizer, state.log_alpha, -entropy_gap, state.alpha_opt)

        # 3. target: y = r + gamma (1 - d) min_j Q'_j(s', a'), a' ~ pi(.|s') (the policy before step 1, as CORL)
        next_action, _ = squashed_gaussian_sample(*self.actor.apply(state.actor_params, batch.next_obs), k_next)
        next_q = self.critic.apply(state.target_critic_params, batch.next_obs, next_action).min(axis=0)
        y = jax.lax.stop_gradient(bootstrap_target(batch.reward, batch.terminated, cfg.gamma, next_q))

        # 4. the sampled actions of the penalty (constants for the critic's gradient)
        random_actions = jax.random.uniform(k_rand, (n,) + batch.action.shape, minval=-1.0, maxval=1.0)
        pi_actions, log_pi = jax.lax.stop_gradient(self.sample_actions(state.actor_params, batch.obs, k_cql_pi, n))
        next_pi_actions, log_next_pi = jax.lax.stop_gradient(
            self.sample_actions(state.actor_params, batch.next_obs, k_cql_next, n))
        obs_n = jnp.broadcast_to(batch.obs, (n,) + batch.obs.shape)
        alpha_prime = jnp.clip(jnp.exp(state.log_alpha_prime), 0.0, 1e6)

        # 5. critic loss: TD error + alpha_cql * penalty (Lagrange: alpha' (penalty - gap)), per critic
        def critic_loss_fn(params):
            q = self.critic.apply(params, batch.obs, batch.action)  # (n_critics, B)
            q_sampled = lambda actions: self.critic.apply(params, obs_n, actions)  # noqa: E731  (n_critics, n, B)
            q_rand, q_pi, q_next_pi = q_sampled(random_actions), q_sampled(pi_actions), q_sampled(next_pi_actions)
            penalty_j = functools.partial(cql_penalty, act_dim=self.act_dim, temperature=cfg.cql_temperature)
            penalty = jax.vmap(penalty_j, in_axes=(0, 0, None, 0, None, 0))(
                q_rand, q_pi, log_pi, q_next_pi, log_next_pi, q)  # (n_critics,)
            td = ((q - y) ** 2).mean(axis=1).sum()
            if cfg.cql_lagrange:
                conservative = (jax.lax.stop_gradient(alpha_prime) * cfg.cql_alpha
                                * (penalty - cfg.cql_target_action_gap)).sum()
            else:
                conservative = cfg.cql_alpha * penalty.sum()
            return td + conservative, (q, penalty, td)

        critic_params, critic_opt, critic_loss, (q, penalty, td) = gradient_step(
            self.optimizer, critic_loss_fn, state.critic_params, state.critic_opt)

        # 6. Lagrange multiplier: dL/dlog_alpha' = -alpha' alpha_cql mean_j (C_j - gap)
        log_alpha_prime, alpha_prime_opt = state.log_alpha_prime, state.alpha_prime_opt
        if cfg.cql_lagrange:
            gap = jax.lax.stop_gradient(penalty - cfg.cql_target_action_gap).mean()
            log_alpha_prime, alpha_prime_opt = apply_gradients(
                self.optimizer, state.log_alpha_prime, -alpha_prime * cfg.cql_alpha * gap, state.alpha_prime_opt)

        # 7. Polyak averaging of the target critics
        target = polyak_average(critic_params, state.target_critic_params, cfg.tau)
        new_state = CQLState(actor_params, critic_params, target, log_alpha, log_alpha_prime, actor_opt, critic_opt,
                             alpha_opt, alpha_prime_opt, state.n_updates + 1)
        metrics = {"critic_loss": critic_loss, "td_loss": td, "cql_penalty": penalty.mean(), "actor_loss": actor_loss,
                   "alpha": alpha, "alpha_prime": alpha_prime, "entropy": -log_prob.mean(), "q_mean": q.mean()}
        return new_state, metrics, UpdateInfo(q_abs_max=jnp.abs(q).max())


@register(family="offline", action_kinds=("Box",), jitted_loop=False)
class CQL(OfflineAlgorithm):
    """CQL. ``CQL("MlpPolicy", dataset=ID, cql_alpha=10.0, cql_lagrange=False)``."""

    name = "cql"
    config_cls = CQLConfig
    agent_cls = CQLAgent
