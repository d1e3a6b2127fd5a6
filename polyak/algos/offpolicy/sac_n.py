"""SAC-N (An et al. 2021): SAC with N critics and the minimum over all of them in the target and the actor
loss; a large N penalises uncertain actions, which is enough for offline RL without an explicit
conservative term.

Per gradient step, SAC's (`offpolicy.soft`) with j = 1..N:
  1. soft target   y = r + gamma (1 - d) (min_{j<=N} Q'_j(s', a') - alpha log pi(a'|s'))
  2. critic loss   L_Q = 1/2 sum_{j<=N} mean (Q_j(s, a) - y)^2    (the N critics in one vmapped pass)
  3. actor loss    L_pi = mean (alpha log pi(a~|s) - min_{j<=N} Q_j(s, a~)); temperature and Polyak as SAC
"""

from __future__ import annotations

from dataclasses import dataclass

from polyak.algos.offpolicy.host import OffPolicyAlgorithm
from polyak.algos.offpolicy.soft import SoftAgent, SoftConfig
from polyak.algos.registry import register


@dataclass(frozen=True)
class SACNConfig(SoftConfig):
    """SAC's hyperparameters with N = 10 critics (CORL's setting)."""

    n_critics: int = 10


@dataclass(frozen=True)
class SACNAgent(SoftAgent):
    cfg: SACNConfig


@register(family="offpolicy", action_kinds=("Box",))
class SACN(OffPolicyAlgorithm):
    """SAC-N. ``SACN("MlpPolicy", env, n_critics=10)``."""

    name = "sac_n"
    config_cls = SACNConfig
    agent_cls = SACNAgent
