"""gymnax environments under polyak's JAX environment protocol (when gymnax is installed).

gymnax's `step` auto-resets and reports one `done` that merges a terminal state with the time
limit, which makes a learner bootstrap wrongly at time limits. `FromGymnax` uses gymnax's
`reset_env` / `step_env` (no auto-reset; polyak's boundary module resets) and splits `done`:

    truncated  = time >= max_steps_in_episode
    terminated = done and not truncated
(a terminal state reached exactly on the last allowed step counts as truncated.)

Registered ids: ``gymnax/NAME`` for gymnax's continuous-action environments, e.g.
``gymnasium.make("gymnax/Pendulum-v1")``, and for CartPole-v1 (Discrete(2) actions, for DQN).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import jax.numpy as jnp
import numpy as np

from polyak.envs.protocol import GymnasiumAdapter, GymnasiumVectorAdapter

CONTINUOUS = ("Pendulum-v1", "MountainCarContinuous-v0")
DISCRETE = ("CartPole-v1",)


def _box(space) -> gym.spaces.Box:
    shape = tuple(space.shape)
    low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
    high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
    return gym.spaces.Box(low, high, shape, np.float32)


class FromGymnax:
    """A gymnax environment as a `polyak.envs.JaxEnv` (no auto-reset, terminated vs truncated split)."""

    def __init__(self, name: str, **param_overrides: Any):
        try:
            import gymnax
        except ImportError as err:
            raise ImportError(f"gymnax/{name} needs gymnax: pip install 'gymnax==0.0.9'") from err
        self.gymnax_env, params = gymnax.make(name)
        self.default_params = params.replace(**param_overrides) if param_overrides else params
        self.observation_space = _box(self.gymnax_env.observation_space(params))
        space = self.gymnax_env.action_space(params)
        self.action_space = gym.spaces.Discrete(int(space.n)) if hasattr(space, "n") else _box(space)

    def reset(self, key, params):
        obs, state = self.gymnax_env.reset_env(key, params)
        return state, obs.astype(jnp.float32)

    def step(self, key, state, action, params):
        obs, state, reward, done, _ = self.gymnax_env.step_env(key, state, action, params)
        truncated = state.time >= params.max_steps_in_episode
        terminated = jnp.logical_and(done, jnp.logical_not(truncated))
        return state, obs.astype(jnp.float32), jnp.asarray(reward, jnp.float32), terminated, truncated, {}


def make_gymnasium_gymnax(name: str, **params) -> GymnasiumAdapter:
    env = FromGymnax(name, **params)
    return GymnasiumAdapter(env, env.default_params)


def make_vector_gymnax(num_envs: int, name: str, **params) -> GymnasiumVectorAdapter:
    env = FromGymnax(name, **params)
    return GymnasiumVectorAdapter(env, num_envs, env.default_params)
