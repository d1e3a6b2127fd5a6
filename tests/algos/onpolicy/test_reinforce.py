"""REINFORCE's time-aware state baseline ("state_time", V(s, t)): the critic's input t / time_horizon,
bootstrapping only at the rollout's cut, the time_horizon default, save/load, predict_values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.algos.onpolicy.learner import Rollout
from polyak.algos.onpolicy.reinforce import REINFORCE, REINFORCEAgent, REINFORCEConfig
from tests.fake_envs import CountingEnv

SMALL = {"policy_kwargs": {"net_arch": [16]}}


def test_value_input_is_observation_and_time_over_horizon():
    """CountingEnv's observation starts with t itself, so the recorded time feature must equal obs[0] / 3."""
    model = REINFORCE("MlpPolicy", CountingEnv(length=3, terminate=False), seed=0, n_steps=8, normalize_obs=False,
                      baseline="state_time", time_horizon=3, **SMALL)
    model.learn(7)  # 7 of 8 rows filled: no update yet; episodes of 3 steps cut by the time limit
    ro = jax.device_get(model.learner.rollout)
    agent = model.agent
    inputs = agent.value_inputs(ro.obs[:7], ro.time_in_episode[:7])
    np.testing.assert_array_equal(inputs[:, 0, :2], ro.obs[:7, 0])
    np.testing.assert_allclose(inputs[:, 0, 2], ro.obs[:7, 0, 0] / 3.0)  # t = 0, 1, 2, 0, 1, 2, 0
    np.testing.assert_allclose(inputs[:, 0, 2], [0, 1 / 3, 2 / 3, 0, 1 / 3, 2 / 3, 0], rtol=1e-6)
    # the next state's time is t + 1 (s'_t of CountingEnv holds it as its first entry too)
    params = model.learner.agent.params
    value, next_value = agent.rollout_values(params, jax.tree.map(lambda x: x[:6], ro))
    np.testing.assert_allclose(next_value, agent.value(params, jnp.concatenate(
        [ro.next_obs[:6], ro.next_obs[:6, :, :1] / 3.0], axis=-1)), rtol=1e-6)
    np.testing.assert_allclose(value, agent.value(params, jnp.concatenate(
        [ro.obs[:6], ro.obs[:6, :, :1] / 3.0], axis=-1)), rtol=1e-6)
    assert params["value"]["params"]["Dense_0"]["kernel"].shape == (3, 16)  # (s, t) in; the policy sees s only
    assert params["policy"]["params"]["Dense_0"]["kernel"].shape == (2, 16)


def test_returns_stop_at_the_time_limit_and_bootstrap_from_v_s_t_plus_1_at_the_cut():
    """Rows 0-1 end an episode at its time limit (truncated at t = 2); rows 2-3 start the next one, cut by the
    rollout's end at t = 1. gamma 0.5, rewards 1, 2, 3, 4, time_horizon 3."""
    agent = REINFORCEAgent(REINFORCEConfig(gamma=0.5, baseline="state_time", time_horizon=3), obs_dim=2, act_dim=1,
                           n_actions=2)
    params = agent.init_params(jax.random.PRNGKey(0))
    obs = jnp.array([[[0.1, 0.2]], [[0.3, -0.1]], [[-0.2, 0.4]], [[0.5, 0.0]]])
    next_obs = jnp.array([[[0.3, -0.1]], [[0.9, 0.9]], [[0.5, 0.0]], [[-0.4, 0.3]]])
    zeros = jnp.zeros((4, 1))
    rollout = Rollout(obs, zeros, zeros, jnp.array([[1.0], [2.0], [3.0], [4.0]]), next_obs, zeros,
                      jnp.array([[0.0], [1.0], [0.0], [0.0]]), jnp.array([[1.0], [2.0], [0.0], [1.0]]))
    psi, returns, weight, value = agent.advantages(params, rollout)

    def v(s, t):  # V(s, t) of one observation
        return agent.value(params, jnp.concatenate([jnp.asarray(s), jnp.array([t / 3.0])]))

    v_cut = v(next_obs[3, 0], 2.0)  # the cut's next state is (s'_3, t + 1 = 2)
    assert abs(v_cut - v(next_obs[3, 0], 1.0)) > 1e-3 and abs(v_cut - v(next_obs[3, 0], 0.0)) > 1e-3  # t matters
    np.testing.assert_allclose(returns[:, 0], [1 + 0.5 * 2, 2, 3 + 0.5 * (4 + 0.5 * v_cut), 4 + 0.5 * v_cut],
                               rtol=1e-5)
    np.testing.assert_allclose(value[:, 0], [v(obs[i, 0], t) for i, t in enumerate([1.0, 2.0, 0.0, 1.0])], rtol=1e-5)
    np.testing.assert_allclose(psi, returns - value, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(weight, 1.0)  # every row is used
    # "state" (V(s)) bootstraps at the time limit as well, from V(s'_1)
    state = REINFORCEAgent(REINFORCEConfig(gamma=0.5, baseline="state"), obs_dim=2, act_dim=1, n_actions=2)
    state_params = state.init_params(jax.random.PRNGKey(0))
    state_returns = state.advantages(state_params, rollout)[1]
    np.testing.assert_allclose(state_returns[1, 0], 2 + 0.5 * state.value(state_params, next_obs[1, 0]), rtol=1e-5)


def test_time_horizon_defaults_to_the_env_time_limit():
    """(A time_horizon that is given wins: see the first test, on an env without a time limit.)"""
    assert REINFORCE("MlpPolicy", "Pendulum-v1", seed=0, **SMALL).config.time_horizon == 200
    assert REINFORCE("MlpPolicy", CountingEnv(), seed=0, **SMALL).config.time_horizon == 1000  # no TimeLimit


def test_update_runs_save_load_round_trip_and_predict_values_refused(tmp_path):
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, n_steps=32, baseline="state_time", **SMALL)
    assert model.config.time_horizon == 500
    before = jax.device_get(model.learner.agent.params)
    model.learn(64)  # two updates
    metrics = jax.device_get(model.learner.metrics)
    assert np.isfinite(metrics["loss"]) and np.isfinite(metrics["value_loss"]) and metrics["rows_used"] == 1.0
    after = jax.device_get(model.learner.agent.params)
    assert not np.allclose(after["value"]["params"]["Dense_0"]["kernel"][-1],
                           before["value"]["params"]["Dense_0"]["kernel"][-1])  # the t weights were trained

    loaded = REINFORCE.load(model.save(tmp_path / "m.polyak"))
    assert loaded.config.baseline == "state_time" and loaded.config.time_horizon == 500
    for a, b in zip(jax.tree.leaves(loaded.learner), jax.tree.leaves(model.learner)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    obs = np.array([0.01, -0.02, 0.03, 0.04], np.float32)
    assert np.array_equal(loaded.predict(obs)[0], model.predict(obs)[0])

    with pytest.raises(ValueError, match=r"V\(s, t\).*time step"):
        loaded.predict_values(obs[None])
    state = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, baseline="state", **SMALL)
    assert state.predict_values(np.stack([obs, obs])).shape == (2,)


def test_variance_bench_starts_v_s_t_as_the_models_v_s():
    """bench_variance extends the model's V(s) with a zero weight on t (the same function at every t), then
fits it to Monte-Carlo returns, leaving the policy alone."""
    from benchmarks.bench_variance import VarianceBenchConfig, benchmark_agent, collect, fit_value, initial_value_params

    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, baseline="state", **SMALL)
    v_s, v_s_t = benchmark_agent(model, "state"), benchmark_agent(model, "state_time")
    params = dict(model.learner.agent.params, value=initial_value_params(model, "state_time"))
    obs = jnp.array([[0.5, -1.0, 0.2, 1.5], [-0.3, 0.0, 2.0, -0.7]])
    expected = v_s.value(model.learner.agent.params, obs)
    for t in (0.0, 250.0, 499.0):
        np.testing.assert_allclose(v_s_t.value(params, v_s_t.value_inputs(obs, jnp.full((2,), t))), expected, rtol=1e-6)
    rollout, _ = collect(model, "CartPole-v1", 2, 60, env_seed=1)
    fitted = fit_value(model, rollout, VarianceBenchConfig(fit_steps=3, fit_minibatch=32), "state_time")
    assert fitted["policy"] is model.learner.agent.params["policy"]
    kernel = fitted["value"]["params"]["Dense_0"]["kernel"]
    assert kernel.shape == (5, 16) and np.any(kernel[-1] != 0.0)  # the t weights moved off zero
