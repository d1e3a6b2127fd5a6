"""Natural evolution strategies as scaled up for policy search by Salimans et al. 2017 ("OpenAI-ES"):
an isotropic Gaussian of fixed sigma around theta, antithetic samples, centred-rank fitness shaping,
and the search-gradient estimate fed to an optimiser:

    for each generation:
        eps_i ~ N(0, I), i = 1..lambda/2;  eps_{i + lambda/2} = -eps_i       antithetic pairs
        x_i = theta + sigma eps_i
        F_i = return of the policy x_i                                       (population.py)
        u_i = rank(F_i) / (lambda - 1) - 1/2                                 centred ranks in [-1/2, 1/2]
        g   = 1 / (lambda sigma) sum_i u_i eps_i                             ~ grad_theta E[F(theta + sigma eps)]
            = 1 / (lambda sigma) sum_{i <= lambda/2} (u_i - u_{i + lambda/2}) eps_i
        theta <- theta + Adam(g - weight_decay theta)                       (or plain SGD)

Ranks make the update invariant to monotone transformations of the return and bound the influence of
any one outlier episode (Wierstra et al. 2014's fitness shaping); antithetic pairs cancel the estimate's
even-order noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from polyak.algos.evolution.population import ESConfig, EvolutionAlgorithm, Strategy
from polyak.algos.registry import register
from polyak.core.config import need

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class NESConfig(ESConfig):
    """NES's hyperparameters (the population's and the policy's are in ESConfig); population_size is even."""

    sigma: float = 0.05  # fixed standard deviation of the perturbations
    learning_rate: float = 0.03  # step size of the optimiser on -g
    optimizer: str = "adam"  # "adam" (Salimans et al.) or "sgd" (theta <- theta + lr g)
    weight_decay: float = 0.0  # L2 pull towards 0 added to the ascent direction: g - wd theta

    def validate(self) -> None:
        super().validate()
        need(self.population_size % 2 == 0,
             f"population_size must be even for NES's antithetic pairs, got {self.population_size}")
        need(self.sigma > 0, f"sigma must be > 0, got {self.sigma}")
        need(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(isinstance(self.optimizer, str) and self.optimizer in OPTIMIZERS,
             f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")


class NESState(NamedTuple):
    mean: jax.Array  # theta (P,)
    opt_state: Any  # the optimiser's state (Adam's moments)


def centred_ranks(fitness: jax.Array) -> jax.Array:
    """u_i = rank(F_i) / (lambda - 1) - 1/2: the lowest return gets -1/2, the highest +1/2 (ties by index)."""
    ranks = jnp.argsort(jnp.argsort(fitness))  # 0 = lowest
    return ranks / (fitness.shape[0] - 1) - 0.5


def antithetic_noise(key: jax.Array, population_size: int, dim: int) -> jax.Array:
    """(eps_1..eps_{lambda/2}, -eps_1..-eps_{lambda/2})."""
    half = jax.random.normal(key, (population_size // 2, dim))
    return jnp.concatenate([half, -half])


def search_gradient(eps: jax.Array, fitness: jax.Array, sigma: float) -> jax.Array:
    """g = 1 / (lambda sigma) sum_i u_i eps_i with u the centred ranks of the fitness."""
    return centred_ranks(fitness) @ eps / (eps.shape[0] * sigma)


@dataclass(frozen=True)
class NESStrategy(Strategy):
    cfg: NESConfig

    @property
    def optimizer(self) -> optax.GradientTransformation:
        return (optax.adam if self.cfg.optimizer == "adam" else optax.sgd)(self.cfg.learning_rate)

    def init(self, mean0: jax.Array) -> NESState:
        return NESState(mean0, self.optimizer.init(mean0))

    def ask(self, state: NESState, key: jax.Array):
        eps = antithetic_noise(key, self.population_size, self.dim)
        return state.mean + self.cfg.sigma * eps, eps  # x_i = theta + sigma eps_i

    def tell(self, state: NESState, candidates, eps, fitness, generation):
        g = search_gradient(eps, fitness, self.cfg.sigma) - self.cfg.weight_decay * state.mean
        updates, opt_state = self.optimizer.update(-g, state.opt_state, state.mean)  # optax descends: -g ascends
        return NESState(optax.apply_updates(state.mean, updates), opt_state), {"grad_norm": jnp.linalg.norm(g)}


@register(family="evolution", action_kinds=("Box",), jitted_loop=False)
class NES(EvolutionAlgorithm):
    """Natural evolution strategies (OpenAI-ES): fixed sigma, antithetic sampling, centred-rank shaping."""

    name = "nes"
    config_cls = NESConfig
    strategy_cls = NESStrategy


__all__ = ["NES", "NESConfig", "NESState", "NESStrategy", "centred_ranks", "antithetic_noise", "search_gradient"]
