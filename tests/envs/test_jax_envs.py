"""JAX environments: Pendulum equals Gymnasium's step for step; the adapter passes Gymnasium's checker."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.utils.env_checker import check_env

import polyak  # noqa: F401  (registers polyak/Pendulum-v1)
from polyak.envs.pendulum import Pendulum, PendulumParams, PendulumState


def test_pendulum_equals_gymnasium_step_for_step():
    reference = gym.make("Pendulum-v1")
    env, params = Pendulum(), PendulumParams()
    step = jax.jit(env.step)
    actions = np.random.default_rng(0).uniform(-2.5, 2.5, size=(200, 1))  # some beyond the torque limit
    with jax.enable_x64(True):
        for seed in range(3):
            obs_ref, _ = reference.reset(seed=seed)
            theta, theta_dot = reference.unwrapped.state
            state = PendulumState(jnp.float64(theta), jnp.float64(theta_dot), jnp.int32(0))
            np.testing.assert_allclose(env.observe(state), obs_ref, rtol=1e-6)
            for t, action in enumerate(actions):
                obs_ref, r_ref, term_ref, trunc_ref, _ = reference.step(action.astype(np.float32))
                state, obs, r, term, trunc, _ = step(jax.random.PRNGKey(t), state, jnp.asarray(action, jnp.float32), params)
                np.testing.assert_allclose(np.asarray(state.theta), reference.unwrapped.state[0], rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(np.asarray(state.theta_dot), reference.unwrapped.state[1], rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(obs, obs_ref, rtol=1e-6, atol=1e-6)
                np.testing.assert_allclose(r, r_ref, rtol=1e-12)
                assert bool(term) == term_ref and bool(trunc) == trunc_ref, t
            assert trunc_ref and bool(trunc)  # both truncate after 200 steps


def test_reset_distribution_and_vmap_over_keys():
    env, params = Pendulum(), PendulumParams()
    keys = jax.random.split(jax.random.PRNGKey(0), 4096)
    states, obs = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    assert obs.shape == (4096, 3)
    assert float(jnp.abs(states.theta).max()) <= np.pi and float(jnp.abs(states.theta_dot).max()) <= 1.0
    assert float(states.theta.std()) > 1.5  # ~ U(-pi, pi): std pi/sqrt(3) = 1.81
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    states, obs, reward, term, trunc, _ = step(keys, states, jnp.zeros((4096, 1)), params)
    assert reward.shape == (4096,) and not bool(trunc.any())


def test_gymnasium_adapter_passes_the_env_checker_and_truncates():
    env = gym.make("polyak/Pendulum-v1")
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    steps, truncated = 0, False
    while not truncated:
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        assert not terminated
    assert steps == 200
    assert gym.make("polyak/Pendulum-v1", max_steps=50).unwrapped.params.max_steps == 50


def test_sac_trains_on_the_registered_jax_pendulum():
    model = polyak.SAC("MlpPolicy", "polyak/Pendulum-v1", seed=0, learning_starts=50, buffer_size=1000,
                       batch_size=32, policy_kwargs=dict(net_arch=[32]))
    model.learn(260)
    assert model.num_timesteps == 260 and int(model.learner.agent.n_updates) > 0
