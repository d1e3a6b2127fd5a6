"""DroQ (Hiraoka et al. 2022): REDQ's sample efficiency with two small critics, regularised by dropout
and layer normalisation, at a high update-to-data ratio.

Per gradient step, SAC's (`offpolicy.soft`) with critics Dense -> Dropout(0.01) -> LayerNorm -> ReLU:
  1. soft target   y = r + gamma (1 - d) (min_j Q'_j(s', a') - alpha log pi(a'|s')),  dropout active
  2. critic loss   L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2,  dropout active
  3. every `policy_delay` (= G) critic steps: L_pi = mean (alpha log pi(a~|s) - 1/2 sum_j Q_j(s, a~));
                   temperature as SAC
  4. Polyak        as SAC
G = `gradient_steps` (20) gradient steps per environment step.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

from polyak.algos.offpolicy.host import OffPolicyAlgorithm
from polyak.algos.offpolicy.soft import SoftAgent, SoftConfig
from polyak.algos.registry import register
from polyak.core.config import need


@dataclass(frozen=True)
class DroQConfig(SoftConfig):
    """The paper's settings: dropout 0.01 and layer norm in the critics, UTD 20, one actor step per env step."""

    dropout_rate: float = 0.01
    layer_norm: bool = True
    gradient_steps: int = 20
    policy_delay: int = 20

    def validate(self) -> None:
        super().validate()
        need(self.dropout_rate > 0.0, f"DroQ needs dropout_rate > 0 (its critics' regulariser), got {self.dropout_rate}")


@dataclass(frozen=True)
class DroQAgent(SoftAgent):
    cfg: DroQConfig

    def actor_value(self, q: jax.Array) -> jax.Array:
        """3. the mean of the critics."""
        return q.mean(axis=0)


@register(family="offpolicy", action_kinds=("Box",))
class DroQ(OffPolicyAlgorithm):
    """DroQ. ``DroQ("MlpPolicy", env, dropout_rate=0.01, layer_norm=True, gradient_steps=20)``."""

    name = "droq"
    config_cls = DroQConfig
    agent_cls = DroQAgent
