"""The offline losses against hand computations on tiny inputs (TD3+BC's lambda and BC term, CQL's logsumexp
penalty, IQL's expectile loss and clipped exp-advantage weights, AWAC's weights)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.algos.offline.awac import awac_weights
from polyak.algos.offline.cql import cql_logsumexp, cql_penalty
from polyak.algos.offline.iql import advantage_weights, expectile_loss
from polyak.algos.offline.td3_bc import td3_bc_actor_loss


def test_td3_bc_lambda_and_bc_term():
    q_pi, pi, a = jnp.array([1.0, -3.0]), jnp.array([[0.5], [0.0]]), jnp.array([[0.0], [1.0]])
    loss, lam, bc = td3_bc_actor_loss(q_pi, pi, a, alpha=2.5)
    # lambda = 2.5 / mean(|1|, |-3|) = 1.25; L = -1.25 * mean(1, -3) + mean(0.5^2, 1^2) = 1.25 + 0.625
    assert float(lam) == pytest.approx(1.25)
    assert float(bc) == pytest.approx(0.625)
    assert float(loss) == pytest.approx(1.875)
    # lambda is a constant for the gradient: dL/dQ_i = -lambda / n
    grad = jax.grad(lambda q: td3_bc_actor_loss(q, pi, a, 2.5)[0])(q_pi)
    np.testing.assert_allclose(grad, [-0.625, -0.625], rtol=1e-6)
    # alpha = 0: pure behaviour cloning, d/dpi mean (pi - a)^2 = 2 (pi - a) / n
    np.testing.assert_allclose(jax.grad(lambda p: td3_bc_actor_loss(q_pi, p, a, 0.0)[0])(pi), [[0.5], [-1.0]])


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_cql_logsumexp_penalty(temperature):
    # one state, act_dim 2, two samples per source
    q_rand, q_pi, log_pi = np.array([[0.0], [1.0]]), np.array([[1.0], [-1.0]]), np.array([[0.5], [0.2]])
    q_next, log_next, q_data = np.array([[2.0], [0.0]]), np.array([[-1.0], [0.3]]), np.array([0.5])
    log_rho_uniform = 2 * math.log(0.5)  # density of U[-1, 1]^2
    terms = [0.0 - log_rho_uniform, 1.0 - log_rho_uniform, 2.0 + 1.0, 0.0 - 0.3, 1.0 - 0.5, -1.0 - 0.2]
    expected = temperature * math.log(sum(math.exp(x / temperature) for x in terms))
    got = cql_logsumexp(*map(jnp.asarray, (q_rand, q_pi, log_pi, q_next, log_next)), act_dim=2,
                        temperature=temperature)
    np.testing.assert_allclose(got, [expected], rtol=1e-6)
    penalty = cql_penalty(*map(jnp.asarray, (q_rand, q_pi, log_pi, q_next, log_next, q_data)), act_dim=2,
                          temperature=temperature)
    assert float(penalty) == pytest.approx(expected - 0.5, rel=1e-6)
    # the penalty pushes Q down on the sampled actions and up on the data's: dC/dQ(s, a) = -1
    grad = jax.grad(lambda q: cql_penalty(*map(jnp.asarray, (q_rand, q_pi, log_pi, q_next, log_next)), q, 2,
                                          temperature))(jnp.asarray(q_data))
    np.testing.assert_allclose(grad, [-1.0])


def test_iql_expectile_loss_and_clipped_weights():
    # u = [2, -1], tau = 0.7: mean(0.7 * 4, 0.3 * 1) = 1.55
    assert float(expectile_loss(jnp.array([2.0, -1.0]), 0.7)) == pytest.approx(1.55)
    assert float(expectile_loss(jnp.array([2.0, -1.0]), 0.5)) == pytest.approx(0.5 * 0.5 * (4 + 1))  # 1/2 MSE
    w = advantage_weights(jnp.array([0.0, 1.0, 10.0, -2.0]), beta=3.0, max_weight=100.0)
    np.testing.assert_allclose(w, [1.0, math.exp(3.0), 100.0, math.exp(-6.0)], rtol=1e-6)
    assert jax.grad(lambda a: advantage_weights(a, 3.0, 100.0).sum())(jnp.array([1.0])) == 0  # constants


def test_awac_weights():
    w = awac_weights(jnp.array([-1.0, 0.0, 2.0, 10.0]), awac_lambda=2.0, max_weight=100.0)
    np.testing.assert_allclose(w, [math.exp(-0.5), 1.0, math.e, 100.0], rtol=1e-6)
