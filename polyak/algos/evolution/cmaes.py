"""CMA-ES with full covariance, as in Hansen's tutorial (arXiv:1604.00772, 2016), with its default
parameters (Table 1, including the negative weights of active CMA). Population x_k ~ m + sigma N(0, C):

    z_k ~ N(0, I),  y_k = B D z_k,  x_k = m + sigma y_k,  k = 1..lambda       C = B D^2 B^T
    F_k = return of the policy x_k; sort best first: y_{1:lambda}, ...           (population.py)
    <y>_w    = sum_{i <= mu} w_i y_{i:lambda}                                     selection and recombination
    m       <- m + c_m sigma <y>_w
    p_sigma <- (1 - c_sigma) p_sigma + sqrt(c_sigma (2 - c_sigma) mu_eff) C^{-1/2} <y>_w
    sigma   <- sigma exp(c_sigma / d_sigma (||p_sigma|| / E||N(0, I)|| - 1))      cumulative step-size adaptation
    h_sigma  = [||p_sigma|| / sqrt(1 - (1 - c_sigma)^(2 (g + 1))) < (1.4 + 2 / (n + 1)) E||N(0, I)||]
    p_c     <- (1 - c_c) p_c + h_sigma sqrt(c_c (2 - c_c) mu_eff) <y>_w
    w°_i     = w_i (1 if w_i >= 0 else n / ||C^{-1/2} y_{i:lambda}||^2)
    C       <- (1 + c_1 delta(h_sigma) - c_1 - c_mu sum_j w_j) C
               + c_1 p_c p_c^T + c_mu sum_{i <= lambda} w°_i y_{i:lambda} y_{i:lambda}^T   rank-one + rank-mu
               with delta(h_sigma) = (1 - h_sigma) c_c (2 - c_c)
    every `eigen_interval` generations: C = B D^2 B^T (eigendecomposition)

C^{-1/2} y_k = B D^-1 B^T B D z_k = B z_k, so it needs no extra solve. The eigendecomposition is O(n^3) and
C holds n^2 floats: full-covariance CMA-ES fits policies of up to a few thousand parameters (CEM and NES
scale linearly). Under `jax.vmap` over seeds the lazy decomposition's branch is computed every
generation (a batched `lax.cond` runs both sides): the same results, more work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from polyak.algos.evolution.population import ESConfig, EvolutionAlgorithm, Strategy
from polyak.algos.registry import register
from polyak.core.config import need


@dataclass(frozen=True)
class CMAESConfig(ESConfig):
    """CMA-ES's hyperparameters; everything else follows from n (the parameters) and lambda (the tutorial's
    defaults, `cma_constants`)."""

    population_size: int | None = None  # lambda; None: the tutorial's 4 + floor(3 ln n)
    init_std: float = 0.1  # sigma_0, the initial step size (C_0 = I)
    eigen_interval: int | None = None  # generations between eigendecompositions; None: max(1, 1/(10 n (c_1 + c_mu)))

    def validate(self) -> None:
        super().validate()
        need(self.init_std > 0, f"init_std must be > 0, got {self.init_std}")
        need(self.eigen_interval is None or self.eigen_interval >= 1,
             f"eigen_interval must be >= 1 (or None: the tutorial's rule), got {self.eigen_interval}")


class CMAConstants(NamedTuple):
    """The tutorial's default strategy parameters for dimension n and population lambda."""

    lam: int
    mu: int
    weights: np.ndarray  # (lambda,) w_i: positive for i <= mu (sum 1), negative after (active CMA)
    mu_eff: float
    c_sigma: float
    d_sigma: float
    c_c: float
    c_1: float
    c_mu: float
    c_m: float
    chi_n: float  # E||N(0, I)||
    eigen_interval: int


def default_population_size(n: int) -> int:
    """lambda = 4 + floor(3 ln n)."""
    return 4 + int(math.floor(3 * math.log(n)))


def cma_constants(n: int, lam: int, eigen_interval: int | None = None) -> CMAConstants:
    """Hansen (2016), Table 1 and eqs. (49)-(58): weights, mu_eff, c_sigma, d_sigma, c_c, c_1, c_mu."""
    mu = lam // 2
    w_prime = math.log((lam + 1) / 2) - np.log(np.arange(1, lam + 1))  # w'_i = ln((lambda + 1) / 2) - ln i
    pos, neg = w_prime[:mu], w_prime[mu:]
    mu_eff = pos.sum() ** 2 / (pos**2).sum()  # mu_eff = (sum w'_i)^2 / sum w'_i^2 over the mu best
    mu_eff_neg = neg.sum() ** 2 / (neg**2).sum() if (neg != 0).any() else 0.0
    alpha_cov = 2.0
    c_c = (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n)
    c_sigma = (mu_eff + 2) / (n + mu_eff + 5)
    c_1 = alpha_cov / ((n + 1.3) ** 2 + mu_eff)
    c_mu = min(1 - c_1, alpha_cov * (mu_eff - 2 + 1 / mu_eff) / ((n + 2) ** 2 + alpha_cov * mu_eff / 2))
    d_sigma = 1 + 2 * max(0.0, math.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_sigma
    # negative weights: scaled so that C stays positive definite and the negative update is not too strong
    alpha_mu_neg = 1 + c_1 / c_mu if c_mu > 0 else math.inf
    alpha_mu_eff_neg = 1 + 2 * mu_eff_neg / (mu_eff + 2)
    alpha_posdef_neg = (1 - c_1 - c_mu) / (n * c_mu) if c_mu > 0 else math.inf
    neg_sum = np.abs(w_prime[w_prime < 0]).sum()
    weights = np.where(w_prime >= 0, w_prime / w_prime[w_prime >= 0].sum(),
                       min(alpha_mu_neg, alpha_mu_eff_neg, alpha_posdef_neg) * w_prime / max(neg_sum, 1e-300))
    chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n**2))
    if eigen_interval is None:  # lazy decomposition: every 1 / (10 n (c_1 + c_mu)) generations (tutorial B.2)
        eigen_interval = max(1, int(1 / (10 * n * (c_1 + c_mu))))
    return CMAConstants(lam, mu, weights, float(mu_eff), c_sigma, d_sigma, c_c, c_1, c_mu, 1.0, chi_n,
                        int(eigen_interval))


class CMAState(NamedTuple):
    mean: jax.Array  # m (n,)
    sigma: jax.Array  # step size
    cov: jax.Array  # C (n, n)
    basis: jax.Array  # B: eigenvectors of C at the last decomposition (columns)
    scales: jax.Array  # D: square roots of its eigenvalues
    path_sigma: jax.Array  # p_sigma (n,)
    path_c: jax.Array  # p_c (n,)


def cma_update(state: CMAState, z: jax.Array, fitness: jax.Array, generation: jax.Array,
               k: CMAConstants) -> CMAState:
    """One generation's update from the standard-normal draws z (lambda, n) behind the candidates and their
    fitness (higher is better); the equations of the module docstring, in order."""
    n = state.mean.shape[0]
    w = jnp.asarray(k.weights, state.mean.dtype)
    order = jnp.argsort(-fitness)  # best first
    z = z[order]
    y = (z * state.scales) @ state.basis.T  # y_i = B D z_i
    y_w = w[:k.mu] @ y[:k.mu]  # <y>_w = sum_{i <= mu} w_i y_{i:lambda}
    mean = state.mean + k.c_m * state.sigma * y_w  # m <- m + c_m sigma <y>_w
    c_inv_sqrt_y_w = w[:k.mu] @ (z[:k.mu] @ state.basis.T)  # C^{-1/2} <y>_w = sum w_i B z_i
    path_sigma = ((1 - k.c_sigma) * state.path_sigma
                  + math.sqrt(k.c_sigma * (2 - k.c_sigma) * k.mu_eff) * c_inv_sqrt_y_w)
    norm_p_sigma = jnp.linalg.norm(path_sigma)
    sigma = state.sigma * jnp.exp(k.c_sigma / k.d_sigma * (norm_p_sigma / k.chi_n - 1))
    g = generation.astype(state.mean.dtype)
    h_sigma = (norm_p_sigma / jnp.sqrt(1 - (1 - k.c_sigma) ** (2 * (g + 1)))
               < (1.4 + 2 / (n + 1)) * k.chi_n).astype(state.mean.dtype)
    path_c = (1 - k.c_c) * state.path_c + h_sigma * math.sqrt(k.c_c * (2 - k.c_c) * k.mu_eff) * y_w
    # w°_i = w_i n / ||C^{-1/2} y_i||^2 for the negative weights (||C^{-1/2} y_i|| = ||B z_i|| = ||z_i||)
    w_circ = jnp.where(w >= 0, w, w * n / jnp.sum(z**2, axis=1))
    delta_h = (1 - h_sigma) * k.c_c * (2 - k.c_c)
    cov = ((1 + k.c_1 * delta_h - k.c_1 - k.c_mu * float(np.sum(k.weights))) * state.cov
           + k.c_1 * jnp.outer(path_c, path_c)  # rank-one
           + k.c_mu * (y.T * w_circ) @ y)  # rank-mu: sum_i w°_i y_i y_i^T
    cov = (cov + cov.T) / 2

    def decompose(cov):
        eigenvalues, basis = jnp.linalg.eigh(cov)  # C = B D^2 B^T
        return basis, jnp.sqrt(jnp.maximum(eigenvalues, 1e-20))

    basis, scales = jax.lax.cond((generation + 1) % k.eigen_interval == 0, decompose,
                                 lambda _: (state.basis, state.scales), cov)
    return CMAState(mean, sigma, cov, basis, scales, path_sigma, path_c)


@dataclass(frozen=True)
class CMAESStrategy(Strategy):
    cfg: CMAESConfig

    @property
    def population_size(self) -> int:
        return self.cfg.population_size or default_population_size(self.dim)

    @property
    def constants(self) -> CMAConstants:
        return cma_constants(self.dim, self.population_size, self.cfg.eigen_interval)

    def init(self, mean0: jax.Array) -> CMAState:
        n = self.dim
        return CMAState(mean0, jnp.asarray(self.cfg.init_std, jnp.float32), jnp.eye(n), jnp.eye(n), jnp.ones(n),
                        jnp.zeros(n), jnp.zeros(n))

    def ask(self, state: CMAState, key: jax.Array):
        z = jax.random.normal(key, (self.population_size, self.dim))
        y = (z * state.scales) @ state.basis.T  # y_k = B D z_k
        return state.mean + state.sigma * y, z  # x_k = m + sigma y_k

    def tell(self, state: CMAState, candidates, z, fitness, generation):
        new = cma_update(state, z, fitness, generation, self.constants)
        return new, {"sigma": new.sigma, "axis_ratio": new.scales.max() / new.scales.min()}


@register(family="evolution", action_kinds=("Box",), jitted_loop=False)
class CMAES(EvolutionAlgorithm):
    """CMA-ES (full covariance, Hansen 2016's defaults) on the policy's parameters."""

    name = "cmaes"
    config_cls = CMAESConfig
    strategy_cls = CMAESStrategy


__all__ = ["CMAES", "CMAESConfig", "CMAState", "CMAESStrategy", "CMAConstants", "cma_constants", "cma_update",
           "default_population_size"]
