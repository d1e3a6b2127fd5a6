"""TransverseTuning: actuator modes and limits, resets, observation, rewards, boundaries, adapters."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import polyak  # noqa: F401  (registers the ids)
from polyak.envs.transverse_tuning import (
    CHALLENGE_START,
    INCOMING_HIGH,
    INCOMING_LOW,
    MAGNET_LIMITS,
    MAX_DELTA,
    SCREEN_SCALE,
    TransverseTuning,
    TransverseTuningParams,
)
from tests.transverse_tuning_setup import FIXED_BEAM, FIXED_MISALIGNMENTS, fixed_params, screen_beam


def test_jit_and_vmap_over_1024_envs_and_spaces():
    env, params = TransverseTuning(), TransverseTuningParams()
    keys = jax.random.split(jax.random.PRNGKey(0), 1024)
    states, obs = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    assert obs.shape == (1024, 17) and obs.dtype == jnp.float32
    assert float(jnp.abs(obs).max()) <= 1.0
    actions = jax.random.uniform(keys[0], (1024, 5), minval=-MAX_DELTA, maxval=MAX_DELTA)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    states, obs, reward, terminated, truncated, info = step(keys, states, actions, params)
    assert reward.shape == (1024,) and info["beam"].shape == (1024, 4) and info["mae"].shape == (1024,)
    assert not bool(terminated.any()) and not bool(truncated.any())
    # the randomised quantities stay in their ranges and are spread over them
    incoming = np.asarray(states.incoming)
    assert np.all(incoming >= INCOMING_LOW * (1 - 1e-6) - 1e-12) and np.all(incoming <= INCOMING_HIGH * (1 + 1e-6))
    assert incoming[:, 0].std() > 15e6  # energy ~ U(80, 160) MeV: std 23 MeV
    assert np.abs(np.asarray(states.misalignments)).max() <= 5e-4 + 1e-9
    np.testing.assert_allclose(np.asarray(states.magnets[0] - (states.magnets[0] - actions[0])),
                               np.asarray(actions[0]), atol=1e-6)


def test_gymnasium_adapter_passes_the_env_checker_and_truncates_at_50_and_150():
    env = gym.make("polyak/TransverseTuning-v0")
    check_env(env.unwrapped)
    for max_steps in (50, 150):
        env = gym.make("polyak/TransverseTuning-v0", max_steps=max_steps)
        env.reset(seed=0)
        steps, truncated = 0, False
        while not truncated:
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            steps += 1
            assert not terminated
        assert steps == max_steps
    assert set(info) == {"mae", "on_screen", "beam", "magnets", "target"}


def test_delta_mode_clips_each_step_and_the_limits():
    env, params = TransverseTuning("delta"), fixed_params()
    state, _ = env.reset(jax.random.PRNGKey(0), params)
    np.testing.assert_allclose(state.magnets, CHALLENGE_START)
    big = np.array([1.0, -1.0, 100.0, -100.0, 0.5], np.float32)  # beyond the per-step limit except the last
    state, *_ = env.step(jax.random.PRNGKey(1), state, big, params)
    expected = np.array(CHALLENGE_START) + np.clip(big, -MAX_DELTA, MAX_DELTA)
    np.testing.assert_allclose(state.magnets, expected, rtol=1e-6)
    for _ in range(40):  # keep pushing: settings stop at the limits
        state, *_ = env.step(jax.random.PRNGKey(1), state, big, params)
    np.testing.assert_allclose(np.abs(state.magnets[:4]), MAGNET_LIMITS[:4], rtol=1e-6)


def test_direct_mode_sets_the_magnets_and_the_beam_is_the_tracked_beam():
    env, params = TransverseTuning("direct"), fixed_params()
    state, _ = env.reset(jax.random.PRNGKey(0), params)
    setting = np.array([1e-3, -2e-3, 5.0, -7.0, 40.0], np.float32)
    state, obs, reward, _, _, info = env.step(jax.random.PRNGKey(1), state, setting, params)
    clipped = np.clip(setting, -MAGNET_LIMITS, MAGNET_LIMITS)
    np.testing.assert_allclose(info["magnets"], clipped, rtol=1e-6)
    beam = screen_beam(clipped, FIXED_MISALIGNMENTS, FIXED_BEAM)
    np.testing.assert_allclose(info["beam"], beam, rtol=1e-5)
    np.testing.assert_allclose(obs[:4], np.clip(beam / SCREEN_SCALE, -1, 1), rtol=1e-5)
    np.testing.assert_allclose(obs[4:9], clipped / MAGNET_LIMITS, rtol=1e-6)
    np.testing.assert_allclose(info["mae"], np.mean(np.abs(beam - np.array(params.target))), rtol=1e-5)


def test_history_observation_holds_the_previous_errors_and_the_applied_change():
    """with_history = the 17 entries + the previous reading's symlog errors + the last applied change / max_delta,
    computed by hand from the readings (no noise: reading = beam); on reset the errors repeat and the change is 0."""
    env, base, params = TransverseTuning(observation="with_history"), TransverseTuning(), fixed_params()
    assert env.observation_space.shape == (26,)

    def symlog(error):
        return np.sign(error) * np.log1p(np.abs(error) / 10e-6) / np.log1p(20e-3 / 10e-6)

    state, obs = env.reset(jax.random.PRNGKey(0), params)
    _, obs17 = base.reset(jax.random.PRNGKey(0), params)
    target = np.array(params.target)
    beam0 = screen_beam(np.array(CHALLENGE_START, np.float32), FIXED_MISALIGNMENTS, FIXED_BEAM)
    np.testing.assert_array_equal(obs[:17], obs17)
    np.testing.assert_allclose(obs[17:21], symlog(np.asarray(beam0) - target), atol=1e-6)
    np.testing.assert_array_equal(obs[21:], np.zeros(5))
    # a step beyond the per-step limit on two magnets, then one into Q1's limit: the *applied* change is observed
    action = np.array([1.0, -3e-4, 5.0, -1.0, 0.5], np.float32)
    state, obs, *_, info = env.step(jax.random.PRNGKey(1), state, action, params)
    np.testing.assert_allclose(obs[17:21], symlog(np.asarray(beam0) - target), atol=1e-6)  # the previous reading
    np.testing.assert_allclose(obs[21:], np.clip(action, -MAX_DELTA, MAX_DELTA) / MAX_DELTA, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(obs[13:17], symlog(np.asarray(info["beam"]) - target), atol=1e-6)
    previous = np.asarray(info["beam"])
    state = state._replace(magnets=state.magnets.at[2].set(29.0))
    state, obs, *_ = env.step(jax.random.PRNGKey(2), state, np.array([0, 0, 2.0, 0, 0], np.float32), params)
    np.testing.assert_allclose(obs[17:21], symlog(previous - target), atol=1e-6)
    np.testing.assert_allclose(obs[21:], [0, 0, 0.5, 0, 0], atol=1e-6)  # 29 -> 30 (the limit): half a full step


@pytest.mark.parametrize("reward", ["log_mae", "negative_mae", "differential"])
def test_rewards_match_their_formulas(reward):
    env, params = TransverseTuning("direct", reward=reward), fixed_params(offscreen_penalty=0.0)
    state, _ = env.reset(jax.random.PRNGKey(0), params)
    mae_initial = float(state.mae_initial)
    setting = np.array([2e-4, -1e-4, 12.0, -9.0, 8.0], np.float32)
    state, _, r1, *_, info1 = env.step(jax.random.PRNGKey(1), state, setting, params)
    state, _, r2, *_, info2 = env.step(jax.random.PRNGKey(2), state, setting * 0.9, params)
    m1, m2 = float(info1["mae"]), float(info2["mae"])  # no reading noise: reading = beam
    expected = {"log_mae": (np.log(1e-3 / m1), np.log(1e-3 / m2)),
                "negative_mae": (-m1 / 1e-3, -m2 / 1e-3),
                "differential": ((mae_initial - m1) / mae_initial, (m1 - m2) / mae_initial)}[reward]
    np.testing.assert_allclose([r1, r2], expected, rtol=1e-4)


def test_beam_off_screen_is_flagged_and_penalised():
    env = TransverseTuning("direct")
    params = fixed_params(offscreen_penalty=2.5)
    state, _ = env.reset(jax.random.PRNGKey(0), params)
    _, _, r_on, _, _, info = env.step(jax.random.PRNGKey(1), state, np.array(CHALLENGE_START, np.float32), params)
    assert bool(info["on_screen"])
    kick = np.array([5.3e-3, 0.0, 0.0, 0.0, 0.0], np.float32)  # 5 mrad over ~3 m: ~16 mm off
    _, obs, r_off, _, _, info = env.step(jax.random.PRNGKey(1), state, kick, params)
    assert not bool(info["on_screen"]) and abs(float(info["beam"][0])) > SCREEN_SCALE[0]
    assert obs[0] == pytest.approx(np.sign(info["beam"][0]))  # the reading saturates at the screen edge
    np.testing.assert_allclose(r_off, np.log(1e-3 / max(float(info["mae"]), 1e-6)) - 2.5, rtol=1e-4)


def test_fixed_values_are_used_and_nan_entries_are_drawn():
    env = TransverseTuning()
    params = TransverseTuningParams(target=(0.0, 0.0, np.nan, 0.0), initial_magnets=(np.nan,) * 5)
    states, _ = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(3), 256), params)
    target = np.asarray(states.target)
    assert np.all(target[:, [0, 1, 3]] == 0.0) and target[:, 2].std() > 5e-4
    magnets = np.asarray(states.magnets)
    assert np.all(np.abs(magnets) <= MAGNET_LIMITS) and np.all(magnets.std(0) > 0.4 * MAGNET_LIMITS)


def test_reading_noise_changes_the_observation_not_the_true_beam():
    env = TransverseTuning("direct")
    quiet, noisy = fixed_params(), fixed_params(reading_noise=50e-6)
    state, _ = env.reset(jax.random.PRNGKey(0), quiet)
    setting = np.array(CHALLENGE_START, np.float32)
    keys = jax.random.split(jax.random.PRNGKey(1), 2000)
    step = jax.vmap(env.step, in_axes=(0, None, None, None))
    _, obs_q, *_, info_q = step(keys, state, setting, quiet)
    _, obs_n, *_, info_n = step(keys, state, setting, noisy)
    np.testing.assert_allclose(info_q["beam"], info_n["beam"])
    mu_x_noise = (obs_n[:, 0] - obs_q[:, 0]) * SCREEN_SCALE[0]
    assert abs(float(mu_x_noise.std()) - 50e-6) < 5e-6 and abs(float(mu_x_noise.mean())) < 5e-6


def test_terminates_below_the_mae_threshold_when_asked():
    env = TransverseTuning("direct")
    params = fixed_params(terminate_below_mae=1.0)  # every MAE is below 1 m
    state, _ = env.reset(jax.random.PRNGKey(0), params)
    *_, terminated, truncated, _ = env.step(jax.random.PRNGKey(1), state, np.zeros(5, np.float32), params)
    assert bool(terminated) and not bool(truncated)


def test_vector_env_steps_all_copies_in_one_call_and_auto_resets_same_step():
    envs = gym.make_vec("polyak/TransverseTuning-v0", num_envs=4, max_steps=3)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (4, 17)
    for t in range(3):
        obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert truncated.all() and info["_final_obs"].all()
    assert not np.allclose(info["final_obs"], obs)  # reset observations returned, final ones in info
    np.testing.assert_allclose(obs[:, 4:9], np.tile(np.array(CHALLENGE_START) / MAGNET_LIMITS, (4, 1)), rtol=1e-6)


def test_invalid_choices_name_the_problem():
    with pytest.raises(ValueError, match="action_mode"):
        TransverseTuning(action_mode="absolute")
    with pytest.raises(ValueError, match="reward"):
        TransverseTuning(reward="mse")
    with pytest.raises(ValueError, match="observation"):
        TransverseTuning(observation="image")
