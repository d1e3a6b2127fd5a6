"""The cross-entropy method (Rubinstein 1999) with a diagonal Gaussian and a noise floor, as "noisy CEM"
for policy search (Szita & Lorincz 2006):

    for each generation:
        x_i = mu + sigma * z_i,   z_i ~ N(0, I),  i = 1..lambda          sample the population
        F_i = return of the policy x_i                                   (population.py)
        E   = the n_e = max(1, floor(rho lambda)) candidates of highest F   the elite
        mu      <- (1/n_e) sum_{i in E} x_i                              elite mean
        sigma^2 <- (1/n_e) sum_{i in E} (x_i - mu)^2 + eta               elite variance + noise floor

The noise floor eta keeps every variance at least eta, so the search cannot collapse onto one policy
before the returns stop improving (Szita & Lorincz's "extra noise"; constant here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from polyak.algos.evolution.population import ESConfig, EvolutionAlgorithm, Strategy
from polyak.algos.registry import register
from polyak.core.config import need


@dataclass(frozen=True)
class CEMConfig(ESConfig):
    """CEM's hyperparameters (the population's and the policy's are in ESConfig)."""

    elite_fraction: float = 0.2  # rho: the best floor(rho * lambda) candidates (at least one) form the elite
    noise_floor: float = 1e-3  # eta: added to every elite variance, a floor under sigma^2
    init_std: float = 0.1  # sigma_0 of every parameter

    def validate(self) -> None:
        super().validate()
        need(0 < self.elite_fraction <= 1, f"elite_fraction must be in (0, 1], got {self.elite_fraction}")
        need(self.noise_floor >= 0, f"noise_floor must be >= 0, got {self.noise_floor}")
        need(self.init_std > 0, f"init_std must be > 0, got {self.init_std}")


class CEMState(NamedTuple):
    mean: jax.Array  # mu (P,)
    var: jax.Array  # sigma^2 (P,)


def n_elite(population_size: int, elite_fraction: float) -> int:
    """n_e = max(1, floor(rho lambda))."""
    return max(1, int(elite_fraction * population_size))


def cem_update(state: CEMState, candidates: jax.Array, fitness: jax.Array, n_elite: int,
               noise_floor: float) -> CEMState:
    """mu <- mean of the elite, sigma^2 <- variance of the elite (about the new mean) + eta."""
    _, elite = jax.lax.top_k(fitness, n_elite)  # the n_e highest returns
    x = candidates[elite]
    mean = x.mean(axis=0)  # mu = (1/n_e) sum x_i
    var = ((x - mean) ** 2).mean(axis=0) + noise_floor  # sigma^2 = (1/n_e) sum (x_i - mu)^2 + eta
    return CEMState(mean, var)


@dataclass(frozen=True)
class CEMStrategy(Strategy):
    cfg: CEMConfig

    def init(self, mean0: jax.Array) -> CEMState:
        return CEMState(mean0, jnp.full_like(mean0, self.cfg.init_std**2))

    def ask(self, state: CEMState, key: jax.Array):
        z = jax.random.normal(key, (self.population_size, self.dim))
        return state.mean + jnp.sqrt(state.var) * z, z  # x_i = mu + sigma z_i

    def tell(self, state: CEMState, candidates, noise, fitness, generation):
        new = cem_update(state, candidates, fitness, n_elite(self.population_size, self.cfg.elite_fraction),
                         self.cfg.noise_floor)
        return new, {"std_mean": jnp.sqrt(new.var).mean(), "std_max": jnp.sqrt(new.var).max()}


@register(family="evolution", action_kinds=("Box",), jitted_loop=False)
class CEM(EvolutionAlgorithm):
    """Cross-entropy method on the policy's parameters (diagonal Gaussian, elite fraction, noise floor)."""

    name = "cem"
    config_cls = CEMConfig
    strategy_cls = CEMStrategy


__all__ = ["CEM", "CEMConfig", "CEMState", "CEMStrategy", "cem_update", "n_elite"]
