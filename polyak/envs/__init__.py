"""JAX environments: pure, jittable and vmappable, with a Gymnasium adapter.

The protocol (see `protocol.py`):
    reset(key, params) -> (state, obs)
    step(key, state, action, params) -> (state, obs, reward, terminated, truncated, info)
Registered Gymnasium ids: ``polyak/Pendulum-v1``.
"""

from polyak.envs.protocol import GymnasiumAdapter, JaxEnv
from polyak.envs.pendulum import Pendulum, PendulumParams, PendulumState

__all__ = ["JaxEnv", "GymnasiumAdapter", "Pendulum", "PendulumParams", "PendulumState", "register_envs"]


def register_envs() -> None:
    """Register polyak's JAX environments with Gymnasium (idempotent)."""
    import gymnasium as gym

    if "polyak/Pendulum-v1" not in gym.registry:
        gym.register(id="polyak/Pendulum-v1", entry_point="polyak.envs.pendulum:make_gymnasium_pendulum")


register_envs()
