"""benchmarks.bench_variance: the statistics by hand, the gradient estimate against the score-function formula
on a hand-computed rollout, and a tiny run of the whole benchmark on CartPole (structure, and baselines
lowering the variance where the rewards are all positive)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from benchmarks.bench_variance import gradient_statistics, main, policy_gradient, total_variance
from polyak.algos.onpolicy.learner import Rollout
from polyak.algos.onpolicy.reinforce import BASELINES, REINFORCEAgent, REINFORCEConfig
from polyak.core.distributions import Categorical


def test_statistics_by_hand():
    g_none = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]])  # per-parameter variance (ddof 1): 4 and 4
    g_half = np.array([[2.0, 1.0], [3.0, 2.0], [4.0, 3.0]])  # same mean [3, 2], variances 1 and 1
    g_flip = -g_none
    assert total_variance(g_none) == 8.0
    s = gradient_statistics({"none": g_none, "half": g_half, "flip": g_flip})
    assert s["none"]["relative_variance"] == 1.0
    assert s["half"]["relative_variance"] == 0.25
    np.testing.assert_allclose(s["half"]["mean_grad_norm"], np.sqrt(13.0))
    np.testing.assert_allclose(s["half"]["cos_mean_vs_none"], 1.0)
    assert s["half"]["mean_shift_vs_none"] == 0.0 and s["half"]["shift_over_noise"] == 0.0
    np.testing.assert_allclose(s["flip"]["cos_mean_vs_none"], -1.0)
    # d = -2 g_none: mean shift ||(-6, -4)||, noise sqrt(tr Cov(d) / B) = sqrt(32 / 3)
    np.testing.assert_allclose(s["flip"]["shift_over_noise"], np.sqrt(52.0) / np.sqrt(32.0 / 3.0))


def test_gradient_is_the_score_function_estimate():
    """One episode of 3 steps ending in a termination, rewards 1, gamma 0.5: G = [1.75, 1.5, 1]."""
    obs = jnp.array([[[0.1, -0.2]], [[0.3, 0.0]], [[-0.5, 0.4]]])
    action = jnp.array([[[1.0]], [[0.0]], [[1.0]]])
    ones, zeros = jnp.ones((3, 1)), jnp.zeros((3, 1))
    done = jnp.array([[0.0], [0.0], [1.0]])
    rollout = Rollout(obs, action, zeros, ones, obs, done, done, jnp.array([[0.0], [1.0], [2.0]]))
    returns = jnp.array([1.75, 1.5, 1.0])
    # the constant baseline of row i is the mean of the *other* rows' returns (leave-one-out)
    for baseline, b in (("none", 0.0), ("constant", (returns.sum() - returns) / 2.0)):
        agent = REINFORCEAgent(REINFORCEConfig(gamma=0.5, baseline=baseline), obs_dim=2, act_dim=1, n_actions=2)
        params = agent.init_params(jax.random.PRNGKey(0))
        g = policy_gradient(agent, params, rollout)

        def objective(policy_params):  # (1/3) sum_t log pi(a_t|s_t) (G_t - b)
            logits = agent.policy_net.apply(policy_params, obs[:, 0])
            return jnp.mean(Categorical.log_prob(logits, action[:, 0]) * (returns - b))

        expected = ravel_pytree(jax.grad(objective)(params["policy"]))[0]
        assert g.shape == expected.shape  # policy parameters only, no value head
        np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7)


def test_benchmark_tiny_run_on_cartpole(tmp_path):
    """The initial policy, 64 batches of 100 steps, V not refitted (CPU time). CartPole's rewards are all
    positive, so without a baseline every log-probability gradient is pushed by a large return: the
    constant baseline must lower the variance. (The time-dependent one is not asserted: with ~5
    episodes per 100-step batch its leave-one-out b(t) is noisy, and on CartPole it does not beat the
    constant baseline even with large batches; see BENCHMARKS.md.)"""
    assert main(["--batches", "64", "--batch-steps", "100", "--train-steps", "0", "--fit-steps", "0",
                 "--seed", "0", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "variance.json").read_text())
    assert "| baseline |" in (tmp_path / "variance.md").read_text()
    stats = result["baselines"]
    assert set(stats) == set(BASELINES) and sorted(result["ordering_by_variance"]) == sorted(BASELINES)
    assert result["policy"]["n_policy_parameters"] == (4 * 64 + 64) + (64 * 64 + 64) + (64 * 2 + 2)
    assert result["policy"]["episodes"] > 64  # the initial policy falls after ~20 steps
    for s in stats.values():
        assert all(np.isfinite(v) for k, v in s.items() if k != "shift_over_noise")
    assert stats["none"]["relative_variance"] == 1.0
    assert stats["constant"]["total_variance"] < stats["none"]["total_variance"]
    # the baselines leave the mean gradient's direction alone (the mean is well determined here)
    assert all(s["cos_mean_vs_none"] > 0.9 for s in stats.values())
