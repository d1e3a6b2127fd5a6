"""Environment handling: building envs from ids, checking spaces, rescaling actions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np


class SpaceError(TypeError):
    """The environment's observation or action space does not fit the algorithm."""


def make_env(env: str | gym.Env | gym.vector.VectorEnv, **make_kwargs: Any):
    """Accept an id string, a `gymnasium.Env` or a Gymnasium vector env."""
    if isinstance(env, str):
        return gym.make(env, **make_kwargs)
    if isinstance(env, (gym.Env, gym.vector.VectorEnv)):
        return env
    raise TypeError(f"env must be an environment id, a gymnasium.Env or a gymnasium vector env, got {type(env).__name__}")


def check_spaces(observation_space: gym.Space, action_space: gym.Space, algo_name: str,
                 action_space_kind: str = "Box", alternatives: Mapping[str, Sequence[str]] | None = None) -> None:
    """Raise SpaceError unless the spaces fit an algorithm for `action_space_kind` ("Box" or "Discrete")
    actions and a flat Box observation; `alternatives` (action kind -> algorithm names, the registry's
    `by_action_kind()`) lets the message name the algorithms that do fit."""
    kind = ("Box" if isinstance(action_space, gym.spaces.Box) else
            "Discrete" if isinstance(action_space, gym.spaces.Discrete) else type(action_space).__name__)
    if kind != action_space_kind:
        alternatives = alternatives or {}
        fits = alternatives.get(kind, ())
        hint = (f"polyak algorithms for {kind} actions: {', '.join(fits)}" if fits else
                f"polyak has no algorithm for {kind} actions yet; Discrete actions (one index) fit "
                f"{', '.join(alternatives.get('Discrete', ()))}")
        wanted = "a continuous Box" if action_space_kind == "Box" else f"a {action_space_kind}"
        raise SpaceError(f"{algo_name} needs {wanted} action space, got {action_space}. {hint}.")
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise SpaceError(
            f"{algo_name} with an MLP policy needs a flat 1-D Box observation space, got {observation_space}; "
            "flatten it first (gymnasium.wrappers.FlattenObservation)")
    if isinstance(action_space, gym.spaces.Discrete):
        if action_space.n < 1 or action_space.n >= 2**24:  # the index travels as one exact float32
            raise SpaceError(f"{algo_name} needs 1 <= n < 2^24 discrete actions, got {action_space}")
        return
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise SpaceError(f"{algo_name} needs finite action bounds to rescale [-1, 1] to them, got {action_space}")
    if np.any(action_space.high <= action_space.low):
        raise SpaceError(f"action space has high <= low in some dimension: {action_space}")
    if len(action_space.shape) != 1:
        raise SpaceError(f"{algo_name} needs a 1-D action vector, got shape {action_space.shape}")


def action_size(action_space: gym.Space) -> int:
    """What the agent is built for: the action dimension of a Box, the number of actions of a Discrete."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    return int(action_space.shape[0])


def action_map(action_space: gym.Space) -> "ActionScaler | DiscreteActions":
    """The host-side translation between the agent's action columns and the env's actions."""
    if isinstance(action_space, gym.spaces.Discrete):
        return DiscreteActions(int(action_space.n), int(action_space.start))
    return ActionScaler(action_space.low, action_space.high)


class DiscreteActions:
    """Discrete(n, start) actions: the agent's one float column holds the index 0..n-1 (exact below
    2^24); the env gets the integer start + index. Nothing is rescaled."""

    def __init__(self, n: int, start: int = 0):
        self.n, self.start = int(n), int(start)

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """(..., 1) float indices -> (...) int64 env actions."""
        return np.asarray(action)[..., 0].astype(np.int64) + self.start

    def to_agent(self, env_action: np.ndarray) -> np.ndarray:
        """(...) env actions -> (..., 1) float32 indices."""
        return (np.asarray(env_action, np.int64) - self.start).astype(np.float32)[..., None]


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
