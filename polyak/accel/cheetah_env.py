"""TransverseTuning tracked by Cheetah, in the RL4AA'26 challenge's conventions.

`CheetahTransverseTuning` is the CLARA S04 task of `polyak.envs.transverse_tuning` (the JAX twin) with
the physics done by Cheetah (`cheetah-accelerator`, PyTorch): a `Segment` of `Drift`, `CombinedCorrector`,
misaligned `Quadrupole` and `Screen` elements with the lattice of `beam_optics.CLARA_S04_LATTICE`, tracking a
linear `ParameterBeam`. Its interface is the challenge's, not the twin's:

    observation  Dict (keys sorted) {"beam": Box(4) unbounded   (mu_x, sigma_x, mu_y, sigma_y) reading [m],
                                     "magnets": Box(+-(5.3e-3, 5.3e-3, 30, 30, 30)),
                                     "target": Box((-2e-3, 0, -2e-3, 0), (2e-3, 2e-3, 2e-3, 2e-3))}
    action       delta:  Box(+-(6.1782e-4, 6.1782e-4, 2, 2, 2)); magnets' = clip(magnets + clip(a), limits)
                 direct: Box(+-limits);                           magnets' = clip(a, limits)

Everything else is the twin's, so a trial is the same trial in both environments:
- reset draws the incoming beam, the misalignments of Q1-Q4, the target and the initial magnets with the
  twin's own `TransverseTuning.reset` from the same key chain as `GymnasiumAdapter` (PRNGKey(seed), one
  split per call), so `reset(seed=s)` meets the beam, misalignments and target the twin meets for seed s;
- the reading noise is drawn from the same keys (N(0, reading_noise^2) per entry, sigma readings as |.|);
- the rewards are the twin's choices ("log_mae", "negative_mae", "differential", minus `offscreen_penalty`
  while the beam centre is off the screen), computed from the reading;
- `info` holds the true beam, its MAE against the target, the magnets, the target and the on-screen flag.
The env has no time limit of its own: `challenge_wrappers` (or `gymnasium.make`) adds it.

`challenge_wrappers(env)` applies the challenge's wrapping order: `TimeLimit` -> `RescaleDictObservation`
(every Dict entry linearly from its Box bounds to [-1, 1]; the unbounded beam with the target's bounds, not
clipped) -> `RescaleAction(-1, 1)` -> `FlattenObservation` (beam, magnets, target: 13 values).
`gymnasium.make("polyak/CheetahTransverseTuning-v0")` gives that wrapped env with 150-step episodes
(``time_limit=N``: N steps; ``wrap=False``: the bare Dict env). PyTorch and Cheetah are imported when an env
is built, so this module imports without them.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import jax
import numpy as np

from polyak.envs.beam_optics import CLARA_S04_LATTICE, SCREEN_PIXEL_SIZE, SCREEN_RESOLUTION
from polyak.envs.transverse_tuning import (
    ACTION_MODES,
    MAGNET_LIMITS,
    REWARDS,
    SCREEN_SCALE,
    TARGET_HIGH,
    TARGET_LOW,
    IncomingBeam,
    TransverseTuning,
    TransverseTuningParams,
)

# The challenge's delta-action bounds (the twin's MAX_DELTA rounds the corrector's to 6.18e-4).
CHALLENGE_MAX_DELTA = np.array([6.1782e-4, 6.1782e-4, 2.0, 2.0, 2.0])
CHALLENGE_EPISODE_STEPS = 150
ACTUATED_QUADRUPOLES = ("Q1", "Q2", "Q3")
MISALIGNED_QUADRUPOLES = ("Q1", "Q2", "Q3", "Q4")


def import_cheetah():
    """(cheetah, torch), or an ImportError saying what to install."""
    try:
        import cheetah
        import torch
    except ImportError as err:
        raise ImportError("CheetahTransverseTuning needs PyTorch and Cheetah: pip install torch==2.13.0 "
                          "cheetah-accelerator==0.8.4 (polyak's 'test' extra pins both)") from err
    return cheetah, torch


def challenge_observation_space() -> gym.spaces.Dict:
    """The challenge's Dict observation space, keys in sorted order."""
    f32 = np.float32
    return gym.spaces.Dict({
        "beam": gym.spaces.Box(-np.inf, np.inf, (4,), f32),
        "magnets": gym.spaces.Box(-MAGNET_LIMITS.astype(f32), MAGNET_LIMITS.astype(f32), dtype=f32),
        "target": gym.spaces.Box(TARGET_LOW.astype(f32), TARGET_HIGH.astype(f32), dtype=f32),
    })


def clara_s04_segment(dtype: Any = None):
    """The CLARA S04 lattice as a Cheetah `Segment` (elements named as in `CLARA_S04_LATTICE`), design settings."""
    cheetah, torch = import_cheetah()
    dtype = torch.float64 if dtype is None else dtype

    def tensor(value):
        return torch.as_tensor(value, dtype=dtype)

    elements = []
    for e in CLARA_S04_LATTICE:
        if e.kind == "drift":
            elements.append(cheetah.Drift(length=tensor(e.length), name=e.name, dtype=dtype))
        elif e.kind == "corrector":
            elements.append(cheetah.CombinedCorrector(length=tensor(e.length), horizontal_angle=tensor(0.0),
                                                      vertical_angle=tensor(0.0), name=e.name, dtype=dtype))
        elif e.kind == "quadrupole":
            elements.append(cheetah.Quadrupole(length=tensor(e.length), k1=tensor(e.k1),
                                               misalignment=tensor([0.0, 0.0]), name=e.name, dtype=dtype))
        else:
            elements.append(cheetah.Screen(resolution=SCREEN_RESOLUTION,
                                           pixel_size=tensor([SCREEN_PIXEL_SIZE, SCREEN_PIXEL_SIZE]),
                                           name=e.name, dtype=dtype))
    return cheetah.Segment(elements)


class CheetahTransverseTuning(gym.Env):
    """The CLARA S04 transverse tuning task tracked by Cheetah, with the challenge's Dict observation.

    action_mode: "delta" (the challenge's) or "direct"; reward: one of the twin's `REWARDS`; dtype: Cheetah's
    float type ("float64" or "float32"); other keywords are `TransverseTuningParams` fields (the twin's reset
    ranges and fixed values, reading noise, off-screen penalty, `terminate_below_mae`; `max_steps` is ignored:
    the time limit is a wrapper's).
    """

    metadata = {"render_modes": []}

    def __init__(self, action_mode: str = "delta", reward: str = "log_mae", dtype: str = "float64", **params: Any):
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        if dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        known = TransverseTuningParams._fields
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(f"unknown keyword(s) {unknown} for CheetahTransverseTuning: use action_mode, reward, "
                             f"dtype or the TransverseTuningParams fields {list(known)}")
        self.action_mode, self.reward = action_mode, reward
        self.params = TransverseTuningParams(**{k: tuple(v) if isinstance(v, (list, np.ndarray)) else v
                                                for k, v in params.items()})
        self._twin = TransverseTuning(action_mode=action_mode, observation="challenge")
        self.observation_space = challenge_observation_space()
        bound = (CHALLENGE_MAX_DELTA if action_mode == "delta" else MAGNET_LIMITS).astype(np.float32)
        self.action_space = gym.spaces.Box(-bound, bound, dtype=np.float32)

        _, self._torch = import_cheetah()
        self._dtype = getattr(self._torch, dtype)
        self._segment = clara_s04_segment(self._dtype)
        self._draw_trial = jax.jit(self._draw_trial_fn)
        self._draw_noise = jax.jit(self._draw_noise_fn)
        self._key = jax.random.PRNGKey(0)
        self._incoming = None

    # -- the twin's draws, from the twin's key chain --------------------------------------------
    def _draw_trial_fn(self, key):
        key, sub = jax.random.split(key)  # GymnasiumAdapter.reset
        state, _ = self._twin.reset(sub, self.params)
        read_key = jax.random.split(sub, 5)[4]  # TransverseTuning.reset's reading key
        return key, state, jax.random.normal(read_key, (4,))

    @staticmethod
    def _draw_noise_fn(key):
        key, sub = jax.random.split(key)  # GymnasiumAdapter.step
        return key, jax.random.normal(sub, (4,))

    # -- physics ---------------------------------------------------------------------------------
    def _tensor(self, value):
        return self._torch.as_tensor(np.asarray(value, np.float64), dtype=self._dtype)

    def screen_beam(self, magnets: np.ndarray) -> np.ndarray:
        """(mu_x, sigma_x, mu_y, sigma_y) [m] on the screen for these magnet settings, tracked by Cheetah."""
        segment = self._segment
        segment.HVCOR1.horizontal_angle = self._tensor(magnets[0])
        segment.HVCOR1.vertical_angle = self._tensor(magnets[1])
        for name, k1 in zip(ACTUATED_QUADRUPOLES, magnets[2:]):
            getattr(segment, name).k1 = self._tensor(k1)
        with self._torch.no_grad():
            out = segment.track(self._incoming)
        return np.array([out.mu_x.item(), out.sigma_x.item(), out.mu_y.item(), out.sigma_y.item()])

    def set_trial(self, incoming: np.ndarray, misalignments: np.ndarray) -> None:
        """Sets the incoming beam (11 `IncomingBeam` fields) and the (dx, dy) misalignments of Q1-Q4 (4, 2)."""
        cheetah, _ = import_cheetah()
        beam = IncomingBeam(*(self._tensor(v) for v in np.asarray(incoming, np.float64)))
        self._incoming = cheetah.ParameterBeam.from_parameters(**beam._asdict(), dtype=self._dtype)
        for name, offset in zip(MISALIGNED_QUADRUPOLES, np.asarray(misalignments, np.float64).reshape(4, 2)):
            getattr(self._segment, name).misalignment = self._tensor(offset)
        self._trial = (np.asarray(incoming, np.float64), np.asarray(misalignments, np.float64).reshape(4, 2))

    def _read(self, beam: np.ndarray, normal) -> np.ndarray:
        reading = beam + self.params.reading_noise * np.asarray(normal, np.float64)
        reading[[1, 3]] = np.abs(reading[[1, 3]])
        return reading

    def _observation(self, reading: np.ndarray) -> dict:
        return {"beam": reading.astype(np.float32), "magnets": self._magnets.astype(np.float32),
                "target": self._target.astype(np.float32)}

    def state_info(self) -> dict:
        """The true (noise-free) beam now, its MAE against the target, the magnets, the target, on-screen."""
        beam = self._beam
        return {"beam": beam.copy(), "mae": float(np.mean(np.abs(beam - self._target))),
                "magnets": self._magnets.copy(), "target": self._target.copy(),
                "on_screen": bool(abs(beam[0]) < SCREEN_SCALE[0] and abs(beam[2]) < SCREEN_SCALE[2])}

    # -- gymnasium -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        elif self._incoming is None:  # unseeded first reset: a key from Gymnasium's own RNG
            self._key = jax.random.PRNGKey(int(self.np_random.integers(2**31)))
        self._key, state, normal = self._draw_trial(self._key)
        self.set_trial(np.asarray(state.incoming), np.asarray(state.misalignments))
        self._magnets = np.asarray(state.magnets, np.float64)
        self._target = np.asarray(state.target, np.float64)
        self._beam = self.screen_beam(self._magnets)
        reading = self._read(self._beam, normal)
        self._mae_initial = self._mae_previous = float(np.mean(np.abs(reading - self._target)))
        return self._observation(reading), self.state_info()

    def step(self, action):
        if self._incoming is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, np.float64)
        if action.shape != (5,) or not np.all(np.isfinite(action)):
            raise ValueError(f"the action must be 5 finite values (HVCOR1 x, y, k1 of Q1-Q3), got {action}")
        if self.action_mode == "delta":
            magnets = self._magnets + np.clip(action, -CHALLENGE_MAX_DELTA, CHALLENGE_MAX_DELTA)
        else:
            magnets = action
        self._magnets = np.clip(magnets, -MAGNET_LIMITS, MAGNET_LIMITS)
        self._beam = self.screen_beam(self._magnets)
        self._key, normal = self._draw_noise(self._key)
        reading = self._read(self._beam, normal)
        mae_reading = float(np.mean(np.abs(reading - self._target)))
        info = self.state_info()
        if self.reward == "log_mae":  # the twin's rewards, from the reading
            reward = math.log(1e-3 / max(mae_reading, 1e-6))
        elif self.reward == "negative_mae":
            reward = -mae_reading / 1e-3
        else:
            reward = (self._mae_previous - mae_reading) / max(self._mae_initial, 1e-9)
        reward -= self.params.offscreen_penalty * (not info["on_screen"])
        self._mae_previous = mae_reading
        terminated = self.params.terminate_below_mae > 0 and info["mae"] < self.params.terminate_below_mae
        return self._observation(reading), float(reward), bool(terminated), False, info


class RescaleDictObservation(gym.ObservationWrapper):
    """Maps every entry of a Dict observation linearly from its Box bounds to [-1, 1] (not clipped).

    An entry whose Box is unbounded takes the bounds of the entry `bounds_from` names (the challenge scales
    the beam with the target's bounds); its rescaled Box stays unbounded.
    """

    def __init__(self, env: gym.Env, bounds_from: dict[str, str] | None = None):
        super().__init__(env)
        bounds_from = {"beam": "target"} if bounds_from is None else bounds_from
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict):
            raise TypeError(f"RescaleDictObservation needs a Dict observation space, got {space}")
        self.bounds, spaces = {}, {}
        for key, box in space.spaces.items():
            source = space.spaces[bounds_from.get(key, key)]
            if not (np.all(np.isfinite(source.low)) and np.all(np.isfinite(source.high))):
                raise ValueError(f"observation entry {key!r} has no finite bounds: name an entry to take them from")
            self.bounds[key] = (source.low.astype(np.float64), source.high.astype(np.float64))
            finite = np.all(np.isfinite(box.low)) and np.all(np.isfinite(box.high))
            spaces[key] = gym.spaces.Box(-1.0 if finite else -np.inf, 1.0 if finite else np.inf, box.shape, np.float32)
        self.observation_space = gym.spaces.Dict(spaces)

    def observation(self, observation: dict) -> dict:
        out = {}
        for key, value in observation.items():
            low, high = self.bounds[key]
            out[key] = (2.0 * (np.asarray(value, np.float64) - low) / (high - low) - 1.0).astype(np.float32)
        return out


def challenge_wrappers(env: gym.Env, max_episode_steps: int = CHALLENGE_EPISODE_STEPS) -> gym.Env:
    """The challenge's wrapping: TimeLimit -> Dict rescaler (beam by the target's bounds) -> RescaleAction(-1, 1)
    -> FlattenObservation (keys sorted: beam, magnets, target; 13 values)."""
    env = gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)
    env = RescaleDictObservation(env, {"beam": "target"})
    env = gym.wrappers.RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    return gym.wrappers.FlattenObservation(env)


def make_cheetah_transverse_tuning(time_limit: int = CHALLENGE_EPISODE_STEPS, wrap: bool = True,
                                   **kwargs: Any) -> gym.Env:
    """Entry point of ``gymnasium.make("polyak/CheetahTransverseTuning-v0", ...)``: `challenge_wrappers` around
    `CheetahTransverseTuning(**kwargs)` with episodes of `time_limit` steps (``wrap=False``: the bare Dict env,
    without a time limit). `gymnasium.make`'s own ``max_episode_steps`` would add a second, outer TimeLimit."""
    env = CheetahTransverseTuning(**kwargs)
    return challenge_wrappers(env, time_limit) if wrap else env
