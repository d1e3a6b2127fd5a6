"""gymnax environments under polyak's protocol: time limits become truncations, not terminations."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("gymnax")

import polyak  # noqa: E402,F401  (registers the ids)
from polyak.envs.gymnax_adapter import FromGymnax  # noqa: E402
from polyak.envs.pendulum import Pendulum, PendulumParams, PendulumState  # noqa: E402


def test_gymnax_pendulum_truncates_at_the_time_limit_and_matches_polyak_pendulum():
    env = FromGymnax("Pendulum-v1")
    ours, our_params = Pendulum(), PendulumParams()
    state, obs = env.reset(jax.random.PRNGKey(0), env.default_params)
    mine = PendulumState(state.theta, state.theta_dot, jnp.int32(0))
    step, my_step = jax.jit(env.step), jax.jit(ours.step)
    actions = np.random.default_rng(0).uniform(-2, 2, (200, 1)).astype(np.float32)
    for t, a in enumerate(actions):
        state, obs, reward, terminated, truncated, _ = step(jax.random.PRNGKey(t), state, a, env.default_params)
        mine, my_obs, my_reward, _, my_truncated, _ = my_step(jax.random.PRNGKey(t), mine, a, our_params)
        np.testing.assert_allclose(obs, my_obs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(reward, my_reward, rtol=1e-5, atol=1e-5)
        assert not bool(terminated) and bool(truncated) == bool(my_truncated) == (t == 199)


def test_gymnax_ids_work_as_gymnasium_and_vector_envs():
    env = gym.make("gymnax/Pendulum-v1")
    env.reset(seed=0)
    steps = 0
    while True:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            break
    assert steps == 200 and truncated and not terminated
    vec = gym.make_vec("gymnax/Pendulum-v1", num_envs=3, vectorization_mode="vector_entry_point")
    assert vec.reset(seed=0)[0].shape == (3, 3)
