"""Controllers for the accelerator tasks, classical and learned, behind one interface.

    reset(env, observation, info)   start of a trial; `env` is the task's GymnasiumAdapter (its spaces,
                                    its JAX environment `env.env` and parameters `env.params`)
    act(observation, info)          -> action in the environment's own units

Controllers see only what a control room sees: the observation (beam or BPM readings, magnet
settings, target). `info` carries the true beam for bookkeeping and is not used for decisions.
`action_mode` names the TransverseTuning mode a controller needs ("delta" or "direct").
"""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from polyak.algos.registry import load_model
from polyak.envs.orbit_steering import svd_correction
from polyak.envs.transverse_tuning import MAGNET_LIMITS, MAX_DELTA, SCREEN_SCALE


class Controller(Protocol):
    name: str
    action_mode: str

    def reset(self, env: Any, observation: np.ndarray, info: dict) -> None: ...

    def act(self, observation: np.ndarray, info: dict) -> np.ndarray: ...


class DoNothing:
    """Leaves every magnet where it is (zero change per step)."""

    name, action_mode = "do-nothing", "delta"

    def reset(self, env, observation, info):
        self._zeros = np.zeros(env.action_space.shape, np.float32)

    def act(self, observation, info):
        return self._zeros


class RandomController:
    """Uniformly random actions within the action space (seeded)."""

    name, action_mode = "random", "delta"

    def __init__(self, seed: int = 0):
        self._rng = np.random.default_rng(seed)

    def reset(self, env, observation, info):
        self._low, self._high = env.action_space.low, env.action_space.high

    def act(self, observation, info):
        return self._rng.uniform(self._low, self._high).astype(np.float32)


class _Stopped(Exception):
    pass


class NelderMead:
    """SciPy's Nelder-Mead on the magnet settings, one evaluation per step (TransverseTuning).

    The objective is the MAE of the beam reading against the target, both read from the
    observation. The simplex lives in magnet settings scaled to [-1, 1] and starts at the
    settings of the reset with `initial_step` along each axis. SciPy drives the search from a
    worker thread; `act` hands it one reading per step (ask/tell). The first evaluation, the start
    point, is the reset reading; the last step of the budget goes to the best setting seen, as it
    does when the simplex has converged before the budget is spent.
    """

    name, action_mode = "nelder-mead", "direct"

    def __init__(self, budget: int = 150, initial_step: float = 0.1, xatol: float = 1e-4, fatol: float = 1e-7):
        if budget < 2:
            raise ValueError(f"budget must be >= 2 steps, got {budget}")
        if not 0 < initial_step <= 1:
            raise ValueError(f"initial_step must be in (0, 1] (a fraction of the magnet range), got {initial_step}")
        self.budget, self.initial_step, self.xatol, self.fatol = budget, initial_step, xatol, fatol
        self._thread = None

    @staticmethod
    def objective(observation: np.ndarray) -> float:
        reading = np.asarray(observation[:4], np.float64) * SCREEN_SCALE
        target = np.asarray(observation[9:13], np.float64) * SCREEN_SCALE
        return float(np.mean(np.abs(reading - target)))

    def reset(self, env, observation, info):
        if getattr(env.env, "action_mode", "direct") != "direct":
            raise ValueError("NelderMead sets the magnets directly: use TransverseTuning(action_mode='direct')")
        self.close()
        self._limits = MAGNET_LIMITS
        x0 = np.clip(np.asarray(observation[4:9], np.float64), -1.0, 1.0)
        f0 = self.objective(observation)
        self.best_x, self.best_f = x0, f0
        self._remaining = self.budget
        self._pending = None
        self._requests: queue.Queue = queue.Queue()
        self._replies: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._optimise, args=(x0, f0), daemon=True)
        self._thread.start()

    def _optimise(self, x0: np.ndarray, f0: float) -> None:
        from scipy.optimize import minimize

        simplex = [x0]
        for i in range(x0.size):
            vertex = x0.copy()
            vertex[i] += self.initial_step if x0[i] + self.initial_step <= 1.0 else -self.initial_step
            simplex.append(vertex)
        first = [True]

        def objective(x):
            if first[0] and np.array_equal(x, x0):  # the start point: already read at reset
                first[0] = False
                return f0
            self._requests.put(np.array(x, np.float64))
            value = self._replies.get()
            if value is None:
                raise _Stopped
            return value

        try:
            minimize(objective, x0, method="Nelder-Mead", bounds=[(-1.0, 1.0)] * x0.size,
                     options={"initial_simplex": np.array(simplex), "maxfev": 10 * self.budget,
                              "xatol": self.xatol, "fatol": self.fatol})
        except _Stopped:
            return
        self._requests.put(None)  # converged before the budget was spent

    def act(self, observation, info):
        if self._pending is not None:  # the reading of the setting asked for last step
            value = self.objective(observation)
            if value < self.best_f:
                self.best_x, self.best_f = self._pending, value
            self._pending = None
            if self._remaining > 1 and self._thread.is_alive():
                self._replies.put(value)
        self._remaining -= 1
        if self._remaining > 0 and self._thread is not None and self._thread.is_alive():
            x = self._requests.get()
            if x is not None:
                self._pending = x
                return (x * self._limits).astype(np.float32)
        self.close()
        return (self.best_x * self._limits).astype(np.float32)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._replies.put(None)
            self._thread.join(timeout=5)
        self._thread = None


class RandomPerturbation:
    """A random-perturbation tuner (a (1+1) hill climber) on TransverseTuning in the delta-action mode.

    It keeps the best setting seen, `base`, and the MAE of its reading, f_base. Each step it reads the MAE
    f of the setting it went to; if f < f_base the setting becomes the base and the step size grows,
    otherwise the step size shrinks (the 1/5 success rule: grow by `grow`, shrink by `shrink`); then it
    goes to the next trial point

        next = base + scale * N(0, I) * max_delta          (per magnet; max_delta the step limit)
        action = clip(next - current, -max_delta, max_delta)

    so a rejected trial is stepped back from in the same move. The base and the MAE come from the
    observation (magnet settings, beam reading, target), as in a control room; with `budget` set, its last
    step goes back to the base. `seed` seeds the perturbations (one stream across the trials).
    """

    name, action_mode = "random-perturbation", "delta"

    def __init__(self, seed: int = 0, initial_scale: float = 0.5, min_scale: float = 0.02, grow: float = 1.5,
                 shrink: float = 0.9, budget: int | None = None):
        if not 0 < min_scale <= initial_scale <= 1:
            raise ValueError(f"need 0 < min_scale <= initial_scale <= 1 (fractions of the step limit), got "
                             f"min_scale={min_scale}, initial_scale={initial_scale}")
        if grow <= 1 or not 0 < shrink < 1:
            raise ValueError(f"need grow > 1 and 0 < shrink < 1, got grow={grow}, shrink={shrink}")
        if budget is not None and budget < 1:
            raise ValueError(f"budget must be >= 1 step (or None), got {budget}")
        self.initial_scale, self.min_scale, self.grow, self.shrink = initial_scale, min_scale, grow, shrink
        self.budget = budget
        self._rng = np.random.default_rng(seed)

    @staticmethod
    def magnets(observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation[4:9], np.float64) * MAGNET_LIMITS

    def reset(self, env, observation, info):
        if getattr(env.env, "action_mode", "delta") != "delta":
            raise ValueError("RandomPerturbation steps the magnets: use TransverseTuning(action_mode='delta')")
        self.base, self.best_f = self.magnets(observation), NelderMead.objective(observation)
        self.scale, self._steps = self.initial_scale, 0

    def act(self, observation, info):
        current, f = self.magnets(observation), NelderMead.objective(observation)
        if self._steps > 0:  # the reading of the last trial point
            if f < self.best_f:
                self.base, self.best_f = current, f
                self.scale = min(1.0, self.scale * self.grow)
            else:
                self.scale = max(self.min_scale, self.scale * self.shrink)
        self._steps += 1
        target = self.base
        if self.budget is None or self._steps < self.budget:
            target = target + self.scale * self._rng.standard_normal(MAX_DELTA.shape) * MAX_DELTA
        return np.clip(target - current, -MAX_DELTA, MAX_DELTA).astype(np.float32)


class SVDController:
    """The exact linear orbit correction for OrbitSteering: delta theta = clip(-R^+ b, +-step limit)."""

    name, action_mode = "svd", "delta"

    def reset(self, env, observation, info):
        self._pinv = np.linalg.pinv(np.asarray(env.env.response, np.float64))
        self._scale = float(env.params.observation_scale)
        self._limit = env.action_space.high

    def act(self, observation, info):
        readings = np.asarray(observation, np.float64) / self._scale
        return np.asarray(svd_correction(self._pinv, readings, self._limit), np.float32)


class PolicyController:
    """A trained polyak model (a run folder or a .polyak file) acting deterministically."""

    action_mode = "delta"

    def __init__(self, path: str | Path):
        path = Path(path)
        model_file = path / "model.polyak" if path.is_dir() else path
        if not model_file.exists():
            raise FileNotFoundError(f"no trained model at {model_file} (expected a run folder or a .polyak file)")
        self.model = load_model(model_file)
        self.name = f"{self.model.name} ({path})"
        config_file = model_file.parent / "config.json"
        self.config = json.loads(config_file.read_text()) if config_file.exists() else {}
        self.env_kwargs = dict(self.config.get("env_kwargs") or {})
        self.action_mode = self.env_kwargs.get("action_mode", "delta")

    def reset(self, env, observation, info):
        if observation.shape != (self.model.agent.obs_dim,):
            raise ValueError(f"the model expects observations of shape ({self.model.agent.obs_dim},), "
                             f"the task gives {observation.shape}")
        if not np.allclose(env.action_space.high, self.model.scaler.high):
            raise ValueError(f"the model was trained with action bounds {self.model.scaler.high}, "
                             f"the task has {env.action_space.high}")

    def act(self, observation, info):
        return self.model.predict(observation, deterministic=True)[0]


CONTROLLERS = {"do-nothing": DoNothing, "random": RandomController, "nelder-mead": NelderMead,
               "random-perturbation": RandomPerturbation, "svd": SVDController}


def make_controller(spec: str, **kwargs) -> Controller:
    """A controller by name (do-nothing, random, nelder-mead, random-perturbation, svd) or a run folder / model file."""
    if spec in CONTROLLERS:
        return CONTROLLERS[spec](**kwargs)
    if Path(spec).exists():
        return PolicyController(spec)
    raise ValueError(f"unknown controller {spec!r}: use one of {', '.join(CONTROLLERS)} or a run folder / .polyak file")
