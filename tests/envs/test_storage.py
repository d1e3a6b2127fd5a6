"""The energy-storage env: dynamics, reward and feasibility clip against hand computation; the price chain's
frequencies against its transition matrix; the Gymnasium registration."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import polyak  # noqa: F401  (registers polyak/Storage-v0)
from polyak.envs.storage import Storage, StorageParams, StorageState


STEP = jax.jit(Storage().step)


def _step(soc, price_index, action, params=StorageParams()):
    state = StorageState(jnp.float32(soc), jnp.int32(price_index), jnp.int32(0))
    return STEP(jax.random.PRNGKey(0), state, jnp.array([action], jnp.float32), params)


def test_step_dynamics_and_reward_by_hand():
    state, obs, reward, terminated, truncated, _ = _step(0.3, 2, 0.2)
    # s1' = 0.99 * 0.3 + 0.9 * 0.2 + 0.005;  r = -2.5 * 0.2 - (2 / 2) 0.2^2 - 0.3 ((0.3 - 0.5) / 0.5)^4
    np.testing.assert_allclose(float(state.soc), 0.297 + 0.18 + 0.005, rtol=1e-6)
    np.testing.assert_allclose(float(reward), -0.5 - 0.04 - 0.3 * 0.4**4, rtol=1e-6)
    assert int(state.t) == 1 and not bool(terminated) and not bool(truncated)
    np.testing.assert_allclose(obs, [float(state.soc), StorageParams().prices[int(state.price_index)]], rtol=1e-6)


def test_the_battery_cannot_charge_beyond_full_or_sell_what_it_does_not_hold():
    # charging 1.0 at s1 = 0.95: only a_eff = (1 - 0.99 * 0.95 - 0.005) / 0.9 fits, and only it is paid for
    state, _, reward, _, _, _ = _step(0.95, 0, 1.0)
    a_eff = (1 - 0.9405 - 0.005) / 0.9
    np.testing.assert_allclose(float(state.soc), 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(reward), -0.2 * a_eff - a_eff**2 - 0.3 * 0.9**4, rtol=1e-5)
    # selling 1.0 at s1 = 0.05 at the peak price: only what is stored earns money
    state, _, reward, _, _, _ = _step(0.05, 2, -1.0)
    a_eff = (0 - 0.0495 - 0.005) / 0.9
    np.testing.assert_allclose(float(state.soc), 0.0, atol=1e-7)
    np.testing.assert_allclose(float(reward), -2.5 * a_eff - a_eff**2 - 0.3 * 0.9**4, rtol=1e-5)
    # quadratic degradation (the linear-quadratic variant)
    _, _, reward, _, _, _ = _step(0.3, 1, 0.0, StorageParams(degradation_power=2.0))
    np.testing.assert_allclose(float(reward), -0.3 * 0.4**2, rtol=1e-6)


def test_price_chain_follows_the_transition_matrix():
    env, params = Storage(), StorageParams()
    n = 20_000
    P = np.asarray(params.transition)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, None, None)))
    for k in range(3):
        states = StorageState(jnp.full(n, 0.5), jnp.full(n, k, jnp.int32), jnp.zeros(n, jnp.int32))
        new, *_ = step(jax.random.split(jax.random.PRNGKey(k), n), states, jnp.zeros(1), params)
        freq = np.bincount(np.asarray(new.price_index), minlength=3) / n
        np.testing.assert_allclose(freq, P[k], atol=0.012)  # 4.5 binomial std at p = 0.15
    _, obs = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(jax.random.PRNGKey(9), 4000), params)
    assert 0.0 <= float(obs[:, 0].min()) and float(obs[:, 0].max()) <= 1.0 and float(obs[:, 0].std()) > 0.25
    np.testing.assert_allclose(np.unique(np.asarray(obs[:, 1])), [0.2, 1.0, 2.5], rtol=1e-6)


def test_registered_env_passes_the_checker_truncates_and_validates_params():
    env = gym.make("polyak/Storage-v0")
    check_env(env.unwrapped)
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and not terminated
        steps += 1
    assert steps == 200
    one = gym.make("polyak/Storage-v0", prices=[1.0], transition=[[1.0]], max_steps=10).unwrapped
    assert one.params.prices == (1.0,) and one.observation_space.shape == (2,)
    model = one.env.euler_model(one.params)
    assert float(model.alpha) == pytest.approx(0.99) and model.transition.shape == (1, 1)
    with pytest.raises(ValueError, match="probability distribution"):
        gym.make("polyak/Storage-v0", transition=[[0.5, 0.5, 0.5], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="3 x 3"):
        gym.make("polyak/Storage-v0", transition=[[1.0]])
    with pytest.raises(ValueError, match="unknown Storage parameter"):
        gym.make("polyak/Storage-v0", price=[1.0])
