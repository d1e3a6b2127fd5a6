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
import jax.numpy as jnp
import numpy as np

from polyak.envs.gym_compat import FINAL_OBS, FINAL_OBS_MASK, SAME_STEP_METADATA, init_vector_env
from polyak.envs.stepping import jax_envs_reset, jax_envs_step


class JaxEnv(Protocol):
    observation_space: gym.spaces.Box
    action_space: gym.spaces.Box
    default_params: Any

    def reset(self, key: jax.Array, params: Any) -> tuple[Any, jax.Array]: ...

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any
             ) -> tuple[Any, jax.Array, jax.Array, jax.Array, jax.Array, dict]: ...


def action_dtype(space: gym.Space) -> type:
    """The dtype actions are passed to a JaxEnv's `step` in: int32 indices for Discrete, else float32."""
    return np.int32 if isinstance(space, gym.spaces.Discrete) else np.float32


class GymnasiumAdapter(gym.Env):
    """Exposes a `JaxEnv` as a `gymnasium.Env` (one jitted call per step, NumPy in and out)."""

    metadata = {"render_modes": []}

    def __init__(self, env: JaxEnv, params: Any = None):
        self.env = env
        self.params = env.default_params if params is None else params
        self.observation_space = env.observation_space
        self.action_space = env.action_space

        self._key = jax.random.PRNGKey(0)
        self._state = None
        self._compile()

    def _compile(self) -> None:
        """Jit reset/step with `self.params` compiled in as constants (fewer arguments per call);
        assigning a new `params` recompiles on the next call."""
        env, params = self.env, self.params
        self._compiled_params = params

        def reset(key):
            key, sub = jax.random.split(key)
            return (key, *env.reset(sub, params))

        def step(key, state, action):
            key, sub = jax.random.split(key)
            state, *out = env.step(sub, state, action, params)
            return key, state, jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in jax.tree.leaves(out)])

        # All outputs of a step travel in one float32 array (one device->host copy instead of one
        # per leaf, ~25 us each); `_unpack` restores shapes, dtypes and the info dict on the host.
        key0 = jax.random.PRNGKey(0)
        state0 = jax.eval_shape(lambda k: env.reset(k, params)[0], key0)
        action0 = jax.ShapeDtypeStruct(env.action_space.shape, action_dtype(env.action_space))
        shapes = jax.eval_shape(lambda k, s, a: env.step(k, s, a, params)[1:], key0, state0, action0)
        leaves, self._out_tree = jax.tree.flatten(shapes)
        self._out_leaves = [(leaf.shape, np.dtype(leaf.dtype), int(np.prod(leaf.shape))) for leaf in leaves]
        self._reset = jax.jit(reset)
        self._step = jax.jit(step)

    def _unpack(self, packed: np.ndarray):
        leaves, start = [], 0
        for shape, dtype, size in self._out_leaves:
            leaves.append(packed[start:start + size].reshape(shape).astype(dtype))
            start += size
        return jax.tree.unflatten(self._out_tree, leaves)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        elif self._state is None:  # unseeded first reset: draw a key from Gymnasium's own RNG
            self._key = jax.random.PRNGKey(int(self.np_random.integers(2**31)))
        if self.params is not self._compiled_params:
            self._compile()
        self._key, self._state, obs = self._reset(self._key)
        return np.asarray(obs, np.float32), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if self.params is not self._compiled_params:
            self._compile()
        self._key, self._state, packed = self._step(self._key, self._state,
                                                    np.asarray(action, action_dtype(self.action_space)))
        obs, reward, terminated, truncated, info = self._unpack(np.asarray(packed))
        return np.asarray(obs, np.float32), float(reward), bool(terminated), bool(truncated), info


class GymnasiumVectorAdapter(gym.vector.VectorEnv):
    """`num_envs` copies of a `JaxEnv` as a Gymnasium vector env: one vmapped, jitted call per step.

    Auto-reset is SAME_STEP: an environment that ends is reset in the same call; the returned
    observation is the reset one and the true final observation is in ``info["final_obs"]``
    (mask ``info["_final_obs"]``), as Gymnasium's own vector envs do in that mode (under gymnasium
    0.29: ``info["final_observation"]`` and ``info["_final_observation"]``, 0.29's names). The env's own
    info entries (from the step that was taken, before any reset) come as arrays of shape (num_envs, ...).
    """

    metadata = dict(SAME_STEP_METADATA)

    def __init__(self, env: JaxEnv, num_envs: int, params: Any = None):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.env = env
        init_vector_env(self, int(num_envs), env.observation_space, env.action_space)
        self.params = env.default_params if params is None else params
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
            self._key, self._states, np.asarray(actions, action_dtype(self.single_action_space)), self.params)
        obs, reward, terminated, truncated, final_obs, env_info = jax.device_get(out)
        done = np.logical_or(terminated, truncated)
        info = {k: np.asarray(v) for k, v in env_info.items()}
        info.update({f"_{k}": np.ones(self.num_envs, bool) for k in env_info})
        if done.any():
            info[FINAL_OBS] = np.asarray(final_obs, np.float32)
            info[FINAL_OBS_MASK] = done
        return (np.asarray(obs, np.float32), np.asarray(reward, np.float64), np.asarray(terminated, bool),
                np.asarray(truncated, bool), info)
