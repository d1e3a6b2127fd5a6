"""Environment handling: building envs from ids, checking spaces, rescaling actions."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

# Algorithms polyak offers for each kind of action space (kept in sync with polyak.ALGORITHMS).
ALGORITHMS_BY_ACTION_SPACE = {
    "Box": ("SAC", "TD3", "DDPG"),
    "Discrete": (),
    "MultiDiscrete": (),
    "MultiBinary": (),
}


class SpaceError(TypeError):
    """The environment's observation or action space does not fit the algorithm."""


def make_env(env: str | gym.Env | gym.vector.VectorEnv, **make_kwargs: Any):
    """Accept an id string, a `gymnasium.Env` or a Gymnasium vector env."""
    if isinstance(env, str):
        return gym.make(env, **make_kwargs)
    if isinstance(env, (gym.Env, gym.vector.VectorEnv)):
        return env
    raise TypeError(f"env must be an environment id, a gymnasium.Env or a gymnasium vector env, got {type(env).__name__}")


def check_spaces(observation_space: gym.Space, action_space: gym.Space, algo_name: str) -> None:
    if not isinstance(action_space, gym.spaces.Box):
        kind = type(action_space).__name__
        fits = ALGORITHMS_BY_ACTION_SPACE.get(kind, ())
        hint = (f"polyak algorithms for {kind} actions: {', '.join(fits)}" if fits else
                f"{kind} actions need a value-based or policy-gradient method (DQN, Double DQN, PPO, A2C), "
                "which this version of polyak does not ship yet")
        raise SpaceError(f"{algo_name} needs a continuous Box action space, got {action_space}. {hint}.")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise SpaceError(f"{algo_name} needs finite action bounds to rescale [-1, 1] to them, got {action_space}")
    if np.any(action_space.high <= action_space.low):
        raise SpaceError(f"action space has high <= low in some dimension: {action_space}")
    if len(action_space.shape) != 1:
        raise SpaceError(f"{algo_name} needs a 1-D action vector, got shape {action_space.shape}")
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise SpaceError(
            f"{algo_name} with an MLP policy needs a flat 1-D Box observation space, got {observation_space}; "
            "flatten it first (gymnasium.wrappers.FlattenObservation)")


class ActionScaler:
    """Maps agent actions in [-1, 1] to the environment's [low, high] and back."""

    def __init__(self, low: np.ndarray, high: np.ndarray):
        self.low = np.asarray(low, np.float64)
        self.high = np.asarray(high, np.float64)

    def to_env(self, action: np.ndarray) -> np.ndarray:
        action = np.clip(action, -1.0, 1.0)
        return (self.low + 0.5 * (action + 1.0) * (self.high - self.low)).astype(np.float32)

    def to_agent(self, env_action: np.ndarray) -> np.ndarray:
        return (2.0 * (np.asarray(env_action) - self.low) / (self.high - self.low) - 1.0).astype(np.float32)
