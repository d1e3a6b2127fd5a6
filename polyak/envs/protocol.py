"""The JAX environment protocol and its Gymnasium adapter.

A `JaxEnv` is a stateless object with pure functions; all state lives in the `state` pytree and
all configuration in the `params` pytree, so `reset`/`step` can be jitted, scanned and vmapped:

    reset(key, params) -> (state, obs)
    step(key, state, action, params) -> (state, obs, reward, terminated, truncated, info)

Actions are in the environment's own units (its `action_space`). Time limits are part of the
environment (a step counter in `state`, the limit in `params`), so `truncated` comes from `step`
itself and a fully jitted loop sees exactly what a Gymnasium loop sees. No auto-reset happens
inside `step`: the caller (host loop or jitted loop) decides, using the one boundary module.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import jax
import numpy as np


class JaxEnv(Protocol):
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box
    default_params: Any

    def reset(self, key: jax.Array, params: Any) -> tuple[Any, jax.Array]: ...

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any
             ) -> tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array, dict]: ...


class GymnasiumAdapter(gym.Env):
    """Exposes a `JaxEnv` as a `gymnasium.Env` (jitted reset/step, NumPy in and out)."""

    metadata = {"render_modes": []}

    def __init__(self, env: JaxEnv, params: Any = None):
        self.env = env
        self.params = env.default_params if params is None else params
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self._reset = jax.jit(env.reset)
        self._step = jax.jit(env.step)
        self._key = jax.random.PRNGKey(0)
        self._state = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        elif self._state is None:  # unseeded first reset: draw a key from Gymnasium's own RNG
            self._key = jax.random.PRNGKey(int(self.np_random.integers(2**31)))
        self._key, key = jax.random.split(self._key)
        self._state, obs = self._reset(key, self.params)
        return np.asarray(obs, np.float32), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        self._key, key = jax.random.split(self._key)
        self._state, obs, reward, terminated, truncated, info = self._step(
            key, self._state, np.asarray(action, np.float32), self.params)
        obs, reward, terminated, truncated, info = jax.device_get((obs, reward, terminated, truncated, info))
        return np.asarray(obs, np.float32), float(reward), bool(terminated), bool(truncated), info
