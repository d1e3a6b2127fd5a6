"""Chain-v0: a deterministic corridor whose goal needs a long, exact action sequence (sparse reward).

    positions 0 .. n - 1, start at 0, goal at n - 1;  at position p the right action is key(p) = p mod 2
    action == key(p): p <- p + 1      otherwise: p <- max(p - 1, 0)
    reward 1 on reaching the goal (terminated), 0 otherwise;  truncated after max_steps steps
    obs = one-hot of p (n floats)

The shortest path takes n - 1 steps, each with one right action of two; the right action alternates,
so no constant policy reaches the goal, and a uniformly random policy (a reflected random walk)
rarely does within the limit: a task for multi-step credit assignment and for replaying the few
successful episodes. Deterministic: `reset` and `step` ignore their key.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak.envs.protocol import GymnasiumAdapter, GymnasiumVectorAdapter

N_POSITIONS = 10  # static: the observation's size


class ChainParams(NamedTuple):
    max_steps: int = 30  # time limit (truncation)


class ChainState(NamedTuple):
    position: jax.Array
    t: jax.Array  # steps taken in this episode


class Chain:
    """The JAX Chain-v0 (see the module docstring); follows `polyak.envs.JaxEnv`."""

    default_params = ChainParams()

    def __init__(self, n: int = N_POSITIONS):
        if n < 2:
            raise ValueError(f"Chain needs n >= 2 positions, got {n}")
        self.n = int(n)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.n,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def observe(self, state: ChainState) -> jax.Array:
        return jax.nn.one_hot(state.position, self.n, dtype=jnp.float32)

    def reset(self, key: jax.Array, params: ChainParams) -> tuple[ChainState, jax.Array]:
        state = ChainState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        return state, self.observe(state)

    def step(self, key: jax.Array, state: ChainState, action: jax.Array, params: ChainParams):
        right = jnp.asarray(action, jnp.int32).reshape(()) == state.position % 2
        position = jnp.where(right, state.position + 1, jnp.maximum(state.position - 1, 0))
        t = state.t + 1
        terminated = position == self.n - 1
        new_state = ChainState(position, t)
        reward = terminated.astype(jnp.float32)
        return new_state, self.observe(new_state), reward, terminated, (t >= params.max_steps) & ~terminated, {}


def make_gymnasium_chain(n: int = N_POSITIONS, **params) -> GymnasiumAdapter:
    """Entry point of ``gymnasium.make("polyak/Chain-v0")``; keyword arguments override ChainParams."""
    return GymnasiumAdapter(Chain(n), ChainParams(**params))


def make_vector_chain(num_envs: int, n: int = N_POSITIONS, **params) -> GymnasiumVectorAdapter:
    """Entry point of ``gymnasium.make_vec("polyak/Chain-v0", num_envs, vectorization_mode="vector_entry_point")``."""
    return GymnasiumVectorAdapter(Chain(n), num_envs, ChainParams(**params))
