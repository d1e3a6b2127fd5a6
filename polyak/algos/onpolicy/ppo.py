"""Proximal Policy Optimization (Schulman et al. 2017), with the asymmetric clip of DAPO
(Yu et al. 2025) and the adaptive KL-penalty variant of the PPO paper.

Per rollout (n_steps x n_envs transitions, collected with pi_old):
  1. GAE           A_t = sum_k (gamma lambda)^k delta_{t+k},  delta_t = r_t + gamma (1 - d_t) V(s'_t) - V(s_t)
                   R_t = A_t + V(s_t)                         (value targets)
  2. for n_epochs, for each minibatch (shuffled):
       ratio       rho = pi(a|s) / pi_old(a|s)
       clip        L_CLIP = mean min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A)
       or KL       L_KLPEN = mean rho A - beta KL(pi_old || pi)
       value       L_V = mean (V(s) - R)^2                    (optionally clipped around V_old)
       loss        -L_policy + c_v L_V - c_H H[pi]            one Adam step (global-norm clipped)
  3. KL variant    beta <- 2 beta if KL > 1.5 target; beta / 2 if KL < target / 1.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from polyak.algos.onpolicy.host import OnPolicyAlgorithm
from polyak.algos.onpolicy.learner import (
    OnPolicyConfig,
    PolicyGradientAgent,
    Rollout,
    explained_variance,
    normalize_advantages,
)
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.returns import gae_advantages
from polyak.core.shuffle import shuffled_indices


@dataclass(frozen=True)
class PPOConfig(OnPolicyConfig):
    batch_size: int = 64  # minibatch size
    n_epochs: int = 10
    clip_range: float = 0.2  # epsilon of the symmetric clip
    clip_range_low: float | None = None  # epsilon_low  (DAPO's asymmetric clip; None: clip_range)
    clip_range_high: float | None = None  # epsilon_high (None: clip_range)
    clip_range_vf: float | None = None  # clip V around V_old by this much (None: no value clipping)
    loss: str = "clip"  # "clip" (L_CLIP) or "kl_penalty" (L_KLPEN with an adaptive beta)
    kl_target: float = 0.01  # the KL variant's target KL per update
    kl_coef_init: float = 1.0  # the KL variant's initial beta

    @property
    def eps_low(self) -> float:
        return self.clip_range if self.clip_range_low is None else self.clip_range_low

    @property
    def eps_high(self) -> float:
        return self.clip_range if self.clip_range_high is None else self.clip_range_high

    def validate(self) -> None:
        super().validate()
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.n_epochs >= 1, f"n_epochs must be >= 1, got {self.n_epochs}")
        need(0 < self.eps_low < 1, f"clip_range_low (or clip_range) must be in (0, 1), got {self.eps_low}")
        need(self.eps_high > 0, f"clip_range_high (or clip_range) must be > 0, got {self.eps_high}")
        need(self.clip_range_vf is None or self.clip_range_vf > 0, f"clip_range_vf must be > 0, got {self.clip_range_vf}")
        need(self.loss in ("clip", "kl_penalty"), f"loss must be 'clip' or 'kl_penalty', got {self.loss!r}")
        need(self.kl_target > 0, f"kl_target must be > 0, got {self.kl_target}")
        need(self.kl_coef_init >= 0, f"kl_coef_init must be >= 0, got {self.kl_coef_init}")


def clipped_surrogate(ratio: jax.Array, advantage: jax.Array, eps_low: float, eps_high: float) -> jax.Array:
    """Per-sample min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A).

    Its gradient w.r.t. rho is A, except where the clip is active *and* binding: A > 0 with
    rho > 1 + eps_high, and A < 0 with rho < 1 - eps_low, where it is 0 (no incentive to move further).
    """
    return jnp.minimum(ratio * advantage, jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high) * advantage)


class PPOState(NamedTuple):
    params: dict
    opt_state: Any
    n_updates: jax.Array
    kl_coef: jax.Array  # beta of the KL-penalty variant (unused by the clip loss)


class Minibatch(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob_old: jax.Array
    advantage: jax.Array
    value_target: jax.Array
    value_old: jax.Array


@dataclass(frozen=True)
class PPOAgent(PolicyGradientAgent):
    cfg: PPOConfig

    def init(self, key: jax.Array) -> PPOState:
        state = super().init(key)
        return PPOState(state.params, state.opt_state, state.n_updates, jnp.asarray(self.cfg.kl_coef_init, jnp.float32))

    def loss(self, params: dict, mb: Minibatch, kl_coef: jax.Array):
        cfg, D = self.cfg, self.distribution
        dist = self.dist(params, mb.obs)
        log_prob = D.log_prob(dist, mb.action)
        log_ratio = log_prob - mb.log_prob_old
        ratio = jnp.exp(log_ratio)
        advantage = normalize_advantages(mb.advantage) if cfg.normalize_advantage else mb.advantage
        approx_kl = jnp.mean(ratio - 1.0 - log_ratio)  # KL(pi_old || pi) estimator, >= 0 per sample

        if cfg.loss == "clip":  # L_CLIP = mean min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A)
            policy_objective = clipped_surrogate(ratio, advantage, cfg.eps_low, cfg.eps_high).mean()
        else:  # L_KLPEN = mean rho A - beta KL(pi_old || pi)
            policy_objective = jnp.mean(ratio * advantage) - kl_coef * approx_kl

        value = self.value(params, mb.obs)  # L_V = mean (V - R)^2, optionally clipped around V_old
        value_loss = (value - mb.value_target) ** 2
        if cfg.clip_range_vf is not None:
            value_clipped = mb.value_old + jnp.clip(value - mb.value_old, -cfg.clip_range_vf, cfg.clip_range_vf)
            value_loss = jnp.maximum(value_loss, (value_clipped - mb.value_target) ** 2)
        value_loss = value_loss.mean()
        entropy = D.entropy(dist).mean()

        loss = -policy_objective + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
        clipped = (ratio < 1.0 - cfg.eps_low) | (ratio > 1.0 + cfg.eps_high)
        return loss, {"policy_objective": policy_objective, "value_loss": value_loss, "entropy": entropy,
                      "approx_kl": approx_kl, "clip_fraction": clipped.mean()}

    def update(self, state: PPOState, rollout: Rollout, key: jax.Array):
        cfg = self.cfg
        # 1. GAE(gamma, lambda) with the values of the policy that collected the rollout
        value, next_value = self.rollout_values(state.params, rollout)
        advantage, value_target = gae_advantages(rollout.reward, value, next_value, rollout.terminated,
                                                 rollout.episode_end, cfg.gamma, cfg.gae_lambda)
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731  (T, n, ...) -> (T n, ...)
        data = Minibatch(flat(rollout.obs), flat(rollout.action), flat(rollout.log_prob), flat(advantage),
                         flat(value_target), flat(value))
        n_rows = data.advantage.shape[0]
        batch_size = min(cfg.batch_size, n_rows)
        n_minibatches = n_rows // batch_size

        # 2. n_epochs x minibatches of gradient steps on the surrogate
        def epoch(state: PPOState, epoch_key):
            order = shuffled_indices(epoch_key, n_rows)[: n_minibatches * batch_size]
            minibatches = jax.tree.map(lambda x: x[order].reshape((n_minibatches, batch_size) + x.shape[1:]), data)

            def minibatch_step(state: PPOState, mb: Minibatch):
                return self.gradient_step(state, self.loss, mb, state.kl_coef)

            return jax.lax.scan(minibatch_step, state, minibatches)

        state, metrics = jax.lax.scan(epoch, state, jax.random.split(key, cfg.n_epochs))
        metrics = {k: v.mean() for k, v in metrics.items()}

        # 3. KL variant: adapt beta towards the target KL
        if cfg.loss == "kl_penalty":
            kl = metrics["approx_kl"]
            beta = jnp.where(kl > 1.5 * cfg.kl_target, state.kl_coef * 2.0,
                             jnp.where(kl < cfg.kl_target / 1.5, state.kl_coef / 2.0, state.kl_coef))
            state = state._replace(kl_coef=beta)
        metrics["kl_coef"] = state.kl_coef
        metrics["explained_variance"] = explained_variance(value, value_target)
        return state, metrics


@register(family="onpolicy", action_kinds=("Box", "Discrete"))
class PPO(OnPolicyAlgorithm):
    """PPO. ``PPO("MlpPolicy", env, n_steps=2048, clip_range=0.2, ...)`` as in Stable-Baselines3;
    ``clip_range_low``/``clip_range_high`` for an asymmetric clip, ``loss="kl_penalty"`` for the KL variant."""

    name = "ppo"
    config_cls = PPOConfig
    agent_cls = PPOAgent
