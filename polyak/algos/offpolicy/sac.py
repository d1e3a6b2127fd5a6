"""Soft Actor-Critic (Haarnoja et al. 2018) with automatic temperature.

Per gradient step, on a batch (s, a, r, s', d):
  1. soft target     y = r + gamma (1 - d) (min_j Q'_j(s', a') - alpha log pi(a'|s')),  a' ~ pi(.|s')
  2. critic loss     L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2
  3. actor loss      L_pi = mean (alpha log pi(a~|s) - min_j Q_j(s, a~)),  a~ ~ pi(.|s) reparameterised
  4. temperature     L_alpha = -mean log_alpha (log pi(a~|s) + H_target),  H_target = -dim(A)
  5. Polyak          theta'_Q <- tau theta_Q + (1 - tau) theta'_Q

These are the defaults of the soft actor-critic update in `offpolicy.soft`, which SAC's upgrades (TQC,
CrossQ, REDQ, SAC-N, DroQ) share; SAC changes none of its hooks.
"""

from __future__ import annotations

from dataclasses import dataclass

from polyak.algos.offpolicy.host import OffPolicyAlgorithm
from polyak.algos.offpolicy.soft import SoftAgent, SoftConfig
from polyak.algos.registry import register


@dataclass(frozen=True)
class SACConfig(SoftConfig):
    """Stable-Baselines3's SAC hyperparameters (`offpolicy.soft.SoftConfig`)."""


@dataclass(frozen=True)
class SACAgent(SoftAgent):
    cfg: SACConfig


@register(family="offpolicy", action_kinds=("Box",))
class SAC(OffPolicyAlgorithm):
    """Soft Actor-Critic. ``SAC("MlpPolicy", env, ent_coef="auto", ...)`` as in Stable-Baselines3."""

    name = "sac"
    config_cls = SACConfig
    agent_cls = SACAgent
