"""A policy trained on the JAX twin acting in an environment with the RL4AA'26 challenge's conventions.

The twin (`polyak/TransverseTuning-v0`) and the challenge's environment (e.g. `polyak/CheetahTransverseTuning-v0`)
describe the same machine in different units:

    challenge (flattened, 13)   beam:    2 (b - low_t) / (high_t - low_t) - 1   with the *target's* bounds
                                magnets: m / limits                             target: 2 (t - low_t) / (high_t - low_t) - 1
                                action a in [-1, 1] -> delta = a * (6.1782e-4, 6.1782e-4, 2, 2, 2)
    twin (17, 13 or 26)         reading / screen half-size, magnets / limits, target / screen half-size,
                                symlog(reading - target) (the 4 extra entries), all clipped to [-1, 1];
                                "with_history": + the previous step's symlog errors and magnet change / max_delta,
                                computed from the previous challenge observation
                                action in physical units (the model's scaler maps its [-1, 1] to +-(6.18e-4, ..., 2))

`ChallengeTwinMap` converts between them: the challenge observation is mapped back to physical units (the
rescaling is linear and not clipped, so this is exact up to float32 rounding), the twin's observation is
computed from those readings by the twin's own `observe` (extra entries included), and a twin action in
physical units is expressed in the challenge env's [-1, 1] action (clipped: the twin's corrector step
6.18e-4 exceeds the challenge's 6.1782e-4 by 0.03 %, so a full twin step becomes a full challenge step).

`TwinPolicyAdapter(model)` is the deployable piece: an SB3-style `predict(obs)` that takes the challenge
env's observation and returns its action, so a model trained on the twin drops into the challenge's
evaluation code. `TwinView(env)` is the same map as a wrapper: the challenge env seen in the twin's
conventions, which is how `polyak accel evaluate --task cheetah` runs every controller, trained or classical.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import jax
import numpy as np

from polyak.envs.transverse_tuning import (
    MAGNET_LIMITS,
    MAX_DELTA,
    OBSERVATIONS,
    TARGET_HIGH,
    TARGET_LOW,
    TransverseTuning,
)

OBSERVATION_SIZES = {"with_log_errors": 17, "challenge": 13, "with_history": 26}


class ChallengeTwinMap:
    """Observation and action maps between an env with the challenge's conventions and the twin.

    observation: the twin's observation variant ("with_log_errors", "challenge" or "with_history"); action_low/high: the
    challenge env's action bounds in physical units before its `RescaleAction(-1, 1)` (default: the
    challenge's delta bounds); magnet and target bounds: the challenge's Dict spaces.
    """

    def __init__(self, observation: str = "with_log_errors", action_low: np.ndarray | None = None,
                 action_high: np.ndarray | None = None, magnet_limits: np.ndarray = MAGNET_LIMITS,
                 target_low: np.ndarray = TARGET_LOW, target_high: np.ndarray = TARGET_HIGH):
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        # the challenge's delta bounds; kept here so this module needs no Cheetah
        high = np.array([6.1782e-4, 6.1782e-4, 2.0, 2.0, 2.0]) if action_high is None else action_high
        self.action_high = np.asarray(high, np.float64)
        self.action_low = -self.action_high if action_low is None else np.asarray(action_low, np.float64)
        self.magnet_limits = np.asarray(magnet_limits, np.float64)
        self.target_low, self.target_high = np.asarray(target_low, np.float64), np.asarray(target_high, np.float64)
        self.observation = observation
        self._observe = jax.jit(jax.vmap(TransverseTuning(observation=observation).observe))

    @classmethod
    def for_env(cls, env: gym.Env, observation: str = "with_log_errors") -> ChallengeTwinMap:
        """The map for `env` (wrapped as the challenge wraps it), its bounds read from the unwrapped env's spaces."""
        base = env.unwrapped
        spaces = getattr(base.observation_space, "spaces", None)
        if spaces is None or set(spaces) != {"beam", "magnets", "target"}:
            raise ValueError("the unwrapped env needs the challenge's Dict observation {'beam', 'magnets', 'target'}, "
                             f"got {base.observation_space}")
        return cls(observation, base.action_space.low, base.action_space.high, spaces["magnets"].high,
                   spaces["target"].low, spaces["target"].high)

    def physical(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(beam reading [m], magnets, target [m]) from the challenge's flattened observation(s) (..., 13)."""
        obs = np.asarray(obs, np.float64)
        if obs.shape[-1] != 13:
            raise ValueError(f"the challenge's flattened observation has 13 entries, got shape {obs.shape}")
        half, mid = (self.target_high - self.target_low) / 2, (self.target_high + self.target_low) / 2
        return obs[..., 0:4] * half + mid, obs[..., 4:9] * self.magnet_limits, obs[..., 9:13] * half + mid

    def twin_observation(self, obs: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
        """The twin's observation (17, 13 or 26 entries) of the same readings, magnets and target.

        "with_history" also needs `previous`, the challenge observation(s) one step before `obs`; None at an
        episode's first observation, where the twin's history repeats the reading and its change is zero."""
        reading, magnets, target = self.physical(obs)
        parts = [np.reshape(reading, (-1, 4)), np.reshape(magnets, (-1, 5)), np.reshape(target, (-1, 4))]
        if self.observation == "with_history":
            last_reading, last_magnets, last_target = self.physical(obs if previous is None else previous)
            parts += [TransverseTuning.log_errors(np.reshape(last_reading, (-1, 4)), np.reshape(last_target, (-1, 4))),
                      np.reshape((magnets - last_magnets) / MAX_DELTA, (-1, 5))]
        twin = np.asarray(self._observe(*(np.asarray(b, np.float32) for b in parts)))
        return twin.reshape(*np.shape(obs)[:-1], twin.shape[-1])

    def challenge_action(self, action: np.ndarray) -> np.ndarray:
        """A twin action in physical units as the challenge env's action in [-1, 1] (clipped)."""
        action = np.asarray(action, np.float64)
        scaled = 2.0 * (action - self.action_low) / (self.action_high - self.action_low) - 1.0
        return np.clip(scaled, -1.0, 1.0).astype(np.float32)


def _twin_action_bounds(action_mode: str) -> np.ndarray:
    return MAX_DELTA if action_mode == "delta" else MAGNET_LIMITS


class TwinPolicyAdapter:
    """A model trained on `polyak/TransverseTuning-v0`, acting in an env with the challenge's conventions.

        adapter = TwinPolicyAdapter(polyak.load("run/model.polyak"), env)   # env: challenge_wrappers(...)
        action, _ = adapter.predict(obs, deterministic=True)                # obs: the 13 flattened values

    `predict` maps the observation back to physical units, builds the twin's observation (its extra
    log-error entries computed from the readings), asks the model, and returns the action in the env's
    [-1, 1]. The observation variant is read from the model's input size (17: "with_log_errors", 13:
    "challenge", 26: "with_history"); the model must have been trained in the env's action mode (delta or direct).
    """

    def __init__(self, model: Any, env: gym.Env | None = None, observation: str | None = None):
        obs_dim = int(model.agent.obs_dim)
        if observation is None:
            sizes = {size: name for name, size in OBSERVATION_SIZES.items()}
            if obs_dim not in sizes:
                raise ValueError(f"the model takes {obs_dim} observation entries; a TransverseTuning model takes "
                                 f"17 (with_log_errors), 13 (challenge) or 26 (with_history)")
            observation = sizes[obs_dim]
        elif OBSERVATION_SIZES.get(observation) != obs_dim:
            raise ValueError(f"observation {observation!r} has {OBSERVATION_SIZES.get(observation)} entries, "
                             f"the model takes {obs_dim}")
        self.model, self._last = model, None
        self.map = ChallengeTwinMap.for_env(env, observation) if env is not None else ChallengeTwinMap(observation)
        trained_high = np.asarray(model.scaler.high, np.float64)
        mode = next((m for m in ("delta", "direct") if np.allclose(trained_high, _twin_action_bounds(m))), None)
        if mode is None:
            raise ValueError(f"the model's action bounds {trained_high} are neither the twin's delta nor its "
                             "direct bounds: was it trained on polyak/TransverseTuning-v0?")
        env_mode = "delta" if np.all(self.map.action_high < MAGNET_LIMITS) else "direct"
        if mode != env_mode:
            raise ValueError(f"the model was trained in {mode} mode and the env acts in {env_mode} mode "
                             f"(action bounds {self.map.action_high})")

    def reset(self) -> None:
        """Forget the last observation ("with_history" models): the next `predict` starts an episode."""
        self._last = None

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """The env's action in [-1, 1] for its observation (one (13,) or a batch (n, 13)); SB3's signature.

        A "with_history" model's adapter remembers the observation of its last call: consecutive calls are
        consecutive steps, and an episode starts at the first call, after `reset()`, where the batch's shape
        changes, and on the rows where `episode_start` is true."""
        previous = None
        if self.map.observation == "with_history":
            observation = np.asarray(observation)
            if self._last is not None and self._last.shape == observation.shape:
                rows = observation.shape[:-1]
                start = np.zeros(rows, bool) if episode_start is None else np.asarray(episode_start, bool)
                start = start.reshape(rows) if start.size == int(np.prod(rows)) else np.broadcast_to(start, rows)
                previous = np.where(start[..., None], observation, self._last)
            self._last = observation.copy()
        twin_action, _ = self.model.predict(self.map.twin_observation(observation, previous),
                                            deterministic=deterministic)
        return self.map.challenge_action(twin_action), None


class TwinView(gym.Wrapper):
    """An env with the challenge's conventions seen in the twin's: the twin's observation (variant
    `observation`) and its action space in physical units for `action_mode`."""

    def __init__(self, env: gym.Env, observation: str = "with_log_errors"):
        super().__init__(env)
        self.map = ChallengeTwinMap.for_env(env, observation)
        action_mode = "delta" if np.all(self.map.action_high < MAGNET_LIMITS) else "direct"
        twin = TransverseTuning(action_mode=action_mode, observation=observation)
        self.action_mode = action_mode
        self.observation_space, self.action_space = twin.observation_space, twin.action_space

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._last = obs
        return self.map.twin_observation(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(self.map.challenge_action(action))
        twin_obs = self.map.twin_observation(obs, self._last)
        self._last = obs
        return twin_obs, reward, terminated, truncated, info
