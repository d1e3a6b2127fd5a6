"""Offline RL side by side with d3rlpy: TD3+BC, CQL, IQL and AWAC on the same data, settings and gradient steps.

Run it as ``python -m benchmarks.d3rlpy_side_by_side --dataset ID`` (``--help`` lists the options). ID is a local
Minari dataset (`polyak.data.datasets`, e.g. made by ``polyak data collect``); both libraries get the same arrays,
read once by polyak's loader: d3rlpy an ``MDPDataset`` built from them (``d3rlpy_arrays``: every truncated episode
gets one extra row holding its true final observation, so that d3rlpy, which takes s' from the next row, learns
from exactly polyak's transitions, the last one of each episode included).

Each (repeat, algorithm, library) is one training run in its own fresh Python subprocess, interleaved (repeat by
repeat, algorithm by algorithm, the libraries' order alternating), so slow drifts of a shared machine hit both
libraries alike. Hyperparameters: polyak's defaults (CORL's) with the overrides in ``OVERRIDES``, given to d3rlpy
through the one table ``FIELD_MAP`` (polyak config field -> d3rlpy config field); ``D3RLPY_EXTRA`` sets d3rlpy
fields that polyak fixes in code, and ``UNMATCHED`` lists what cannot be made equal (printed with the results).

Recorded per run (dataset loading and network construction excluded):

* **steps/s**: gradient steps over the wall time of training, the first jitted chunk's compilation (polyak) or
  the first steps' warm-up (d3rlpy) included; **steady steps/s**: over the steps after the first 1000;
* **final score**: the mean return of ``--eval-episodes`` deterministic episodes in the dataset's env after the
  last gradient step (the same reset seeds for both libraries), normalised with D4RL's reference returns where
  the env has them (HalfCheetah, Hopper, Walker2d; D4RL's numbers are for the v2 envs); for TransverseTuning
  also the median final MAE over the episodes.

``--out FILE`` writes every raw number as JSON. d3rlpy is an optional benchmark dependency (it pins
gymnasium==1.0.0; with polyak's gymnasium install it with ``pip install --no-deps d3rlpy==2.8.1`` and its other
requirements: the module constant ``INSTALL_D3RLPY``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import statistics
import sys
import time
from typing import Any, Sequence

import numpy as np

from benchmarks.bench import RESULT_MARKER, WorkerCommand, library_versions, machine_info, run_worker

ALGOS = ("td3_bc", "cql", "iql", "awac")
LIBS = ("polyak", "d3rlpy")
D3RLPY_CLASSES = {"td3_bc": "TD3PlusBCConfig", "cql": "CQLConfig", "iql": "IQLConfig", "awac": "AWACConfig"}
INSTALL_D3RLPY = ("pip install --no-deps d3rlpy==2.8.1 structlog==26.1.0 colorama==0.4.6 dataclasses-json==0.6.7 "
                  "marshmallow==3.26.2 typing-inspect==0.9.0 mypy-extensions==1.2.0 click==8.5.1 gym==0.26.2 "
                  "gym-notices==0.1.0 && pip install scikit-learn==1.9.1")
VERSION_PACKAGES = ("polyak", "d3rlpy", "jax", "jaxlib", "flax", "optax", "torch", "gymnasium", "numpy", "mujoco")
STEADY_AFTER = 1000  # steady steps/s counts the steps after this many (polyak's first chunk: the compilation)
EVAL_SEED = 10_000  # evaluation episode k of repeat r is reset with seed EVAL_SEED + 100 r + k
# D4RL's reference returns (random, expert) of the v2 envs: score = 100 (R - random) / (expert - random)
D4RL_REFERENCE = {"HalfCheetah": (-280.178953, 12135.0), "Hopper": (-20.272305, 3234.3),
                  "Walker2d": (1.629008, 4592.3)}

# polyak's defaults are used, with these overrides (the same values go to d3rlpy through FIELD_MAP)
OVERRIDES: dict[str, dict[str, Any]] = {
    "iql": {"actor_lr_decay_steps": 0},  # constant policy step size: d3rlpy's default (no scheduler)
}

# polyak config field -> d3rlpy config field ("*": every algorithm). None: no d3rlpy field (see UNMATCHED).
FIELD_MAP: dict[str, dict[str, str | None]] = {
    "*": {
        "learning_rate": "critic_learning_rate",  # IQL: d3rlpy's one Adam over Q and V; polyak one each, same lr
        "actor_learning_rate": "actor_learning_rate",
        "batch_size": "batch_size",
        "tau": "tau",
        "gamma": "gamma",
        "n_critics": "n_critics",
        "actor_hidden": "actor_encoder_factory",  # VectorEncoderFactory(hidden_units=..., activation="relu")
        "critic_hidden": "critic_encoder_factory",  # IQL: also value_encoder_factory
        "normalize_obs": "observation_scaler",  # StandardObservationScaler(the dataset's mean and std)
        "reward_scale": "reward_scaler",  # MultiplyRewardScaler(scale); None at 1
    },
    "td3_bc": {
        "alpha": "alpha",
        "policy_delay": "update_actor_interval",
        "target_policy_noise": "target_smoothing_sigma",
        "target_noise_clip": "target_smoothing_clip",
        "exploration_noise": None,  # online fine-tuning only
    },
    "cql": {
        "cql_alpha": "conservative_weight",  # d3rlpy: exp(log_alpha) * weight * (C - threshold), log_alpha fixed
        "cql_n_actions": "n_action_samples",
        "cql_temperature": None,  # d3rlpy's logsumexp has T = 1: the run stops unless polyak's is 1
        "cql_lagrange": "alpha_learning_rate",  # False -> 0 (alpha fixed); True -> polyak's learning_rate
        "cql_target_action_gap": "alpha_threshold",  # a constant in the loss unless Lagrange
        "alpha_prime_init": "initial_alpha",  # without Lagrange polyak's weight is cql_alpha alone: 1.0
    },
    "iql": {
        "expectile": "expectile",
        "beta": "weight_temp",
        "max_weight": "max_weight",
        "actor_lr_decay_steps": "actor_optim_factory",  # 0: Adam; n: Adam + CosineAnnealingLRFactory(T_max=n)
    },
    "awac": {
        "awac_lambda": "lam",
        "max_weight": None,  # d3rlpy normalises the weights by a softmax over the batch instead of clipping
    },
}
# d3rlpy fields that polyak fixes in its code
D3RLPY_EXTRA: dict[str, dict[str, Any]] = {
    "cql": {"temp_learning_rate": "actor_learning_rate",  # polyak's entropy temperature steps with the actor's Adam
            "initial_temperature": 1.0, "soft_q_backup": False, "max_q_backup": False},
    "awac": {"n_action_samples": 1},  # polyak's V(s) is Q at one sampled action
}
# what cannot be made equal, per algorithm ("*": every algorithm)
UNMATCHED: dict[str, tuple[str, ...]] = {
    "*": ("initial weights: Flax's LeCun normal (polyak) vs PyTorch's Kaiming uniform (d3rlpy)",
          "observation normalisation: (s - mean) / sqrt(var + 1e-8) clipped to +-10 (polyak) vs (s - mean) / "
          "(std + 1e-8) unclipped (d3rlpy, eps set to 1e-8)",
          "batches: polyak samples uniformly on the device, d3rlpy row by row in Python (part of its step time)"),
    "td3_bc": (),
    "cql": ("target action: a' ~ pi(.|s') sampled (polyak, CORL) vs tanh(mean(s')) (d3rlpy without soft_q_backup)",
            "temperature loss on log alpha (polyak) vs on alpha (d3rlpy); actor before critic (polyak) vs after",),
    "iql": ("policy log-std: a parameter clipped to [-20, 2] (polyak) vs sigmoid-mapped into [-5, 2] (d3rlpy)",
            "the policy's advantage uses V before this step's value update (polyak) vs after (d3rlpy)"),
    "awac": ("weights: min(exp(A / lambda), max_weight) (polyak) vs batch softmax(A / lambda) * batch size, "
             "no clip (d3rlpy), and the policy loss is a batch mean (polyak) vs a batch sum (d3rlpy)",
             "critic target: min Q'(s', a'), a' ~ pi clipped (polyak) vs min Q'(s', tanh a') - log pi(a'|s') "
             "with temperature 1 (d3rlpy's AWAC keeps SAC's soft backup)",
             "policy: Gaussian with a raw mean and log-std clipped to [-20, 2] (polyak) vs a tanh mean and log-std "
             "sigmoid-mapped into [-6, 0] (d3rlpy)"),
}


# -- pure helpers ---------------------------------------------------------------------------------------
def polyak_hyperparameters(algo: str) -> dict[str, Any]:
    """polyak's config defaults for `algo` with OVERRIDES applied (the values both libraries get)."""
    import polyak

    cfg = polyak.ALGORITHMS[algo].config_cls()
    return {**dataclasses.asdict(cfg), **OVERRIDES.get(algo, {})}


def field_map(algo: str) -> dict[str, str | None]:
    """FIELD_MAP for one algorithm: the common rows, then its own."""
    return {**FIELD_MAP["*"], **FIELD_MAP[algo]}


def d3rlpy_settings(algo: str, hp: dict[str, Any]) -> dict[str, Any]:
    """The d3rlpy config values for polyak's hyperparameters `hp`, as plain data: encoders as
    ("encoder", hidden), the scaler fields as ("standard",) / ("multiply", scale) / None, the IQL policy optimiser
    as ("adam", decay_steps). Raises ValueError for a polyak setting that d3rlpy cannot reproduce."""
    table = field_map(algo)
    missing = sorted(set(hp) - set(table))
    if missing:
        raise ValueError(f"{algo}: polyak fields {missing} have no row in FIELD_MAP: add them")
    out: dict[str, Any] = {}
    for field, target in table.items():
        value = hp[field]
        if target is None:
            if field == "cql_temperature" and value != 1.0:
                raise ValueError(f"cql_temperature={value}: d3rlpy's CQL has temperature 1 only")
            continue
        if field in ("actor_hidden", "critic_hidden"):
            value = ("encoder", tuple(value))
        elif field == "normalize_obs":
            value = ("standard",) if value else None
        elif field == "reward_scale":
            value = None if value == 1.0 else ("multiply", float(value))
        elif field == "cql_lagrange":
            value = float(hp["learning_rate"]) if value else 0.0
        elif field == "alpha_prime_init":
            value = float(value) if hp["cql_lagrange"] else 1.0
        elif field == "actor_lr_decay_steps":
            value = ("adam", int(value))
        out[target] = value
    if algo == "iql":
        out["value_encoder_factory"] = out["critic_encoder_factory"]
    for key, value in D3RLPY_EXTRA.get(algo, {}).items():
        out[key] = hp[value] if isinstance(value, str) else value
    return out


def d3rlpy_arrays(obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
                  terminated: np.ndarray, truncated: np.ndarray, episode: np.ndarray) -> dict[str, np.ndarray]:
    """Transitions (rows in episode order, as `OfflineData`) -> the per-step arrays of d3rlpy's MDPDataset
    (observations, actions, rewards, terminals, timeouts).

    d3rlpy takes s' of step t from row t + 1 and drops the last step of an episode that ends by a timeout (its s'
    is unknown to it). So a truncated episode gets one extra row after its last: the true final observation, a
    zero action and reward, and the timeout flag (moved there from the last real row); d3rlpy never starts a
    transition at that row. A terminated episode needs none (d3rlpy's s' there is zeros, masked by the terminal).
    """
    episode = np.asarray(episode)
    if len(episode) and (np.any(np.diff(episode) < 0) or np.any(np.diff(episode) > 1)):
        raise ValueError("rows must be grouped by episode, in order")
    ends = np.flatnonzero(np.r_[episode[1:] != episode[:-1], True]) if len(episode) else np.array([], int)
    if np.any(~(terminated[ends] | truncated[ends])):
        raise ValueError("every episode must end with a termination or a truncation")
    inner = np.ones(len(episode), bool)
    inner[ends] = False
    if np.any(np.asarray(next_obs[:-1])[inner[:-1]] != np.asarray(obs[1:])[inner[:-1]]):
        raise ValueError("next_obs must equal the next row's obs inside an episode")
    extra = ends[truncated[ends] & ~terminated[ends]]  # rows after which the final observation is appended
    at = extra + 1
    observations = np.insert(obs, at, next_obs[extra], axis=0)
    actions = np.insert(action, at, np.zeros((len(extra),) + action.shape[1:], action.dtype), axis=0)
    rewards = np.insert(reward, at, np.zeros(len(extra), reward.dtype))
    term = np.insert(terminated.astype(np.float32), at, 0.0)
    trunc = truncated.astype(np.float32)
    trunc[extra] = 0.0
    timeouts = np.insert(trunc, at, 1.0)
    return {"observations": observations.astype(np.float32), "actions": actions.astype(np.float32),
            "rewards": rewards.astype(np.float32), "terminals": term, "timeouts": timeouts}


def d4rl_score(env_id: str | None, episode_return: float) -> float | None:
    """D4RL's normalised score of a return in `env_id` (None where D4RL has no reference for it)."""
    name = (env_id or "").split("/")[-1].split("-")[0]
    if name not in D4RL_REFERENCE:
        return None
    low, high = D4RL_REFERENCE[name]
    return 100.0 * (episode_return - low) / (high - low)


def interleaved_tasks(algos: Sequence[str], libs: Sequence[str], repeats: int) -> list[tuple[int, str, str]]:
    """(repeat, algo, lib) in run order: repeat by repeat, algorithm by algorithm, the libraries' order reversed
    on every other (repeat, algorithm) so that neither library always runs first."""
    tasks, k = [], 0
    for repeat in range(repeats):
        for algo in algos:
            order = list(libs) if k % 2 == 0 else list(reversed(libs))
            tasks += [(repeat, algo, lib) for lib in order]
            k += 1
    return tasks


RATE_KEYS = ("steps_per_s", "steady_steps_per_s", "steady_steps_per_cpu_s")  # the ratios reported, the verdict's last


def verdict(polyak_runs: list[dict], d3rlpy_runs: list[dict], target: float = 3.0) -> dict[str, Any]:
    """Speed ratios polyak / d3rlpy (of the medians over repeats, for each of RATE_KEYS) and the score comparison.

    The verdict takes the steady ratio per CPU-second (robust to other processes' load; polyak's XLA threads that
    spin-wait count against it), else the steady wall-clock ratio, else the whole one. Score "better": polyak's mean
    final score >= d3rlpy's; "equal": below it by at most the larger of the two standard deviations over repeats
    (a few repeats cannot separate closer scores); else "worse"."""
    def med(runs, key):
        values = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    def stats(runs):
        values = [r["score"] for r in runs if r.get("score") is not None]
        return (float(np.mean(values)), float(np.std(values))) if values else (None, None)

    out: dict[str, Any] = {}
    for key in RATE_KEYS:
        p, d = med(polyak_runs, key), med(d3rlpy_runs, key)
        out[key] = p / d if p and d else None
    (pm, ps), (dm, ds) = stats(polyak_runs), stats(d3rlpy_runs)
    if pm is None or dm is None:
        out["score"] = "n/a"
    else:
        out["score"] = "better" if pm >= dm else ("equal" if dm - pm <= max(ps, ds) else "worse")
    ratio = next((out[k] for k in reversed(RATE_KEYS) if out[k] is not None), None)
    out["target_met"] = bool(ratio is not None and ratio >= target and out["score"] in ("better", "equal"))
    return out


# -- one run (the worker subprocess) -------------------------------------------------------------------
def _load(dataset: str, minari_path: str | None):
    if minari_path:
        os.environ["MINARI_DATASETS_PATH"] = minari_path
    import polyak  # noqa: F401  (registers polyak's envs)
    from polyak.data.datasets import load_dataset

    return load_dataset(dataset)


def _make_env(data, env_kwargs: dict[str, Any]):
    import gymnasium as gym

    if data.env_id is None:
        raise SystemExit(f"dataset {data.dataset_id} names no environment to evaluate in")
    return gym.make(data.env_id, **env_kwargs)


def _evaluate(act, env, episodes: int, seed: int) -> dict[str, Any]:
    returns, maes = [], []
    for k in range(episodes):
        obs, info = env.reset(seed=seed + k)
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
        if "mae" in info:
            maes.append(float(info["mae"]))
    return {"returns": returns, "final_mae_median": float(np.median(maes)) if maes else None}


class _Clock:
    """Wall and process CPU time (all threads) at the start, after STEADY_AFTER steps (the first time a step count
    reaches it) and at the end."""

    def __init__(self):
        self.start = self.mark = self.end = None
        self.mark_step = None

    @staticmethod
    def now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def at(self, step: int) -> None:
        if self.mark is None and step >= STEADY_AFTER:
            self.mark, self.mark_step = self.now(), step

    def rates(self, steps: int) -> dict[str, Any]:
        """steps/s over wall time; per CPU-second over the process's CPU time (robust to other load, but counting
        threads that spin-wait); both over the whole run and after the mark."""
        learn_s, cpu_s = self.end[0] - self.start[0], self.end[1] - self.start[1]
        out = {"learn_s": learn_s, "cpu_s": cpu_s, "steps_per_s": steps / learn_s, "steps_per_cpu_s": steps / cpu_s,
               "steady_steps_per_s": None, "steady_steps_per_cpu_s": None}
        if self.mark is not None and steps > self.mark_step:
            out["steady_steps_per_s"] = (steps - self.mark_step) / (self.end[0] - self.mark[0])
            out["steady_steps_per_cpu_s"] = (steps - self.mark_step) / max(self.end[1] - self.mark[1], 1e-9)
        return out


def _run_polyak(algo: str, data, env, hp: dict[str, Any], steps: int, seed: int):
    import polyak

    t0 = time.perf_counter()
    model = polyak.ALGORITHMS[algo]("MlpPolicy", env=env, dataset=data, seed=seed, eval_episodes=0, **hp)
    setup_s = time.perf_counter() - t0
    clock = _Clock()

    def callback(m) -> bool:  # after each jitted chunk (its non-finite check has synchronised with the device)
        clock.at(m.num_timesteps)
        return True

    clock.start = clock.now()
    model.learn(steps, callback=callback, log_interval=STEADY_AFTER)
    clock.end = clock.now()
    return (lambda obs: model.predict(obs, deterministic=True)[0]), clock.rates(steps), setup_s, {}


def _d3rlpy_config(algo: str, settings: dict[str, Any], data, compile_graph: bool):
    import d3rlpy

    def convert(key: str, value: Any) -> Any:
        if isinstance(value, tuple) and value and value[0] == "encoder":
            return d3rlpy.models.VectorEncoderFactory(hidden_units=list(value[1]), activation="relu")
        if isinstance(value, tuple) and value and value[0] == "standard":
            obs = np.asarray(data.obs, np.float64)  # the rows polyak's normaliser is fitted on
            return d3rlpy.preprocessing.StandardObservationScaler(
                mean=obs.mean(0).astype(np.float32), std=obs.std(0).astype(np.float32), eps=1e-8)
        if isinstance(value, tuple) and value and value[0] == "multiply":
            return d3rlpy.preprocessing.MultiplyRewardScaler(value[1])
        if isinstance(value, tuple) and value and value[0] == "adam":
            scheduler = d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=value[1]) if value[1] else None
            return d3rlpy.optimizers.AdamFactory(lr_scheduler_factory=scheduler)
        return value

    kwargs = {key: convert(key, value) for key, value in settings.items()}
    low, high = data.action_space.low, data.action_space.high
    kwargs["action_scaler"] = d3rlpy.preprocessing.MinMaxActionScaler(minimum=low.astype(np.float32),
                                                                       maximum=high.astype(np.float32))
    return getattr(d3rlpy.algos, D3RLPY_CLASSES[algo])(compile_graph=compile_graph, **kwargs)


def _run_d3rlpy(algo: str, data, env, hp: dict[str, Any], steps: int, seed: int, compile_graph: bool,
                torch_threads: int):
    import d3rlpy
    import torch

    if torch_threads > 0:
        torch.set_num_threads(torch_threads)
    d3rlpy.seed(seed)
    t0 = time.perf_counter()
    arrays = d3rlpy_arrays(data.obs, data.action, data.reward, data.next_obs, data.terminated, data.truncated,
                           data.episode)
    dataset = d3rlpy.dataset.MDPDataset(**arrays, action_space=d3rlpy.constants.ActionSpace.CONTINUOUS)
    algo_obj = _d3rlpy_config(algo, d3rlpy_settings(algo, hp), data, compile_graph).create(device="cpu:0")
    algo_obj.build_with_dataset(dataset)
    setup_s = time.perf_counter() - t0
    clock = _Clock()
    clock.start = clock.now()
    algo_obj.fit(dataset, n_steps=steps, n_steps_per_epoch=steps, show_progress=False, save_interval=steps + 1,
                 logger_adapter=d3rlpy.logging.NoopAdapterFactory(), callback=lambda _a, _e, step: clock.at(step))
    clock.end = clock.now()
    extra = {"transitions": int(dataset.transition_count), "torch_threads": torch.get_num_threads(),
             "compile_graph": compile_graph}
    return (lambda obs: algo_obj.predict(np.asarray(obs, np.float32)[None])[0]), clock.rates(steps), setup_s, extra


def worker(task: dict[str, Any]) -> dict[str, Any]:
    """One training run: load the dataset, train `steps` gradient steps, evaluate; the result as a dict."""
    data = _load(task["dataset"], task.get("minari_path"))
    env = _make_env(data, task.get("env_kwargs", {}))
    hp = polyak_hyperparameters(task["algo"])
    if task["lib"] == "polyak":
        act, rates, setup_s, extra = _run_polyak(task["algo"], data, env, hp, task["steps"], task["seed"])
    else:
        act, rates, setup_s, extra = _run_d3rlpy(task["algo"], data, env, hp, task["steps"], task["seed"],
                                                 task.get("compile_graph", False), task.get("torch_threads", 1))
    ev = _evaluate(act, env, task["eval_episodes"], EVAL_SEED + 100 * task["seed"])
    mean_return = float(np.mean(ev["returns"]))
    normalised = d4rl_score(data.env_id, mean_return)
    return {"status": "ok", **{k: task[k] for k in ("lib", "algo", "seed", "steps", "dataset")},
            "dataset_transitions": len(data), "setup_s": setup_s, **rates, "return_mean": mean_return,
            "return_std": float(np.std(ev["returns"])), "d4rl_score": normalised,
            "score": normalised if normalised is not None else mean_return,
            "final_mae_median": ev["final_mae_median"], **extra}


# -- the driver -----------------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def report(runs: list[dict], algos: Sequence[str], score_name: str) -> str:
    """Markdown tables: per algorithm and library the medians over repeats (score: mean ± std), then the ratios
    and the verdict on the target (>= 3x d3rlpy's steps/s at an equal or better score)."""
    lines = [f"| algorithm | library | steps/s | steady steps/s | steady steps per CPU-s | {score_name} (mean ± std) "
             "| final MAE median (µm) | runs |", "|---|---|---|---|---|---|---|---|"]
    verdicts = {}
    for algo in algos:
        by_lib = {lib: [r for r in runs if r["algo"] == algo and r["lib"] == lib and r.get("status") == "ok"]
                  for lib in LIBS}
        for lib, rs in by_lib.items():
            if not rs:
                lines.append(f"| {algo} | {lib} | — | — | — | — | — | 0 |")
                continue
            scores = [r["score"] for r in rs]
            maes = [r["final_mae_median"] for r in rs if r.get("final_mae_median") is not None]

            def med(key, rs=rs):
                values = [r[key] for r in rs if r.get(key) is not None]
                return statistics.median(values) if values else None

            lines.append(f"| {algo} | {lib} | {_fmt(med('steps_per_s'))} | {_fmt(med('steady_steps_per_s'))} | "
                         f"{_fmt(med('steady_steps_per_cpu_s'))} | {np.mean(scores):.1f} ± {np.std(scores):.1f} | "
                         f"{_fmt(1e6 * statistics.median(maes) if maes else None)} | {len(rs)} |")
        verdicts[algo] = verdict(by_lib["polyak"], by_lib["d3rlpy"])
    lines += ["", "| algorithm | polyak / d3rlpy: steps/s | steady | steady per CPU-s | score | ≥ 3× at equal or "
              "better score |", "|---|---|---|---|---|---|"]
    for algo, v in verdicts.items():
        lines.append(f"| {algo} | {_fmt(v['steps_per_s'], 2)}× | {_fmt(v['steady_steps_per_s'], 2)}× | "
                     f"{_fmt(v['steady_steps_per_cpu_s'], 2)}× | {v['score']} | {'yes' if v['target_met'] else 'no'} |")
    return "\n".join(lines)


def parse_env_kwargs(items: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE strings -> a dict; values are read as JSON where they parse (numbers, true/false), else strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env-kwarg needs KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.d3rlpy_side_by_side",
        description="polyak's offline TD3+BC, CQL, IQL, AWAC against d3rlpy's on one Minari dataset: the same "
                    "arrays, hyperparameters and gradient steps, each run in a fresh subprocess, interleaved over "
                    "repeats; reports gradient steps/s (whole, and steady after the first 1000 steps) and the final "
                    "evaluation return (D4RL-normalised for MuJoCo).",
        epilog="Datasets: e.g. `polyak data collect --env HalfCheetah-v5 --policy random --episodes 100 --id "
               "polyak/HalfCheetah-v5/random-v0`. d3rlpy pins gymnasium==1.0.0; with polyak's gymnasium install "
               f"it by: {INSTALL_D3RLPY}")
    parser.add_argument("--dataset", required=False, help="local Minari dataset id (polyak's loader)")
    parser.add_argument("--minari-path", default=None,
                        help="folder of the Minari datasets (sets MINARI_DATASETS_PATH; default: its current value)")
    parser.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword for gymnasium.make of the evaluation env (repeatable), e.g. action_mode=direct "
                             "for a Nelder-Mead TransverseTuning log")
    parser.add_argument("--algos", default=",".join(ALGOS), help=f"comma-separated subset of {','.join(ALGOS)}")
    parser.add_argument("--libs", default=",".join(LIBS), help=f"comma-separated subset of {','.join(LIBS)}")
    parser.add_argument("--steps", type=int, default=10_000, help="gradient steps per run (default: 10000)")
    parser.add_argument("--algo-steps", action="append", default=[], metavar="ALGO=N",
                        help="gradient steps for one algorithm instead of --steps (repeatable), e.g. cql=2000")
    parser.add_argument("--repeats", type=int, default=2, help="runs per (algorithm, library), seeds 0.. (default: 2)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="final evaluation episodes (default: 10)")
    parser.add_argument("--d3rlpy-compile", action="store_true",
                        help="d3rlpy's compile_graph=True (torch.compile); default: eager, d3rlpy's default")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="PyTorch intra-op threads for d3rlpy (0: torch's default, one per core; default: 1). On "
                             "a shared, loaded machine torch's default threads spin-wait for each other: 20x slower "
                             "per step here; XLA keeps its default threads")
    parser.add_argument("--out", default=None, help="write all results as JSON to this file")
    parser.add_argument("--report", default=None, metavar="JSON",
                        help="print the tables of an --out file (e.g. of an interrupted benchmark) and exit")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # a JSON task: the subprocess side
    return parser


def write(args: argparse.Namespace, started: datetime.datetime, algos: Sequence[str], runs: list[dict]) -> None:
    """All raw numbers, the settings both libraries got and the unmatched ones, as JSON to --out (if given)."""
    if not args.out:
        return
    with open(args.out, "w") as f:
        json.dump({"started": started.isoformat(), "args": vars(args), "machine": machine_info(),
                   "versions": library_versions(VERSION_PACKAGES), "runs": runs,
                   "hyperparameters": {a: polyak_hyperparameters(a) for a in algos},
                   "d3rlpy_settings": {a: d3rlpy_settings(a, polyak_hyperparameters(a)) for a in algos},
                   "unmatched": UNMATCHED}, f, indent=1, default=str)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker is not None:
        result = worker(json.loads(args.worker))
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return 0
    if args.report is not None:
        with open(args.report) as f:
            saved = json.load(f)
        runs = saved["runs"]
        ok = [r for r in runs if r.get("status") == "ok"]
        score_name = "D4RL score" if ok and ok[0].get("d4rl_score") is not None else "return"
        algos = [a for a in ALGOS if any(r["algo"] == a for r in runs)]
        print(f"{saved['args']['dataset']}, {saved['started']}\n{report(runs, algos, score_name)}")
        return 0
    if not args.dataset:
        raise SystemExit("--dataset ID is required (or --report JSON)")
    algos = [a for a in args.algos.split(",") if a]
    libs = [lib for lib in args.libs.split(",") if lib]
    bad = [a for a in algos if a not in ALGOS] + [lib for lib in libs if lib not in LIBS]
    if bad:
        raise SystemExit(f"unknown algorithm or library {bad}: choose from {ALGOS} and {LIBS}")
    steps = {algo: args.steps for algo in algos}
    for item in args.algo_steps:
        algo, _, n = item.partition("=")
        if algo not in steps or not n.isdigit():
            raise SystemExit(f"--algo-steps needs ALGO=N with ALGO one of {algos}, got {item!r}")
        steps[algo] = int(n)
    if min(steps.values()) <= STEADY_AFTER or args.repeats < 1 or args.eval_episodes < 1:
        raise SystemExit(f"gradient steps must be > {STEADY_AFTER}, --repeats and --eval-episodes >= 1")
    env_kwargs = parse_env_kwargs(args.env_kwarg)
    for algo in algos:  # fail before any run on a setting d3rlpy cannot take
        d3rlpy_settings(algo, polyak_hyperparameters(algo))
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"{started:%Y-%m-%d %H:%M} UTC, {machine_info()['cpu']}; {library_versions(VERSION_PACKAGES)}", flush=True)
    runs = []
    for repeat, algo, lib in interleaved_tasks(algos, libs, args.repeats):
        task = {"lib": lib, "algo": algo, "seed": repeat, "steps": steps[algo], "dataset": args.dataset,
                "minari_path": args.minari_path, "env_kwargs": env_kwargs, "eval_episodes": args.eval_episodes,
                "compile_graph": args.d3rlpy_compile, "torch_threads": args.torch_threads}
        result = run_worker(WorkerCommand([sys.executable, "-m", "benchmarks.d3rlpy_side_by_side", "--worker",
                                           json.dumps(task)]))
        result.update({k: task[k] for k in ("lib", "algo", "seed")})
        runs.append(result)
        write(args, started, algos, runs)  # after every run: an interrupted benchmark keeps what it measured
        if result.get("status") == "ok":
            print(f"{algo:7s} {lib:7s} seed {repeat}: {result['steps_per_s']:8.1f} steps/s (steady "
                  f"{_fmt(result['steady_steps_per_s'], 1)}; {_fmt(result.get('steady_steps_per_cpu_s'), 1)} per "
                  f"CPU-s), return {result['return_mean']:.1f}"
                  + (f", D4RL {result['d4rl_score']:.1f}" if result["d4rl_score"] is not None else "")
                  + (f", final MAE {1e6 * result['final_mae_median']:.0f} µm" if result["final_mae_median"] else "")
                  + f" (other load {_fmt(result.get('other_load_cores'), 2)} cores)", flush=True)
        else:
            print(f"{algo} {lib} seed {repeat}: {result.get('error')}", flush=True)
    ok = [r for r in runs if r.get("status") == "ok"]
    score_name = "D4RL score" if ok and ok[0].get("d4rl_score") is not None else "return"
    table = report(runs, algos, score_name)
    print(f"\n{args.dataset}, gradient steps {steps}, {args.repeats} repeats, {args.eval_episodes} evaluation "
          f"episodes\n{table}\n\nSettings that differ between the libraries:")
    for algo in ["*"] + algos:
        for line in UNMATCHED[algo]:
            print(f"- {algo if algo != '*' else 'all'}: {line}")
    write(args, started, algos, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
