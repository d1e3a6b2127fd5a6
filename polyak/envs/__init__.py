"""JAX environments: pure, jittable and vmappable, with a Gymnasium adapter.

The protocol (see `protocol.py`):
    reset(key, params) -> (state, obs)
    step(key, state, action, params) -> (state, obs, reward, terminated, truncated, info)
Registered Gymnasium ids (``gymnasium.make`` and ``gymnasium.make_vec``, whose vector envs step all
copies in one vmapped call): ``polyak/Pendulum-v1``, ``polyak/TransverseTuning-v0`` (CLARA S04-like
beam tuning), ``polyak/OrbitSteering-v0`` (AWAKE-like orbit correction), ``polyak/Storage-v0`` (energy
storage arbitrage, an Euler-class problem: see storage.py); and, when gymnax is
installed, ``gymnax/Pendulum-v1``, ``gymnax/MountainCarContinuous-v0`` and ``gymnax/CartPole-v1``
(Discrete actions; see gymnax_adapter.py). Also ``polyak/NoisyCartPole-v1``, Gymnasium's CartPole with
Gaussian reward noise (a Gymnasium wrapper, not a JAX env; see noisy_reward.py).
"""

from polyak.envs.pendulum import Pendulum, PendulumParams, PendulumState
from polyak.envs.protocol import GymnasiumAdapter, GymnasiumVectorAdapter, JaxEnv
from polyak.envs.registry import register_envs

__all__ = ["JaxEnv", "GymnasiumAdapter", "GymnasiumVectorAdapter", "Pendulum", "PendulumParams", "PendulumState", "register_envs"]


register_envs()
