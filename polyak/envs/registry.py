"""The environment registry: polyak's ids registered with Gymnasium (`gymnasium.make("polyak/Pendulum-v1")`)."""

from __future__ import annotations

import gymnasium as gym

from polyak.envs.gymnax_adapter import CONTINUOUS, DISCRETE


def register_envs() -> None:
    """Register polyak's JAX environments with Gymnasium (idempotent)."""
    entry_points = {
        "polyak/Pendulum-v1": ("polyak.envs.pendulum", "pendulum"),
        "polyak/TransverseTuning-v0": ("polyak.envs.transverse_tuning", "transverse_tuning"),
        "polyak/OrbitSteering-v0": ("polyak.envs.orbit_steering", "orbit_steering"),
        "polyak/Chain-v0": ("polyak.envs.chain", "chain"),
        "polyak/Storage-v0": ("polyak.envs.storage", "storage"),
    }
    for env_id, (module, name) in entry_points.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"{module}:make_gymnasium_{name}",
                         vector_entry_point=f"{module}:make_vector_{name}")
    for name in CONTINUOUS + DISCRETE:  # gymnax is imported only when one of them is made
        if f"gymnax/{name}" not in gym.registry:
            gym.register(id=f"gymnax/{name}", entry_point="polyak.envs.gymnax_adapter:make_gymnasium_gymnax",
                         vector_entry_point="polyak.envs.gymnax_adapter:make_vector_gymnax", kwargs={"name": name})
    if "polyak/CheetahTransverseTuning-v0" not in gym.registry:  # Cheetah-tracked (torch): a plain Gymnasium env,
        # in the challenge's wrappers; the string entry point keeps torch and the accel layer out of this import
        gym.register(id="polyak/CheetahTransverseTuning-v0",
                     entry_point="polyak.accel.cheetah_env:make_cheetah_transverse_tuning")
    if "polyak/NoisyCartPole-v1" not in gym.registry:  # the overestimation benchmark's task (DQN vs Double DQN)
        gym.register(id="polyak/NoisyCartPole-v1", entry_point="polyak.envs.noisy_reward:make_noisy_cartpole",
                     max_episode_steps=None, disable_env_checker=True)
