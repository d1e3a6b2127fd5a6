"""The soft actor-critic update, written once: SAC and its upgrades (TQC, CrossQ, REDQ, SAC-N, DroQ).

Per gradient step, on a batch (s, a, r, s', d), with a' ~ pi(.|s') and a~ ~ pi(.|s) reparameterised:
  1. soft target    y = r + gamma (1 - d) (Z(s', a') - alpha log pi(a'|s'))
  2. critic loss    L_Q(Q(s, a), y)
  3. every `policy_delay` critic steps:
       actor loss   L_pi = mean (alpha log pi(a~|s) - V(s, a~))
       temperature  L_alpha = -mean log_alpha (log pi(a~|s) + H_target),  H_target = -dim(A)
  4. Polyak         theta'_Q <- tau theta_Q + (1 - tau) theta'_Q   (every `target_update_interval` steps)

An agent says only what differs from SAC, through four hooks of `SoftAgent`:
  target_value(q', key)  Z: the target critics' outputs reduced to the bootstrap value
                         (SAC, SAC-N: min_j Q'_j; REDQ: min over a random subset; TQC: the pooled quantiles
                         of all nets without the top ones)
  critic_loss(q, y)      L_Q (1/2 sum_j mean (Q_j - y)^2; TQC: the quantile Huber loss)
  actor_value(q)         V: the online critics' outputs reduced for the actor (min_j; REDQ, DroQ: mean_j;
                         TQC: the mean of all quantiles)
  target_network         False (CrossQ): no target critics; (s, a) and (s', a') pass through the critics in one
                         joint forward pass, so batch normalisation sees both distributions, and Z comes from it
and its torso options (layer norm and dropout for DroQ; batch renormalisation for CrossQ, `core.networks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from polyak.algos.offpolicy.actor_critic import ActorCriticAgent
from polyak.core.config import OffPolicyConfig, need
from polyak.core.losses import bootstrap_target, polyak_average
from polyak.core.networks import CriticEnsemble, GaussianActor, TorsoOptions, squashed_gaussian_sample
from polyak.core.optim import apply_gradients, gradient_step
from polyak.core.types import Transition, UpdateInfo


@dataclass(frozen=True)
class SoftConfig(OffPolicyConfig):
    """SAC's hyperparameters (Stable-Baselines3's names), which every soft agent shares."""

    ent_coef: str | float = "auto"  # "auto", "auto_<initial value>" or a fixed alpha > 0
    target_entropy: str | float = "auto"  # "auto" means -dim(A)
    target_update_interval: int = 1
    policy_delay: int = 1  # critic steps per actor and temperature step
    layer_norm: bool = False  # critics: LayerNorm after each hidden Dense (DroQ)
    dropout_rate: float = 0.0  # critics: dropout after each hidden Dense (DroQ)

    def validate(self) -> None:
        super().validate()
        _ = self.initial_alpha  # raises on an invalid ent_coef
        need(self.target_entropy == "auto" or isinstance(self.target_entropy, (int, float)),
             f"target_entropy must be 'auto' or a number, got {self.target_entropy!r}")
        need(self.target_update_interval >= 1, f"target_update_interval must be >= 1, got {self.target_update_interval}")
        need(self.policy_delay >= 1, f"policy_delay must be >= 1, got {self.policy_delay}")
        need(0.0 <= self.dropout_rate < 1.0, f"dropout_rate must be in [0, 1), got {self.dropout_rate}")

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
                need(False, f"ent_coef must be 'auto', 'auto_<float>' or a float > 0, got {self.ent_coef!r}")
        need(float(value) > 0, f"ent_coef must be > 0, got {self.ent_coef!r}")
        return float(value)


class SoftState(NamedTuple):
    actor_params: Any
    critic_params: Any
    target_critic_params: Any  # None without a target network (CrossQ)
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any
    n_updates: jax.Array  # critic steps so far
    # with policy_delay > 1, the latest actor step's loss and mean log pi (reported between actor steps)
    last_actor_loss: jax.Array | None = None
    last_log_prob: jax.Array | None = None


def forward(module, variables: dict, *inputs, train: bool, key: jax.Array | None = None):
    """`module.apply` in train or eval mode -> (output, variables). In train mode dropout draws from `key`, and
    batch normalisation uses the batch statistics and returns the variables with the running ones updated."""
    rngs = {"dropout": key} if train and key is not None else None
    if train and "batch_stats" in variables:
        out, updates = module.apply(variables, *inputs, train=True, mutable=["batch_stats"], rngs=rngs)
        return out, {**variables, **updates}
    return module.apply(variables, *inputs, train=train, rngs=rngs), variables


def trainable(variables: dict) -> dict:
    """The part of a network's variables that the optimiser updates: {"params": ...} (not the batch statistics)."""
    return {"params": variables["params"]}


@dataclass(frozen=True)
class SoftAgent(ActorCriticAgent):
    """The pure functions of a soft actor-critic for given hyperparameters and space sizes (hashable, jit-static).

    Subclasses override the hooks below; `update` is the one soft actor-critic step."""

    cfg: SoftConfig
    target_network: ClassVar[bool] = True  # False: CrossQ's joint forward pass, no target critics

    # -- what an upgrade may change -----------------------------------------------------------
    @property
    def n_quantiles(self) -> int | None:
        return None  # TQC: quantiles per critic

    @property
    def critic_torso(self) -> TorsoOptions:
        return TorsoOptions(layer_norm=self.cfg.layer_norm, dropout_rate=self.cfg.dropout_rate)

    @property
    def actor_torso(self) -> TorsoOptions:
        return TorsoOptions()

    def target_value(self, next_q: jax.Array, key: jax.Array) -> jax.Array:
        """Z(s', a') from the target critics' outputs (n_critics, batch): min_j Q'_j (clipped double Q)."""
        return next_q.min(axis=0)

    def critic_loss(self, q: jax.Array, y: jax.Array) -> jax.Array:
        """L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2."""
        return 0.5 * ((q - y) ** 2).mean(axis=1).sum()

    def actor_value(self, q: jax.Array) -> jax.Array:
        """V(s, a~) for the actor from the critics' outputs (n_critics, batch): min_j Q_j."""
        return q.min(axis=0)

    # -- networks --------------------------------------------------------------------------
    @cached_property
    def actor(self) -> GaussianActor:
        return GaussianActor(self.cfg.actor_hidden, self.act_dim, self.actor_torso)

    @cached_property
    def critic(self) -> CriticEnsemble:
        return CriticEnsemble(self.cfg.critic_hidden, self.cfg.n_critics, self.n_quantiles, self.critic_torso)

    @cached_property
    def alpha_optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.cfg.learning_rate)

    @property
    def critic_stochastic(self) -> bool:
        """Dropout stays on when the critics are evaluated outside their loss (targets, the actor's V), as in
        DroQ; batch normalisation uses its running statistics there (CrossQ)."""
        return self.cfg.dropout_rate > 0 and self.critic_torso.batch_norm is None

    @property
    def target_entropy(self) -> float:
        t = self.cfg.target_entropy
        return -float(self.act_dim) if t == "auto" else float(t)

    def init(self, key: jax.Array) -> SoftState:
        k_actor, k_critic = jax.random.split(key)
        obs, act = jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.act_dim))
        actor_params = self.actor.init(k_actor, obs)
        critic_params = self.critic.init(k_critic, obs, act)
        log_alpha = jnp.log(jnp.asarray(self.cfg.initial_alpha, jnp.float32))
        delayed = self.cfg.policy_delay > 1
        return SoftState(
            actor_params, critic_params, critic_params if self.target_network else None, log_alpha,
            self.optimizer.init(trainable(actor_params)), self.optimizer.init(trainable(critic_params)),
            self.alpha_optimizer.init(log_alpha), jnp.zeros((), jnp.int32),
            jnp.zeros((), jnp.float32) if delayed else None, jnp.zeros((), jnp.float32) if delayed else None)

    # -- acting ----------------------------------------------------------------------------
    def act(self, state: SoftState, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        mean, log_std = self.actor.apply(state.actor_params, obs)
        if deterministic:
            return jnp.tanh(mean)
        return squashed_gaussian_sample(mean, log_std, key)[0]

    def sample_action(self, actor_params, obs, key):
        return squashed_gaussian_sample(*self.actor.apply(actor_params, obs), key)

    def q_values(self, state: SoftState, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Q_j(s, a) per critic, (n_critics, batch): with quantile critics, the mean of each critic's quantiles."""
        q = self.critic.apply(state.critic_params, obs, action)
        return q if self.n_quantiles is None else q.mean(axis=-1)

    def entropy_temperature(self, state: SoftState) -> jax.Array:
        return jnp.exp(state.log_alpha)

    def policy_entropy(self, state: SoftState, obs: jax.Array, key: jax.Array, n_samples: int = 256) -> jax.Array:
        """H(pi(.|s)) = -E_{a~pi} log pi(a|s) per state, a Monte-Carlo estimate over n_samples actions."""
        sample = lambda k: self.sample_action(state.actor_params, obs, k)  # noqa: E731
        _, log_prob = jax.vmap(sample)(jax.random.split(key, n_samples))
        return -log_prob.mean(axis=0)

    # -- the update ------------------------------------------------------------------------
    def soft_target(self, batch: Transition, next_value: jax.Array, alpha, next_log_prob) -> jax.Array:
        """y = r + gamma (1 - d) (Z - alpha log pi(a'|s')); Z may carry a trailing quantile axis."""
        widen = (lambda x: x[:, None]) if next_value.ndim > 1 else (lambda x: x)
        return jax.lax.stop_gradient(bootstrap_target(widen(batch.reward), widen(batch.terminated), self.cfg.gamma,
                                                      next_value - alpha * widen(next_log_prob)))

    def update(self, state: SoftState, batch: Transition, key: jax.Array) -> tuple[SoftState, dict, UpdateInfo]:
        cfg = self.cfg
        k_next, k_pi = jax.random.split(key)
        # keys beyond SAC's two (REDQ's subset, dropout masks), drawn only by agents that use them
        k_target, k_drop_q, k_drop_target, k_drop_pi = jax.random.split(jax.random.fold_in(key, 1), 4)
        alpha = jnp.exp(state.log_alpha)
        critic_vars = state.critic_params

        # 1. soft target: y = r + gamma (1 - d) (Z(s', a') - alpha log pi(a'|s'))
        next_action, next_log_prob = self.sample_action(state.actor_params, batch.next_obs, k_next)
        if self.target_network:
            next_q, _ = forward(self.critic, state.target_critic_params, batch.next_obs, next_action,
                                train=self.critic_stochastic, key=k_drop_target)
            y = self.soft_target(batch, self.target_value(next_q, k_target), alpha, next_log_prob)

        # 2. critic loss L_Q(Q(s, a), y), one optimiser step on the critics' parameters
        def critic_loss_fn(params):
            variables = {**critic_vars, **params}
            if self.target_network:
                q, variables = forward(self.critic, variables, batch.obs, batch.action, train=True, key=k_drop_q)
                return self.critic_loss(q, y), (q, variables)
            # CrossQ: one joint forward pass of (s, a) and (s', a'); the target is a constant for the gradient
            both, variables = forward(self.critic, variables, jnp.concatenate([batch.obs, batch.next_obs]),
                                      jnp.concatenate([batch.action, next_action]), train=True, key=k_drop_q)
            q, next_q = jnp.split(both, 2, axis=1)
            target = self.soft_target(batch, self.target_value(next_q, k_target), alpha, next_log_prob)
            return self.critic_loss(q, target), (q, variables)

        params, critic_opt, critic_loss, (q, critic_vars) = gradient_step(
            self.optimizer, critic_loss_fn, trainable(critic_vars), state.critic_opt)
        critic_vars = {**critic_vars, **params}
        n_updates = state.n_updates + 1

        # 3. actor loss: mean (alpha log pi(a~|s) - V(s, a~)), and the temperature step
        def actor_and_temperature(operand):
            actor_vars, actor_opt, log_alpha, alpha_opt = operand

            def actor_loss_fn(params):
                mean_log_std, variables = forward(self.actor, {**actor_vars, **params}, batch.obs, train=True)
                action, log_prob = squashed_gaussian_sample(*mean_log_std, k_pi)
                q_pi, _ = forward(self.critic, critic_vars, batch.obs, action, train=self.critic_stochastic,
                                  key=k_drop_pi)
                return (alpha * log_prob - self.actor_value(q_pi)).mean(), (log_prob, variables)

            params, actor_opt, actor_loss, (log_prob, actor_vars) = gradient_step(
                self.optimizer, actor_loss_fn, trainable(actor_vars), actor_opt)
            actor_vars = {**actor_vars, **params}
            # temperature: L(log_alpha) = -mean log_alpha (log pi + H_target); dL/dlog_alpha = -mean (log pi + H)
            entropy_gap = jax.lax.stop_gradient(log_prob + self.target_entropy).mean()
            if cfg.learn_alpha:
                log_alpha, alpha_opt = apply_gradients(self.alpha_optimizer, log_alpha, -entropy_gap, alpha_opt)
            return (actor_vars, actor_opt, log_alpha, alpha_opt), actor_loss, log_prob.mean()

        operand = (state.actor_params, state.actor_opt, state.log_alpha, state.alpha_opt)
        if cfg.policy_delay == 1:
            (actor_vars, actor_opt, log_alpha, alpha_opt), actor_loss, mean_log_prob = actor_and_temperature(operand)
            last = (None, None)
        else:
            skip = lambda operand: (operand, state.last_actor_loss, state.last_log_prob)  # noqa: E731
            (actor_vars, actor_opt, log_alpha, alpha_opt), actor_loss, mean_log_prob = jax.lax.cond(
                n_updates % cfg.policy_delay == 0, actor_and_temperature, skip, operand)
            last = (actor_loss, mean_log_prob)
        alpha_loss = -state.log_alpha * (mean_log_prob + self.target_entropy)

        # 4. Polyak averaging of the target critics' parameters (the running statistics are copied)
        target = state.target_critic_params
        if self.target_network:
            averaged = {**critic_vars, "params": polyak_average(critic_vars["params"], target["params"], cfg.tau)}
            if cfg.target_update_interval > 1:
                due = n_updates % cfg.target_update_interval == 0
                averaged = jax.tree.map(lambda new, old: jnp.where(due, new, old), averaged, target)
            target = averaged

        new_state = SoftState(actor_vars, critic_vars, target, log_alpha, actor_opt, critic_opt, alpha_opt,
                              n_updates, *last)
        entropy = -mean_log_prob
        metrics = {"critic_loss": critic_loss, "actor_loss": actor_loss, "alpha_loss": alpha_loss,
                   "alpha": alpha, "entropy": entropy, "q_mean": q.mean()}
        # the soft target adds alpha H per step to the reward: |Q| <= (max |r| + alpha |H|) / (1 - gamma)
        return new_state, metrics, UpdateInfo(q_abs_max=jnp.abs(q).max(), soft_bonus=alpha * jnp.abs(entropy))
