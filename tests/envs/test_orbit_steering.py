"""The AWAKE-like orbit-steering env: lattice and response matrix, jit/vmap, Gymnasium checker,
the SVD baseline, termination/truncation and the documented reward formula."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from polyak.envs import orbit_steering as osm
from polyak.envs.orbit_steering import (
    OrbitSteering,
    OrbitSteeringParams,
    OrbitSteeringState,
    make_gymnasium_orbit_steering,
    make_vector_orbit_steering,
    response_matrix,
    svd_correction,
)

ENV, PARAMS = OrbitSteering(), OrbitSteeringParams()
R = response_matrix()
STEP = jax.jit(ENV.step)  # one compiled single-env step, shared by the tests below


@pytest.fixture(scope="module")
def gym_env():
    """One Gymnasium adapter (one compilation) for the checker and the scripted episodes."""
    return make_gymnasium_orbit_steering()


def kicks_for_orbit(readings_m) -> np.ndarray:
    """Corrector kicks (float32) whose orbit R θ is the given BPM readings."""
    return np.linalg.solve(R, np.asarray(readings_m, np.float64)).astype(np.float32)


def state_at(readings_m, t=0) -> OrbitSteeringState:
    return OrbitSteeringState(jnp.asarray(kicks_for_orbit(readings_m)), jnp.asarray(t, jnp.int32))


# ---------------------------------------------------------------------------------- lattice


def test_fodo_twiss_matches_the_analytic_thin_lens_cell():
    mu = np.radians(osm.CELL_PHASE_ADVANCE_DEG)
    assert osm.CELL_MU == pytest.approx(mu)
    L, f = osm.CELL_LENGTH, osm.FOCAL_LENGTH
    assert L / (4 * f) == pytest.approx(np.sin(mu / 2))
    beta_max = L * (1 + np.sin(mu / 2)) / np.sin(mu)
    assert osm.PERIODIC_BETA == pytest.approx(beta_max) and abs(osm.PERIODIC_ALPHA) < 1e-12
    # Downstream of the half QF: alpha = beta_max / (2 f); beta(s) in the drift and mu = ∫ ds / beta.
    alpha = beta_max / (2 * f)
    gamma = (1 + alpha**2) / beta_max
    s_c = osm.CORRECTOR_OFFSET
    beta_c = beta_max - 2 * alpha * s_c + gamma * s_c**2
    np.testing.assert_allclose(osm.CORRECTOR_BETA, beta_c, rtol=1e-12)
    np.testing.assert_allclose(osm.BPM_BETA, beta_c, rtol=1e-12)  # mirror image about QF
    s = np.linspace(0.0, s_c, 20001)
    mu_c = np.trapezoid(1 / (beta_max - 2 * alpha * s + gamma * s**2), s) / (2 * np.pi)
    np.testing.assert_allclose(osm.CORRECTOR_MU, np.arange(10) / 4 + mu_c, rtol=1e-7)
    np.testing.assert_allclose(osm.BPM_MU, np.arange(1, 11) / 4 - mu_c, rtol=1e-7)
    assert np.all(np.diff(np.ravel(np.column_stack([osm.CORRECTOR_S, osm.BPM_S]))) > 0)  # interleaved, C0 B0 C1 ...


def test_response_matrix_is_causal_matches_twiss_and_is_well_conditioned():
    assert R.shape == (10, 10) and R.dtype == np.float64
    i, j = np.indices(R.shape)
    assert np.all(R[i < j] == 0.0)  # BPM upstream of the corrector: no response
    expected = np.sqrt(osm.BPM_BETA[:, None] * osm.CORRECTOR_BETA[None, :]) * np.sin(
        2 * np.pi * (osm.BPM_MU[:, None] - osm.CORRECTOR_MU[None, :]))
    np.testing.assert_allclose(R[i >= j], expected[i >= j], rtol=1e-12)
    assert np.all(np.abs(np.diag(R)) > 4.0)
    sv = np.linalg.svd(R, compute_uv=False)
    assert sv[-1] > 2.0 and sv[0] / sv[-1] < 8.0  # 15.66 ... 2.17 m/rad, condition 7.23
    np.testing.assert_array_equal(ENV.response, R)
    np.testing.assert_allclose(ENV.response_pinv @ R, np.eye(10), atol=1e-12)


# ---------------------------------------------------------------------------------- API


def test_reset_and_step_jit_and_vmap_over_64_envs():
    keys = jax.random.split(jax.random.PRNGKey(0), 64)
    states, obs = jax.jit(jax.vmap(ENV.reset, in_axes=(0, None)))(keys, PARAMS)
    assert obs.shape == (64, 10) and obs.dtype == jnp.float32
    assert states.kicks.shape == (64, 10) and states.kicks.dtype == jnp.float32 and states.t.dtype == jnp.int32
    assert np.all(np.abs(np.asarray(obs)) <= 1.0)  # in the observation space
    orbit = np.asarray(jax.vmap(ENV.orbit)(states), np.float64)
    rms = np.sqrt(np.mean(orbit**2, axis=1))
    assert rms.min() >= 2e-3 * (1 - 1e-5) and rms.max() <= 6e-3 * (1 + 1e-5)  # documented range
    assert np.abs(orbit).max() <= 0.8 * PARAMS.wall * (1 + 1e-5)  # well inside the wall
    np.testing.assert_allclose(obs, orbit * 100, rtol=1e-5, atol=1e-6)  # noise 0: unclipped readings ×100

    actions = np.random.default_rng(0).uniform(-2e-4, 2e-4, (64, 10)).astype(np.float32)  # some beyond the limit
    step = jax.jit(jax.vmap(ENV.step, in_axes=(0, 0, 0, None)))
    states2, obs2, reward, term, trunc, info = step(keys, states, actions, PARAMS)
    assert obs2.shape == (64, 10) and obs2.dtype == jnp.float32
    assert reward.shape == (64,) and reward.dtype == jnp.float32
    assert term.dtype == jnp.bool_ and trunc.dtype == jnp.bool_ and not bool(trunc.any())
    assert set(info) == {"rms", "success", "failure"}
    assert info["rms"].shape == (64,) and info["success"].dtype == jnp.bool_ and info["failure"].dtype == jnp.bool_
    np.testing.assert_array_equal(states2.t, 1)
    assert ENV.action_space.shape == (10,) and ENV.action_space.high[0] == np.float32(1e-4)


def test_gymnasium_adapter_passes_the_env_checker(gym_env):
    env = gym_env
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    # the only expected warning: no spec outside gymnasium.make, so alternative render modes are skipped
    unexpected = [str(w.message) for w in caught if "not having a spec" not in str(w.message)]
    assert not unexpected, unexpected
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and isinstance(reward, float)
    assert isinstance(terminated, bool) and not truncated and set(info) == {"rms", "success", "failure"}
    assert make_gymnasium_orbit_steering(max_steps=7).params.max_steps == 7


def test_vector_entry_point():
    envs = make_vector_orbit_steering(4, max_steps=3)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (4, 10) and obs.dtype == np.float32
    for _ in range(3):
        obs, reward, terminated, truncated, info = envs.step(np.zeros((4, 10), np.float32))
        assert reward.shape == (4,) and info["rms"].shape == (4,) and not terminated.any()
    assert truncated.all() and info["final_obs"].shape == (4, 10)


def test_orbit_after_an_action_is_R_theta():
    state, _ = ENV.reset(jax.random.PRNGKey(1), PARAMS)
    action = jnp.asarray([3e-4, -3e-4, 5e-5, -5e-5, 0.0, 1e-4, -1e-4, 2e-5, 7e-5, -9e-5], jnp.float32)
    new_state, obs, _, _, _, info = STEP(jax.random.PRNGKey(2), state, action, PARAMS)
    expected_kicks = np.asarray(state.kicks) + np.clip(np.asarray(action), -1e-4, 1e-4)  # clipped to the step limit
    np.testing.assert_array_equal(new_state.kicks, expected_kicks.astype(np.float32))
    theta = np.asarray(new_state.kicks, np.float64)
    orbit = np.asarray(ENV.orbit(new_state), np.float64)
    np.testing.assert_allclose(orbit, R @ theta, rtol=1e-6, atol=1e-10)
    np.testing.assert_array_equal(obs, np.clip(ENV.orbit(new_state) * PARAMS.observation_scale, -1, 1))
    assert float(info["rms"]) == pytest.approx(np.sqrt(np.mean((R @ theta) ** 2)), rel=1e-5)


def test_reading_noise_perturbs_the_measurement_not_the_true_orbit():
    params = PARAMS._replace(reading_noise=1e-4)
    state = state_at(np.full(10, 3e-3))
    _, obs, reward, _, _, info = STEP(jax.random.PRNGKey(0), state, jnp.zeros(10), params)
    noise = np.asarray(obs) / 100 - 3e-3
    assert 1e-5 < np.std(noise) < 5e-4
    assert float(info["rms"]) == pytest.approx(3e-3, rel=1e-5)  # the true RMS
    assert float(reward) == pytest.approx(-100 * np.sqrt(np.mean((np.asarray(obs) / 100) ** 2)), rel=1e-5)


# ---------------------------------------------------------------------------------- baselines


@jax.jit
@jax.vmap
def _rollout(seed, gain):
    """One jitted SVD-controller episode per seed, the correction multiplied by `gain` (0: do nothing).

    Returns the initial and per-step true RMS (NaN after the episode ended) and the step flags."""
    params = PARAMS
    key = jax.random.PRNGKey(seed)
    pinv = gain * jnp.asarray(ENV.response_pinv, jnp.float32)
    state, obs = ENV.reset(key, params)
    rms0 = jnp.sqrt(jnp.mean(ENV.orbit(state) ** 2))

    def body(carry, k):
        state, obs, done = carry
        action = svd_correction(pinv, obs / params.observation_scale, params.step_limit)
        state2, obs2, _, term, trunc, info = ENV.step(k, state, action, params)
        def keep(old, new):  # freeze finished episodes
            return jnp.where(done, old, new)
        out = (jnp.where(done, jnp.nan, info["rms"]), info["success"] & ~done, term & ~done, trunc & ~done)
        return (jax.tree.map(keep, state, state2), keep(obs, obs2), done | term | trunc), out

    steps = jax.random.split(jax.random.fold_in(key, 1), params.max_steps)
    _, (rms, success, term, trunc) = jax.lax.scan(body, (state, obs, jnp.asarray(False)), steps)
    return rms0, rms, success, term, trunc


def rollout(gain, n_envs=100):
    """Rollouts from the seeded resets 0 .. n_envs - 1."""
    return jax.device_get(_rollout(jnp.arange(n_envs), jnp.full(n_envs, gain, jnp.float32)))


def test_svd_controller_corrects_the_orbit():
    rms0, rms, success, term, _ = rollout(1.0)
    solved = success.any(axis=1)
    assert solved.sum() >= 95, solved.sum()
    n_steps = np.argmax(success, axis=1)[solved] + 1
    assert np.median(n_steps) <= 10 and n_steps.max() <= PARAMS.max_steps  # measured: median 6, max 24
    final = rms[np.arange(100), np.argmax(success, axis=1)][solved]
    assert np.all(final < PARAMS.success_rms)
    np.testing.assert_array_equal(term.any(axis=1), solved)  # terminated exactly on success
    # Monotonically-ish: per-corrector clipping bends the path, so the RMS may rise a little now and then.
    path = np.concatenate([rms0[:, None], rms], axis=1)
    ratio = path[:, 1:] / path[:, :-1]
    ratio = ratio[np.isfinite(ratio)]
    assert np.all(ratio < 1.15) and np.mean(ratio > 1.0) < 0.05
    assert np.all(np.nanmin(rms, axis=1) < rms0)


def test_doing_nothing_never_succeeds_and_truncates_at_max_steps():
    rms0, rms, success, term, trunc = rollout(0.0)
    assert not success.any() and not term.any()
    assert np.all(trunc[:, -1]) and not trunc[:, :-1].any()  # truncated exactly at step 50
    np.testing.assert_allclose(rms, np.repeat(rms0[:, None], PARAMS.max_steps, axis=1), rtol=1e-6)


# ---------------------------------------------------------------------------------- episode end and reward


def test_reward_formula_on_hand_computed_orbits():
    step = STEP
    key, zero = jax.random.PRNGKey(0), jnp.zeros(10)
    # A flat 3 mm orbit: RMS 3 mm, reward -100 * 0.003 = -0.3, neither success nor failure.
    _, _, r, term, trunc, info = step(key, state_at(np.full(10, 3e-3)), zero, PARAMS)
    assert float(r) == pytest.approx(-0.3, rel=1e-5) and not bool(term) and not bool(trunc)
    assert not bool(info["success"]) and not bool(info["failure"])
    # A flat 0.5 mm orbit: success, reward -0.05 + 1 = 0.95, terminated.
    _, _, r, term, _, info = step(key, state_at(np.full(10, 5e-4)), zero, PARAMS)
    assert float(r) == pytest.approx(0.95, rel=1e-5) and bool(term) and bool(info["success"])
    # ... and not terminated when terminate_on_success is off (the bonus still paid).
    _, _, r, term, _, _ = step(key, state_at(np.full(10, 5e-4)), zero, PARAMS._replace(terminate_on_success=False))
    assert float(r) == pytest.approx(0.95, rel=1e-5) and not bool(term)
    # One BPM at 12 mm on step 11 of 50: RMS 12/sqrt(10) mm, failure penalty 1 * (1 + 50 - 11) = 40.
    readings = np.zeros(10)
    readings[4] = 12e-3
    _, obs, r, term, trunc, info = step(key, state_at(readings, t=10), zero, PARAMS)
    assert float(r) == pytest.approx(-100 * 12e-3 / np.sqrt(10) - 40.0, rel=1e-5)
    assert bool(term) and not bool(trunc) and bool(info["failure"]) and not bool(info["success"])
    assert float(obs[4]) == 1.0  # clipped
    # Failing on the last step still costs one step's penalty.
    _, _, r, term, trunc, _ = step(key, state_at(readings, t=49), zero, PARAMS)
    assert float(r) == pytest.approx(-100 * 12e-3 / np.sqrt(10) - 1.0, rel=1e-5) and bool(term) and bool(trunc)


def test_scripted_episodes_end_on_success_wall_and_time_limit(gym_env):
    env = gym_env
    # Success: the exact correction, one step-limited move per step, until terminated.
    obs, _ = env.reset(seed=5)
    for t in range(1, 51):
        action = np.clip(-np.asarray(env._state.kicks), -1e-4, 1e-4)
        obs, r, terminated, truncated, info = env.step(action)
        if terminated:
            break
    assert terminated and bool(info["success"]) and info["rms"] < 1e-3 and t < 50
    # Wall: keep pushing corrector 0 (0.44 mm per step at BPMs 0, 2, 4, ...) until a reading hits 10 mm.
    env.reset(seed=6)
    push = np.zeros(10, np.float32)
    push[0] = 1e-4
    for t in range(1, 51):
        obs, r, terminated, truncated, info = env.step(push)
        if terminated:
            break
    assert terminated and bool(info["failure"]) and not truncated and t < 50
    assert np.max(np.abs(obs)) == 1.0
    assert r == pytest.approx(-100 * float(info["rms"]) - (1 + 50 - t), rel=1e-5)
    # Time limit: small alternating nudges that neither fix nor break the orbit; truncated at step 12.
    env.params = env.params._replace(max_steps=12)  # params are traced: no recompilation
    env.reset(seed=7)
    for t in range(1, 13):
        obs, r, terminated, truncated, _ = env.step(push * (1 if t % 2 else -1))
        assert not terminated and truncated == (t == 12)


def test_rms_decrease_reward_telescopes_to_the_rms_reduction():
    """reward="rms_decrease": the rewards of an episode sum to reward_scale (rho_0 - rho_final), plus the
    success bonus on the last step, minus the failure penalty when the wall is hit."""
    env = OrbitSteering("rms_decrease")
    step, pinv = jax.jit(env.step), OrbitSteering.response_pinv
    for seed in range(3):
        state, obs = env.reset(jax.random.PRNGKey(seed), PARAMS)
        rho0, total, done = float(state.measured_rms), 0.0, False
        while not done:  # the SVD controller: success after a few steps
            action = svd_correction(pinv, obs / PARAMS.observation_scale, PARAMS.step_limit)
            state, obs, reward, terminated, truncated, info = step(jax.random.PRNGKey(0), state, action, PARAMS)
            total += float(reward)
            done = bool(terminated | truncated)
        assert bool(info["success"])
        expected = PARAMS.reward_scale * (rho0 - float(state.measured_rms)) + PARAMS.success_reward
        assert total == pytest.approx(expected, rel=1e-5)
    # crashing into the wall: this step's RMS change minus a constant penalty (no charge per remaining step)
    state = env.reset(jax.random.PRNGKey(0), PARAMS)[0]._replace(measured_rms=jnp.float32(9e-3))
    state = state._replace(kicks=jnp.asarray(kicks_for_orbit(np.full(10, 9.9e-3))))
    state, _, reward, terminated, _, info = step(jax.random.PRNGKey(0), state, jnp.full(10, 1e-4), PARAMS)
    assert bool(info["failure"]) and bool(terminated)
    rho = float(state.measured_rms)
    assert float(reward) == pytest.approx(PARAMS.reward_scale * (9e-3 - rho) - PARAMS.failure_penalty, rel=1e-5)
    with pytest.raises(ValueError, match="reward must be one of"):
        OrbitSteering("rms")
