"""CrossQ (Bhatt et al. 2024): SAC without target networks, made stable by batch normalisation whose
statistics see both distributions the critics are evaluated on.

Per gradient step, on a batch (s, a, r, s', d), a' ~ pi(.|s'):
  1. joint pass      [Q(s, a); Q(s', a')] = Q([s; s'], [a; a']) in train mode: one forward pass through
                     batch renormalisation, whose batch statistics are those of the mixture of (s, a) and
                     (s', a') (a target network's stale statistics never saw (s', a'))
  2. soft target     y = r + gamma (1 - d) (min_j Q_j(s', a') - alpha log pi(a'|s')), a constant for the gradient
  3. critic loss     L_Q = 1/2 sum_j mean (Q_j(s, a) - y)^2; the running statistics advance once
  4. every `policy_delay` (3) critic steps: actor and temperature as SAC, with the critics in eval mode
                     (running statistics) and the actor's own batch renormalisation in train mode
No Polyak step. Wide critics, Adam with beta_1 = 0.5; `predict` and evaluation use the running statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import optax

from polyak.algos.offpolicy.host import OffPolicyAlgorithm
from polyak.algos.offpolicy.soft import SoftAgent, SoftConfig
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.networks import TorsoOptions


@dataclass(frozen=True)
class CrossQConfig(SoftConfig):
    """SBX's CrossQ defaults (learning rate, Adam beta_1, policy delay, batch renormalisation, critic width)."""

    learning_rate: float = 1e-3
    policy_delay: int = 3
    critic_hidden: tuple[int, ...] = (1024, 1024)
    adam_beta1: float = 0.5  # actor and critics (the temperature uses Adam's default 0.9)
    batch_norm: str = "batch_renorm"  # "batch_renorm" (Ioffe 2017) or "batch_norm", in critics and actor
    batch_norm_momentum: float = 0.99  # running statistics: m <- momentum m + (1 - momentum) m_batch
    renorm_warmup_steps: int = 100_000  # training calls of plain batch norm before renormalisation
    actor_batch_norm: bool = True

    def validate(self) -> None:
        super().validate()
        need(self.batch_norm in ("batch_renorm", "batch_norm"),
             f"batch_norm must be 'batch_renorm' or 'batch_norm', got {self.batch_norm!r}")
        need(0.0 <= self.batch_norm_momentum < 1.0,
             f"batch_norm_momentum must be in [0, 1), got {self.batch_norm_momentum}")
        need(self.renorm_warmup_steps >= 0, f"renorm_warmup_steps must be >= 0, got {self.renorm_warmup_steps}")
        need(0.0 <= self.adam_beta1 < 1.0, f"adam_beta1 must be in [0, 1), got {self.adam_beta1}")
        need(self.dropout_rate == 0.0, "CrossQ's critics use batch normalisation, not dropout: dropout_rate must be 0")


@dataclass(frozen=True)
class CrossQAgent(SoftAgent):
    cfg: CrossQConfig
    target_network: ClassVar[bool] = False

    @property
    def critic_torso(self) -> TorsoOptions:
        cfg = self.cfg
        return TorsoOptions(layer_norm=cfg.layer_norm, batch_norm=cfg.batch_norm,
                            batch_norm_momentum=cfg.batch_norm_momentum, renorm_warmup_steps=cfg.renorm_warmup_steps)

    @property
    def actor_torso(self) -> TorsoOptions:
        cfg = self.cfg
        if not cfg.actor_batch_norm:
            return TorsoOptions()
        return TorsoOptions(batch_norm=cfg.batch_norm, batch_norm_momentum=cfg.batch_norm_momentum,
                            renorm_warmup_steps=cfg.renorm_warmup_steps)

    @cached_property
    def optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.cfg.learning_rate, b1=self.cfg.adam_beta1)


@register(family="offpolicy", action_kinds=("Box",))
class CrossQ(OffPolicyAlgorithm):
    """CrossQ. ``CrossQ("MlpPolicy", env, policy_delay=3, ...)`` as in SBX and sb3-contrib."""

    name = "crossq"
    config_cls = CrossQConfig
    agent_cls = CrossQAgent
