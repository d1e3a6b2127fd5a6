"""Randomized Ensembled Double Q-learning (Chen et al. 2021): many critics, a random pair in the
target, many updates per environment step.

Per gradient step, on a batch (s, a, r, s', d), N critics (all in one vmapped forward pass):
  1. subset target   M of the N target critics drawn at random for this step, M = 2:
                     y = r + gamma (1 - d) (min_{j in M} Q'_j(s', a') - alpha log pi(a'|s'))
  2. critic loss     L_Q = 1/2 sum_{j=1..N} mean (Q_j(s, a) - y)^2
  3. every `policy_delay` (= G) critic steps: actor on the ensemble mean,
                     L_pi = mean (alpha log pi(a~|s) - 1/N sum_j Q_j(s, a~)); temperature as SAC
  4. Polyak          as SAC
G = `gradient_steps` (the update-to-data ratio, 20) gradient steps per environment step.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax

from polyak.algos.offpolicy.host import OffPolicyAlgorithm
from polyak.algos.offpolicy.soft import SoftAgent, SoftConfig
from polyak.algos.registry import register
from polyak.core.config import need


@dataclass(frozen=True)
class REDQConfig(SoftConfig):
    """The paper's settings: N = 10, M = 2, UTD G = 20, one actor step per environment step."""

    n_critics: int = 10
    subset_size: int = 2  # M, the target critics drawn at each step
    gradient_steps: int = 20
    policy_delay: int = 20

    def validate(self) -> None:
        super().validate()
        need(1 <= self.subset_size <= self.n_critics,
             f"subset_size must be in [1, n_critics] = [1, {self.n_critics}], got {self.subset_size}")


@dataclass(frozen=True)
class REDQAgent(SoftAgent):
    cfg: REDQConfig

    def target_value(self, next_q: jax.Array, key: jax.Array) -> jax.Array:
        """1. min over a random subset of M of the N target critics (n_critics, batch) -> (batch,)."""
        subset = jax.random.choice(key, next_q.shape[0], (self.cfg.subset_size,), replace=False)
        return next_q[subset].min(axis=0)

    def actor_value(self, q: jax.Array) -> jax.Array:
        """3. the ensemble mean."""
        return q.mean(axis=0)


@register(family="offpolicy", action_kinds=("Box",))
class REDQ(OffPolicyAlgorithm):
    """REDQ. ``REDQ("MlpPolicy", env, n_critics=10, subset_size=2, gradient_steps=20)``."""

    name = "redq"
    config_cls = REDQConfig
    agent_cls = REDQAgent
