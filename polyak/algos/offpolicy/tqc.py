"""Truncated Quantile Critics (Kuznetsov et al. 2020): SAC with distributional critics whose pooled
target mixture drops its largest atoms, to control overestimation finely.

Per gradient step, on a batch (s, a, r, s', d), N critics of K quantiles each:
  1. pooled target   z'_(1) <= ... <= z'_(NK): the sorted quantiles theta'_jk(s', a') of all target critics
                     keep the smallest kN = N (K - drop): y_i = r + gamma (1 - d) (z'_(i) - alpha log pi(a'|s'))
  2. critic loss     L_Q = sum_j quantile Huber (theta_j(s, a), {y_i})     (tau_k = (k + 1/2) / K)
  3. actor loss      L_pi = mean (alpha log pi(a~|s) - 1/(NK) sum_jk theta_jk(s, a~))
  4. temperature and Polyak as SAC (`offpolicy.soft`)
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from polyak.algos.offpolicy.host import OffPolicyAlgorithm
from polyak.algos.offpolicy.soft import SoftAgent, SoftConfig
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.losses import quantile_huber_loss


@dataclass(frozen=True)
class TQCConfig(SoftConfig):
    """SAC's hyperparameters plus the quantile critics (sb3-contrib/SBX defaults)."""

    n_quantiles: int = 25  # quantiles per critic
    top_quantiles_to_drop_per_net: int = 2  # d: atoms dropped per critic from the pooled target mixture

    def validate(self) -> None:
        super().validate()
        need(self.n_quantiles >= 1, f"n_quantiles must be >= 1, got {self.n_quantiles}")
        need(0 <= self.top_quantiles_to_drop_per_net < self.n_quantiles,
             f"top_quantiles_to_drop_per_net must be in [0, n_quantiles) = [0, {self.n_quantiles}), "
             f"got {self.top_quantiles_to_drop_per_net}")


@dataclass(frozen=True)
class TQCAgent(SoftAgent):
    cfg: TQCConfig

    @property
    def n_quantiles(self) -> int:
        return self.cfg.n_quantiles

    def target_value(self, next_q: jax.Array, key: jax.Array) -> jax.Array:
        """1. the pooled mixture of all target quantiles (n_critics, batch, K) -> (batch, N (K - d)), smallest first."""
        n_critics, batch, n_quantiles = next_q.shape
        pooled = jnp.sort(jnp.moveaxis(next_q, 0, 1).reshape(batch, n_critics * n_quantiles), axis=-1)
        return pooled[:, : n_critics * (n_quantiles - self.cfg.top_quantiles_to_drop_per_net)]

    def critic_loss(self, q: jax.Array, y: jax.Array) -> jax.Array:
        """2. sum over critics of the quantile Huber loss of its K quantiles against the kN target atoms."""
        return jax.vmap(quantile_huber_loss, in_axes=(0, None))(q, y).sum()

    def actor_value(self, q: jax.Array) -> jax.Array:
        """3. the mean of every critic's quantiles."""
        return q.mean(axis=(0, 2))


@register(family="offpolicy", action_kinds=("Box",))
class TQC(OffPolicyAlgorithm):
    """Truncated Quantile Critics. ``TQC("MlpPolicy", env, n_quantiles=25, top_quantiles_to_drop_per_net=2)``
    as in sb3-contrib."""

    name = "tqc"
    config_cls = TQCConfig
    agent_cls = TQCAgent
