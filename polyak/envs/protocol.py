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

from polyak.common.boundaries import jax_envs_reset, jax_envs_step


class JaxEnv(Protocol):
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box
    default_params: Any

    def reset(self, key: jax.Array, params: Any) -> tuple[Any, jax.Array]: ...

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any
             ) -> tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array, dict]: ...


class GymnasiumAdapter(gym.Env):
    """Exposes a `JaxEnv` as a `gymnasium.Env` (one jitted call per step, NumPy in and out)."""

    metadata = {"render_modes": []}

    def __init__(self, env: JaxEnv, params: Any = None):
        self.env = env
        self.params = env.default_params if params is None else params
        self.observation_space = env.observation_space
        self.action_space = env.action_space

        def reset(key, params):
            key, sub = jax.random.split(key)
            return (key, *env.reset(sub, params))

        def step(key, state, action, params):
            key, sub = jax.random.split(key)
            return (key, *env.step(sub, state, action, params))

        self._reset = jax.jit(reset)
        self._step = jax.jit(step)
        self._key = jax.random.PRNGKey(0)
        self._state = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        elif self._state is None:  # unseeded first reset: draw a key from Gymnasium's own RNG
            self._key = jax.random.PRNGKey(int(self.np_random.integers(2**31)))
        self._key, self._state, obs = self._reset(self._key, self.params)
        return np.asarray(obs, np.float32), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        self._key, self._state, *out = self._step(self._key, self._state, np.asarray(action, np.float32), self.params)
        obs, reward, terminated, truncated, info = jax.device_get(out)
        return np.asarray(obs, np.float32), float(reward), bool(terminated), bool(truncated), info


class GymnasiumVectorAdapter(gym.vector.VectorEnv):
    """`num_envs` copies of a `JaxEnv` as a Gymnasium vector env: one vmapped, jitted call per step.

    Auto-reset is SAME_STEP: an environment that ends is reset in the same call; the returned
    observation is the reset one and the true final observation is in ``info["final_obs"]``
    (mask ``info["_final_obs"]``), as Gymnasium's own vector envs do in that mode. The env's own
    info entries (from the step that was taken, before any reset) come as arrays of shape (num_envs, ...).
    """

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, env: JaxEnv, num_envs: int, params: Any = None):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.env = env
        self.num_envs = int(num_envs)
        self.params = env.default_params if params is None else params
        self.single_observation_space = env.observation_space
        self.single_action_space = env.action_space
        self.observation_space = gym.vector.utils.batch_space(env.observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(env.action_space, self.num_envs)
        n = self.num_envs

        def reset(key, params):
            return jax_envs_reset(env, params, key, n)

        def step(key, states, actions, params):
            key, states, batch, info = jax_envs_step(env, params, key, states, actions)
            return key, states, batch.obs, batch.reward, batch.terminated, batch.truncated, batch.next_obs, info

        self._reset = jax.jit(reset)
        self._step = jax.jit(step)
        self._key = jax.random.PRNGKey(0)
        self._states = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._key = jax.random.PRNGKey(int(np.ravel(seed)[0]))
        elif self._states is None:
            self._key = jax.random.PRNGKey(int(np.random.default_rng().integers(2**31)))
        self._key, self._states, obs = self._reset(self._key, self.params)
        return np.asarray(obs, np.float32), {}

    def step(self, actions):
        if self._states is None:
            raise RuntimeError("call reset() before step()")
        self._key, self._states, *out = self._step(
            self._key, self._states, np.asarray(actions, np.float32), self.params)
        obs, reward, terminated, truncated, final_obs, env_info = jax.device_get(out)
        done = np.logical_or(terminated, truncated)
        info = {k: np.asarray(v) for k, v in env_info.items()}
        info.update({f"_{k}": np.ones(self.num_envs, bool) for k in env_info})
        if done.any():
            info["final_obs"] = np.asarray(final_obs, np.float32)
            info["_final_obs"] = done
        return (np.asarray(obs, np.float32), np.asarray(reward, np.float64), np.asarray(terminated, bool),
                np.asarray(truncated, bool), info)
