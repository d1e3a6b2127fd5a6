"""The three strategies' updates on tiny inputs, against hand computation or a NumPy reference written here."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.algos.evolution.cem import CEMConfig, CEMState, CEMStrategy, cem_update, n_elite
from polyak.algos.evolution.cmaes import (CMAESConfig, CMAESStrategy, CMAState, cma_constants, default_population_size)
from polyak.algos.evolution.nes import (NESConfig, NESStrategy, antithetic_noise, centred_ranks,
                                        search_gradient)


# -- CEM -----------------------------------------------------------------------------------------
def test_cem_elite_mean_and_variance_with_noise_floor():
    x = jnp.array([[0.0, 0.0], [1.0, 2.0], [9.0, 9.0], [3.0, 6.0], [-5.0, 1.0]])
    fitness = jnp.array([1.0, 5.0, 3.0, 4.0, 2.0])  # best two: rows 1 and 3
    new = cem_update(CEMState(jnp.zeros(2), jnp.ones(2)), x, fitness, n_elite=2, noise_floor=0.5)
    np.testing.assert_allclose(new.mean, [2.0, 4.0])  # ([1, 2] + [3, 6]) / 2
    np.testing.assert_allclose(new.var, [1.0 + 0.5, 4.0 + 0.5])  # ((1-2)^2 + (3-2)^2) / 2 + eta, ...
    one = cem_update(CEMState(jnp.zeros(2), jnp.ones(2)), x, fitness, n_elite=1, noise_floor=0.25)
    np.testing.assert_allclose(one.mean, [1.0, 2.0])
    np.testing.assert_allclose(one.var, [0.25, 0.25])  # one elite: the variance is the floor


def test_cem_elite_count():
    assert n_elite(10, 0.2) == 2 and n_elite(10, 0.25) == 2 and n_elite(3, 0.1) == 1 and n_elite(8, 1.0) == 8


def test_cem_ask_scales_standard_normals_by_sigma():
    strategy = CEMStrategy(CEMConfig(population_size=4), 3)
    state = CEMState(jnp.array([1.0, 2.0, 3.0]), jnp.array([4.0, 1.0, 0.25]))
    x, z = strategy.ask(state, jax.random.PRNGKey(0))
    np.testing.assert_allclose(x, state.mean + jnp.array([2.0, 1.0, 0.5]) * z, rtol=1e-6)


# -- NES -----------------------------------------------------------------------------------------
def test_centred_ranks():
    np.testing.assert_allclose(centred_ranks(jnp.array([10.0, -3.0, 7.0, 0.0])), [0.5, -0.5, 1 / 6, -1 / 6], rtol=1e-6)


def test_antithetic_pairs():
    eps = antithetic_noise(jax.random.PRNGKey(1), 6, 4)
    np.testing.assert_array_equal(eps[3:], -eps[:3])


def test_search_gradient_by_hand():
    eps = jnp.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [0.0, -2.0]])  # antithetic pairs (0, 2), (1, 3)
    fitness = jnp.array([4.0, 1.0, 2.0, 3.0])  # centred ranks u = [1/2, -1/2, -1/6, 1/6]
    # g = 1/(lambda sigma) sum u_i eps_i = 1/(4 * 0.5) ([1/2 + 1/6, 0] + [0, -1 - 1/3]) = [1/3, -2/3]
    np.testing.assert_allclose(search_gradient(eps, fitness, 0.5), [1 / 3, -2 / 3], rtol=1e-6)


def test_nes_sgd_step_ascends_the_estimate():
    cfg = NESConfig(population_size=4, sigma=0.5, learning_rate=0.3, optimizer="sgd", weight_decay=0.1)
    strategy = NESStrategy(cfg, 2)
    state = strategy.init(jnp.array([1.0, -1.0]))
    eps = jnp.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [0.0, -2.0]])
    new, metrics = strategy.tell(state, state.mean + 0.5 * eps, eps, jnp.array([4.0, 1.0, 2.0, 3.0]), 0)
    g = np.array([1 / 3, -2 / 3]) - 0.1 * np.array([1.0, -1.0])  # g - weight_decay theta
    np.testing.assert_allclose(new.mean, np.array([1.0, -1.0]) + 0.3 * g, rtol=1e-6)
    np.testing.assert_allclose(metrics["grad_norm"], np.linalg.norm(g), rtol=1e-6)


# -- CMA-ES: the tutorial's constants and one update, in NumPy (float64) ------------------------------
def reference_constants(n, lam):
    """Hansen (2016) Table 1, written out again."""
    mu = lam // 2
    wp = np.array([math.log((lam + 1) / 2) - math.log(i) for i in range(1, lam + 1)])
    mu_eff = wp[:mu].sum() ** 2 / (wp[:mu] ** 2).sum()
    mu_eff_neg = wp[mu:].sum() ** 2 / (wp[mu:] ** 2).sum()
    c_1 = 2 / ((n + 1.3) ** 2 + mu_eff)
    c_mu = min(1 - c_1, 2 * (mu_eff - 2 + 1 / mu_eff) / ((n + 2) ** 2 + mu_eff))
    c_sigma = (mu_eff + 2) / (n + mu_eff + 5)
    c_c = (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n)
    d_sigma = 1 + 2 * max(0, math.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_sigma
    scale_neg = min(1 + c_1 / c_mu, 1 + 2 * mu_eff_neg / (mu_eff + 2), (1 - c_1 - c_mu) / (n * c_mu))
    w = np.array([v / wp[wp >= 0].sum() if v >= 0 else scale_neg * v / -wp[wp < 0].sum() for v in wp])
    return dict(mu=mu, w=w, mu_eff=mu_eff, c_1=c_1, c_mu=c_mu, c_sigma=c_sigma, c_c=c_c, d_sigma=d_sigma,
                chi_n=math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n**2)))


def test_cma_constants_match_the_tutorial():
    assert default_population_size(2) == 6 and default_population_size(10) == 10 and default_population_size(1000) == 24
    k = cma_constants(2, 6)
    # lambda = 6, mu = 3: w'_i = ln 3.5 - ln i; mu_eff = (sum w'_1..3)^2 / sum w'^2 = 2.0286 (by hand)
    wp = math.log(3.5) - np.log([1, 2, 3])
    assert k.mu == 3 and k.mu_eff == pytest.approx(wp.sum() ** 2 / (wp**2).sum()) == pytest.approx(2.0286, abs=1e-4)
    assert k.weights[:3].sum() == pytest.approx(1.0) and np.all(k.weights[3:] < 0)
    assert k.c_sigma == pytest.approx((k.mu_eff + 2) / (2 + k.mu_eff + 5))
    assert k.c_1 == pytest.approx(2 / (3.3**2 + k.mu_eff))
    ref = reference_constants(7, 11)
    got = cma_constants(7, 11)
    np.testing.assert_allclose(got.weights, ref["w"], rtol=1e-12)
    for name in ("mu", "mu_eff", "c_1", "c_mu", "c_sigma", "c_c", "d_sigma", "chi_n"):
        assert getattr(got, name) == pytest.approx(ref[name], rel=1e-12), name
    # the negative weights make sum_i w_i = 1 - min(...) and keep 1 - c_1 - c_mu sum w >= 0
    assert 1 - got.c_1 - got.c_mu * got.weights.sum() >= 0


def reference_cma_update(m, sigma, C, p_sigma, p_c, x, f, g, k):
    """One generation of the tutorial's CMA-ES, minimising -f, with C^{-1/2} from a fresh eigendecomposition."""
    n = len(m)
    order = np.argsort(-f, kind="stable")
    y = (x[order] - m) / sigma
    eigenvalues, B = np.linalg.eigh(C)
    C_inv_sqrt = B @ np.diag(eigenvalues**-0.5) @ B.T
    w, mu = k["w"], k["mu"]
    y_w = w[:mu] @ y[:mu]
    m_new = m + sigma * y_w
    p_sigma = (1 - k["c_sigma"]) * p_sigma + math.sqrt(k["c_sigma"] * (2 - k["c_sigma"]) * k["mu_eff"]) * C_inv_sqrt @ y_w
    sigma_new = sigma * math.exp(k["c_sigma"] / k["d_sigma"] * (np.linalg.norm(p_sigma) / k["chi_n"] - 1))
    h = float(np.linalg.norm(p_sigma) / math.sqrt(1 - (1 - k["c_sigma"]) ** (2 * (g + 1)))
              < (1.4 + 2 / (n + 1)) * k["chi_n"])
    p_c = (1 - k["c_c"]) * p_c + h * math.sqrt(k["c_c"] * (2 - k["c_c"]) * k["mu_eff"]) * y_w
    w_circ = np.array([wi if wi >= 0 else wi * n / np.linalg.norm(C_inv_sqrt @ yi) ** 2 for wi, yi in zip(w, y)])
    delta = (1 - h) * k["c_c"] * (2 - k["c_c"])
    C_new = ((1 + k["c_1"] * delta - k["c_1"] - k["c_mu"] * w.sum()) * C + k["c_1"] * np.outer(p_c, p_c)
             + k["c_mu"] * sum(wi * np.outer(yi, yi) for wi, yi in zip(w_circ, y)))
    return m_new, sigma_new, C_new, p_sigma, p_c


@pytest.mark.parametrize("generation", [0, 3])
def test_cma_update_matches_numpy_reference(generation):
    n, lam = 3, 7
    rng = np.random.default_rng(0)
    A = rng.normal(size=(n, n))
    C = A @ A.T / n + np.eye(n)  # a non-trivial covariance, decomposed as the state holds it
    eigenvalues, B = np.linalg.eigh(C)
    state = CMAState(jnp.asarray(rng.normal(size=n), jnp.float32), jnp.float32(0.7), jnp.asarray(C, jnp.float32),
                     jnp.asarray(B, jnp.float32), jnp.asarray(np.sqrt(eigenvalues), jnp.float32),
                     jnp.asarray(rng.normal(size=n) * 0.3, jnp.float32), jnp.asarray(rng.normal(size=n) * 0.3, jnp.float32))
    strategy = CMAESStrategy(CMAESConfig(population_size=lam, eigen_interval=1), n)
    x, z = strategy.ask(state, jax.random.PRNGKey(3))
    fitness = -jnp.sum((x - 1.0) ** 2, axis=1)
    new, _ = strategy.tell(state, x, z, fitness, jnp.int32(generation))
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    ref = reference_cma_update(f64(state.mean), 0.7, C, f64(state.path_sigma), f64(state.path_c), f64(x), f64(fitness),
                               generation, reference_constants(n, lam))
    for got, want in zip((new.mean, new.sigma, new.cov, new.path_sigma, new.path_c), ref):
        np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-5)
    # the eigendecomposition (every generation here) holds the new C
    np.testing.assert_allclose(np.asarray((new.basis * new.scales**2) @ new.basis.T), ref[2], rtol=2e-4, atol=2e-5)


def test_cma_lazy_eigendecomposition_keeps_the_old_basis_between_decompositions():
    strategy = CMAESStrategy(CMAESConfig(population_size=6, eigen_interval=3), 2)
    state = strategy.init(jnp.zeros(2))
    x, z = strategy.ask(state, jax.random.PRNGKey(0))
    kept, _ = strategy.tell(state, x, z, -jnp.sum(x**2, 1), jnp.int32(0))  # (0 + 1) % 3 != 0
    np.testing.assert_array_equal(kept.basis, state.basis)
    decomposed, _ = strategy.tell(state, x, z, -jnp.sum(x**2, 1), jnp.int32(2))  # (2 + 1) % 3 == 0
    assert not np.array_equal(decomposed.scales, state.scales)


# -- all three minimise a shifted sphere (sign conventions: fitness is maximised) --------------------
@pytest.mark.parametrize("strategy", [
    CEMStrategy(CEMConfig(population_size=32, init_std=1.0, noise_floor=1e-3), 5),
    CMAESStrategy(CMAESConfig(init_std=1.0), 5),
    NESStrategy(NESConfig(population_size=32, sigma=0.1, learning_rate=0.1), 5),
], ids=["cem", "cmaes", "nes"])
def test_strategies_find_the_optimum_of_a_sphere(strategy):
    def step(carry, key):
        state, g = carry
        x, noise = strategy.ask(state, key)
        state, _ = strategy.tell(state, x, noise, -jnp.sum((x - 3.0) ** 2, axis=1), g)
        return (state, g + 1), None

    (state, _), _ = jax.jit(lambda s: jax.lax.scan(step, (s, jnp.int32(0)), jax.random.split(jax.random.PRNGKey(0), 150)))(
        strategy.init(jnp.zeros(5)))
    np.testing.assert_allclose(strategy.mean(state), 3.0, atol=0.05)
