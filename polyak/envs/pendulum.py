"""Pendulum-v1 in JAX: the same dynamics, reward and 200-step limit as Gymnasium's Pendulum-v1.

    u      = clip(a, -max_torque, max_torque)
    cost   = normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2,   reward = -cost
    theta_dot' = clip(theta_dot + (3 g / (2 l) sin(theta) + 3 / (m l^2) u) dt, -max_speed, max_speed)
    theta'     = theta + theta_dot' dt
    obs    = (cos theta, sin theta, theta_dot);  reset: theta ~ U(-pi, pi), theta_dot ~ U(-1, 1)
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak.envs.protocol import GymnasiumAdapter, GymnasiumVectorAdapter


class PendulumParams(NamedTuple):
    max_speed: float = 8.0
    max_torque: float = 2.0
    dt: float = 0.05
    g: float = 10.0
    m: float = 1.0
    l: float = 1.0  # noqa: E741 (the pendulum's length, as in the physics)
    max_steps: int = 200


class PendulumState(NamedTuple):
    theta: jax.Array
    theta_dot: jax.Array
    t: jax.Array  # steps taken in this episode


def angle_normalize(x):
    return ((x + jnp.pi) % (2 * jnp.pi)) - jnp.pi


class Pendulum:
    """The JAX Pendulum-v1 (see the module docstring); follows `polyak.envs.JaxEnv`."""

    default_params = PendulumParams()
    observation_space = gym.spaces.Box(np.array([-1.0, -1.0, -8.0], np.float32),
                                       np.array([1.0, 1.0, 8.0], np.float32), dtype=np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    @staticmethod
    def observe(state: PendulumState) -> jax.Array:
        return jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta), state.theta_dot])

    def reset(self, key: jax.Array, params: PendulumParams) -> tuple[PendulumState, jax.Array]:
        high = jnp.array([jnp.pi, 1.0])
        theta, theta_dot = jax.random.uniform(key, (2,), minval=-high, maxval=high)
        state = PendulumState(theta, theta_dot, jnp.zeros((), jnp.int32))
        return state, self.observe(state)

    def step(self, key: jax.Array, state: PendulumState, action: jax.Array, params: PendulumParams):
        p = params
        u = jnp.clip(action, -p.max_torque, p.max_torque)[0]
        cost = angle_normalize(state.theta) ** 2 + 0.1 * state.theta_dot**2 + 0.001 * u**2
        theta_dot = state.theta_dot + (3 * p.g / (2 * p.l) * jnp.sin(state.theta) + 3.0 / (p.m * p.l**2) * u) * p.dt
        theta_dot = jnp.clip(theta_dot, -p.max_speed, p.max_speed)
        theta = state.theta + theta_dot * p.dt
        t = state.t + 1
        new_state = PendulumState(theta, theta_dot, t)
        return new_state, self.observe(new_state), -cost, jnp.asarray(False), t >= p.max_steps, {}


def make_gymnasium_pendulum(**params) -> GymnasiumAdapter:
    """Entry point of ``gymnasium.make("polyak/Pendulum-v1")``; keyword arguments override PendulumParams."""
    return GymnasiumAdapter(Pendulum(), PendulumParams(**params))


def make_vector_pendulum(num_envs: int, **params) -> GymnasiumVectorAdapter:
    """Entry point of ``gymnasium.make_vec("polyak/Pendulum-v1", num_envs, vectorization_mode="vector_entry_point")``."""
    return GymnasiumVectorAdapter(Pendulum(), num_envs, PendulumParams(**params))
