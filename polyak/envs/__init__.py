"""JAX environments: pure, jittable and vmappable, with a Gymnasium adapter.

The protocol (see `protocol.py`):
    reset(key, params) -> (state, obs)
    step(key, state, action, params) -> (state, obs, reward, terminated, truncated, info)
Registered Gymnasium ids (``gymnasium.make`` and ``gymnasium.make_vec``, whose vector envs step all
copies in one vmapped call): ``polyak/Pendulum-v1``, ``polyak/TransverseTuning-v0`` (CLARA S04-like
beam tuning), ``polyak/OrbitSteering-v0`` (AWAKE-like orbit correction); and, when gymnax is
installed, ``gymnax/Pendulum-v1``, ``gymnax/MountainCarContinuous-v0`` and ``gymnax/CartPole-v1``
(Discrete actions; see gymnax_adapter.py). Also ``polyak/NoisyCartPole-v1``, Gymnasium's CartPole with
Gaussian reward noise (a Gymnasium wrapper, not a JAX env; see noisy_reward.py).
"""

from polyak.envs.pendulum import Pendulum, PendulumParams, PendulumState
from polyak.envs.protocol import GymnasiumAdapter, GymnasiumVectorAdapter, JaxEnv

__all__ = ["JaxEnv", "GymnasiumAdapter", "GymnasiumVectorAdapter", "Pendulum", "PendulumParams", "PendulumState", "register_envs"]


def register_envs() -> None:
    """Register polyak's JAX environments with Gymnasium (idempotent)."""
    import gymnasium as gym

    entry_points = {
        "polyak/Pendulum-v1": ("polyak.envs.pendulum", "pendulum"),
        "polyak/TransverseTuning-v0": ("polyak.envs.transverse_tuning", "transverse_tuning"),
        "polyak/OrbitSteering-v0": ("polyak.envs.orbit_steering", "orbit_steering"),
    }
    for env_id, (module, name) in entry_points.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"{module}:make_gymnasium_{name}",
                         vector_entry_point=f"{module}:make_vector_{name}")
    from polyak.envs.gymnax_adapter import CONTINUOUS, DISCRETE

    for name in CONTINUOUS + DISCRETE:  # gymnax is imported only when one of them is made
        if f"gymnax/{name}" not in gym.registry:
            gym.register(id=f"gymnax/{name}", entry_point="polyak.envs.gymnax_adapter:make_gymnasium_gymnax",
                         vector_entry_point="polyak.envs.gymnax_adapter:make_vector_gymnax", kwargs={"name": name})
    if "polyak/NoisyCartPole-v1" not in gym.registry:  # the overestimation benchmark's task (DQN vs Double DQN)
        gym.register(id="polyak/NoisyCartPole-v1", entry_point="polyak.envs.noisy_reward:make_noisy_cartpole",
                     max_episode_steps=None, disable_env_checker=True)


register_envs()
