"""polyak/Chain-v0: the key sequence reaches the goal in n - 1 steps, a wrong action steps back, the time limit
truncates, and the Gymnasium adapter passes the env checker."""

import gymnasium as gym
import jax
import numpy as np
from gymnasium.utils.env_checker import check_env

import polyak  # noqa: F401  (registers polyak/Chain-v0)
from polyak.envs.chain import Chain, ChainParams


def test_key_sequence_wrong_actions_and_time_limit():
    env, params = Chain(), ChainParams()
    step = jax.jit(env.step)
    state, obs = env.reset(jax.random.PRNGKey(0), params)
    np.testing.assert_array_equal(obs, np.eye(10)[0])
    for p in range(9):  # the right action at position p is p mod 2
        state, obs, reward, term, trunc, _ = step(jax.random.PRNGKey(0), state, np.int32(p % 2), params)
        assert int(state.position) == p + 1 and bool(term) == (p == 8) and float(reward) == (p == 8) and not trunc
    state, _ = env.reset(jax.random.PRNGKey(0), params)
    state, *_ = step(jax.random.PRNGKey(0), state, np.int32(0), params)  # 0 -> 1
    state, *_ = step(jax.random.PRNGKey(0), state, np.int32(0), params)  # wrong at 1: back to 0
    state, *_ = step(jax.random.PRNGKey(0), state, np.int32(1), params)  # wrong at 0: stays at 0
    assert int(state.position) == 0
    for t in range(3, 30):
        state, _, reward, term, trunc, _ = step(jax.random.PRNGKey(0), state, np.int32(1), params)
        assert bool(trunc) == (t == 29) and not term and float(reward) == 0.0


def test_gymnasium_adapter_passes_the_env_checker():
    env = gym.make("polyak/Chain-v0")
    check_env(env.unwrapped)
    venv = gym.make_vec("polyak/Chain-v0", num_envs=3, vectorization_mode="vector_entry_point")
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, 10) and isinstance(venv.single_action_space, gym.spaces.Discrete)
