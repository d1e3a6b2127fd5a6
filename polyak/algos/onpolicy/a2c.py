"""Advantage actor-critic, synchronous (A2C; Mnih et al. 2016 without the asynchrony).

Per rollout of n_steps (default 5) steps from n_envs synchronous workers:
  1. n-step TD advantages  A_t = sum_{k<m} gamma^k r_{t+k} + gamma^m V(s_{t+m}) - V(s_t)
     (m: steps to the rollout's end or the episode's; GAE with lambda = 1 computes exactly this,
     lambda < 1 gives GAE(lambda))
  2. one RMSprop step on   -mean log pi(a_t|s_t) A_t + c_v mean (V(s_t) - R_t)^2 - c_H H[pi]
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

from polyak.algos.onpolicy.actor_critic import A2CConfig, actor_critic_loss
from polyak.algos.onpolicy.host import OnPolicyAlgorithm
from polyak.algos.onpolicy.learner import (
    PGState,
    PolicyGradientAgent,
    Rollout,
    explained_variance,
    normalize_advantages,
)
from polyak.algos.registry import register
from polyak.core.returns import gae_advantages


@dataclass(frozen=True)
class A2CAgent(PolicyGradientAgent):
    cfg: A2CConfig

    def update(self, state: PGState, rollout: Rollout, key: jax.Array):
        cfg = self.cfg
        # 1. n-step advantages (GAE with lambda = 1), bootstrapped from V(s') at cuts, none at terminations
        value, next_value = self.rollout_values(state.params, rollout)
        advantage, value_target = gae_advantages(rollout.reward, value, next_value, rollout.terminated,
                                                 rollout.episode_end, cfg.gamma, cfg.gae_lambda)
        if cfg.normalize_advantage:
            advantage = normalize_advantages(advantage)
        # 2. one gradient step on the actor-critic loss
        state, metrics = self.gradient_step(
            state, lambda p: actor_critic_loss(self, p, rollout.obs, rollout.action, advantage, value_target))
        metrics["explained_variance"] = explained_variance(value, value_target)
        return state, metrics


@register(family="onpolicy", action_kinds=("Box", "Discrete"))
class A2C(OnPolicyAlgorithm):
    """A2C. ``A2C("MlpPolicy", gymnasium.make_vec(...), n_steps=5, ...)`` as in Stable-Baselines3."""

    name = "a2c"
    config_cls = A2CConfig
    agent_cls = A2CAgent
