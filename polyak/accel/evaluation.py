"""Seeded, fixed trials of an accelerator task with any controller, and the challenge's metrics.

Trial i of a task resets its environment with seed `seed + i`, so every controller meets the same
incoming beams, misalignments and initial orbits. TransverseTuning trials follow the RL4AA'26
challenge: target (0, 0, 0, 0), magnets starting at (0, 0, 10, -10, 10), 150 steps unless a
controller is given fewer, deterministic actions. Per trial (MAE series m_0 .. m_T, m_0 at reset):

    final MAE              m_T
    ratio to the oracle    m_T / the best MAE reachable in that trial (`accel.oracle`; where computed)
    best MAE               min_t m_t
    steps to 20 um         first t with m_t < 20 um (NaN if never)
    steps to convergence   first t after which max - min of m_t..m_T < 40 um; T if m_T >= m_0
    magnet change          sum_t sum_j |magnet_j,t - magnet_j,t-1| / limit_j   (limits 5.3 mrad, 30 1/m^2)
    score (lower is better) = 750 median(final MAE [m]) + 0.5 median(steps to convergence) / 150
                              + 0.5 median(magnet change) / 750

The cheetah task runs the same trials (the same incoming beams, misalignments and reading noise per seed) in
`polyak/CheetahTransverseTuning-v0`, tracked by Cheetah in the challenge's conventions, seen by controllers in
the twin's (`accel.transfer.TwinView`), so a controller's figures on the two tasks are paired trial by trial.

OrbitSteering trials report the initial and final orbit RMS, the RMS reduction 1 - final/initial,
success (RMS below the success threshold) and the steps taken.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyak.accel.cheetah_env import CheetahTransverseTuning, challenge_wrappers
from polyak.accel.controllers import Controller
from polyak.accel.transfer import TwinView
from polyak.envs.orbit_steering import OrbitSteering, OrbitSteeringParams
from polyak.envs.protocol import GymnasiumAdapter
from polyak.envs.transverse_tuning import (
    BEAM_NAMES,
    MAGNET_LIMITS,
    MAGNET_NAMES,
    TransverseTuning,
    TransverseTuningParams,
)

CONVERGENCE_BAND = 40e-6
MAE_THRESHOLD = 20e-6


def steps_to_convergence(mae: np.ndarray, band: float = CONVERGENCE_BAND) -> int:
    """First step t after which the MAE stays within `band` (max - min) until the end; T if no improvement."""
    steps = len(mae) - 1
    if mae[-1] >= mae[0]:
        return steps
    running_max = np.maximum.accumulate(mae[::-1])[::-1]
    running_min = np.minimum.accumulate(mae[::-1])[::-1]
    return int(np.flatnonzero(running_max - running_min < band)[0])


def challenge_score(final_mae: np.ndarray, convergence: np.ndarray, magnet_change: np.ndarray) -> float:
    return float(750 * np.median(final_mae) + 0.5 * np.median(convergence) / 150
                 + 0.5 * np.median(magnet_change) / 750)


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------

class TransverseTask:
    name, env_id, default_steps = "transverse", "polyak/TransverseTuning-v0", 150

    def make(self, controller, steps: int, reading_noise: float):
        params = TransverseTuningParams(max_steps=steps, target=(0.0, 0.0, 0.0, 0.0), reading_noise=reading_noise)
        # a trained agent sees the observation variant it was trained with; the reward does not matter here
        observation = getattr(controller, "env_kwargs", {}).get("observation", "with_log_errors")
        return GymnasiumAdapter(TransverseTuning(action_mode=controller.action_mode, observation=observation), params)

    def initial_record(self, adapter) -> dict:
        state = adapter._state
        beam = np.asarray(adapter.env.screen_beam(state, state.magnets))
        target = np.asarray(state.target)
        return {"beam": beam, "magnets": np.asarray(state.magnets), "target": target,
                "mae": float(np.mean(np.abs(beam - target)))}

    @staticmethod
    def record(info: dict) -> dict:
        return {k: np.asarray(info[k]) for k in ("beam", "magnets", "target")} | {"mae": float(info["mae"])}

    def trial_metrics(self, records: list[dict]) -> dict:
        mae = np.array([r["mae"] for r in records])
        magnets = np.array([r["magnets"] for r in records])
        below = np.flatnonzero(mae < MAE_THRESHOLD)
        return {"initial_mae": float(mae[0]), "final_mae": float(mae[-1]), "best_mae": float(mae.min()),
                "steps_to_20um": float(below[0]) if below.size else math.nan,
                "steps_to_convergence": steps_to_convergence(mae),
                "magnet_change": float(np.sum(np.abs(np.diff(magnets, axis=0)) / MAGNET_LIMITS)),
                "steps": len(mae) - 1}

    def summary(self, trials: list[dict]) -> dict:
        col = {k: np.array([t[k] for t in trials], np.float64) for k in trials[0]}
        reached = ~np.isnan(col["steps_to_20um"])
        return {"trials": len(trials), "steps_per_trial": int(np.max(col["steps"])),
                "median_final_mae_um": 1e6 * float(np.median(col["final_mae"])),
                "mean_final_mae_um": 1e6 * float(np.mean(col["final_mae"])),
                "median_best_mae_um": 1e6 * float(np.median(col["best_mae"])),
                "median_initial_mae_um": 1e6 * float(np.median(col["initial_mae"])),
                "reached_20um": float(np.mean(reached)),
                "median_steps_to_20um": float(np.median(col["steps_to_20um"][reached])) if reached.any() else math.nan,
                "median_steps_to_convergence": float(np.median(col["steps_to_convergence"])),
                "median_magnet_change": float(np.median(col["magnet_change"])),
                "median_ratio_to_oracle": float(np.median(col["ratio_to_oracle"])) if "ratio_to_oracle" in col
                else math.nan,
                "score": challenge_score(col["final_mae"], col["steps_to_convergence"], col["magnet_change"])}

    COLUMNS = [("median_final_mae_um", "median final MAE [um]", "{:.1f}"),
               ("median_ratio_to_oracle", "median final MAE / oracle", "{:.2f}"),
               ("mean_final_mae_um", "mean final MAE [um]", "{:.1f}"),
               ("median_best_mae_um", "median best MAE [um]", "{:.1f}"),
               ("reached_20um", "reached 20 um", "{:.0%}"),
               ("median_steps_to_20um", "median steps to 20 um", "{:.0f}"),
               ("median_steps_to_convergence", "median steps to convergence", "{:.0f}"),
               ("median_magnet_change", "median magnet change", "{:.2f}"),
               ("steps_per_trial", "steps per trial", "{}"),
               ("score", "score (lower is better)", "{:.3f}")]

    def plot_trial(self, ax_row, records: list[dict], label: str) -> None:
        steps = np.arange(len(records))
        beam = 1e6 * np.array([r["beam"] for r in records])
        target = 1e6 * records[0]["target"]
        for j, name in enumerate(BEAM_NAMES):
            line, = ax_row[0].plot(steps, beam[:, j], label=name)
            ax_row[0].axhline(target[j], color=line.get_color(), ls=":", lw=0.8)
        ax_row[0].set(xlabel="step", ylabel="beam on screen [um]", title=f"{label}: beam (dotted: target)")
        ax_row[0].legend(fontsize=7)
        mae = 1e6 * np.array([r["mae"] for r in records])
        ax_row[1].semilogy(steps, mae)
        ax_row[1].axhline(MAE_THRESHOLD * 1e6, color="gray", ls="--", lw=0.8)
        ax_row[1].set(xlabel="step", ylabel="MAE [um]", title="MAE (dashed: 20 um)")
        magnets = np.array([r["magnets"] for r in records]) / MAGNET_LIMITS
        for j, name in enumerate(MAGNET_NAMES):
            ax_row[2].plot(steps, magnets[:, j], label=name)
        ax_row[2].set(xlabel="step", ylabel="setting / limit", title="magnets", ylim=(-1.05, 1.05))
        ax_row[2].legend(fontsize=7)


class CheetahTask(TransverseTask):
    """The same trials tracked by Cheetah in the challenge's conventions (`accel.cheetah_env`); controllers see
    it through `transfer.TwinView`, in the twin's observation variant and action units, as on the twin."""

    name, env_id = "cheetah", "polyak/CheetahTransverseTuning-v0"

    def make(self, controller, steps: int, reading_noise: float):
        observation = getattr(controller, "env_kwargs", {}).get("observation", "with_log_errors")
        env = CheetahTransverseTuning(action_mode=controller.action_mode, target=(0.0, 0.0, 0.0, 0.0),
                                      reading_noise=reading_noise)
        return TwinView(challenge_wrappers(env, max_episode_steps=steps), observation=observation)

    def initial_record(self, adapter) -> dict:
        info = adapter.unwrapped.state_info()
        return {k: info[k] for k in ("beam", "magnets", "target", "mae")}


class OrbitTask:
    name, env_id, default_steps = "orbit", "polyak/OrbitSteering-v0", 50

    def make(self, controller, steps: int, reading_noise: float):
        return GymnasiumAdapter(OrbitSteering(), OrbitSteeringParams(max_steps=steps, reading_noise=reading_noise))

    def initial_record(self, adapter) -> dict:
        orbit = np.asarray(adapter.env.response, np.float64) @ np.asarray(adapter._state.kicks, np.float64)
        return {"rms": float(np.sqrt(np.mean(orbit**2))), "success": False, "failure": False}

    @staticmethod
    def record(info: dict) -> dict:
        return {"rms": float(info["rms"]), "success": bool(info["success"]), "failure": bool(info["failure"])}

    def trial_metrics(self, records: list[dict]) -> dict:
        rms = np.array([r["rms"] for r in records])
        return {"initial_rms": float(rms[0]), "final_rms": float(rms[-1]),
                "rms_reduction": float(1 - rms[-1] / rms[0]), "success": float(records[-1]["success"]),
                "failure": float(records[-1]["failure"]), "steps": len(rms) - 1}

    def summary(self, trials: list[dict]) -> dict:
        col = {k: np.array([t[k] for t in trials], np.float64) for k in trials[0]}
        return {"trials": len(trials), "mean_rms_reduction": float(np.mean(col["rms_reduction"])),
                "median_rms_reduction": float(np.median(col["rms_reduction"])),
                "median_initial_rms_mm": 1e3 * float(np.median(col["initial_rms"])),
                "median_final_rms_mm": 1e3 * float(np.median(col["final_rms"])),
                "success_rate": float(np.mean(col["success"])), "failure_rate": float(np.mean(col["failure"])),
                "median_steps": float(np.median(col["steps"]))}

    COLUMNS = [("mean_rms_reduction", "mean RMS reduction", "{:.1%}"),
               ("median_rms_reduction", "median RMS reduction", "{:.1%}"),
               ("median_initial_rms_mm", "median initial RMS [mm]", "{:.2f}"),
               ("median_final_rms_mm", "median final RMS [mm]", "{:.3f}"),
               ("success_rate", "success", "{:.0%}"), ("failure_rate", "failure", "{:.0%}"),
               ("median_steps", "median steps", "{:.0f}")]

    def plot_trial(self, ax_row, records: list[dict], label: str) -> None:
        rms = 1e3 * np.array([r["rms"] for r in records])
        ax_row[0].semilogy(np.arange(len(rms)), rms)
        ax_row[0].set(xlabel="step", ylabel="orbit RMS [mm]", title=f"{label}: orbit RMS")


TASKS = {"transverse": TransverseTask(), "cheetah": CheetahTask(), "orbit": OrbitTask()}


# ---------------------------------------------------------------------------------------------
# Running trials
# ---------------------------------------------------------------------------------------------

@dataclass
class Evaluation:
    task: str
    controller: str
    seed: int
    reading_noise: float
    trials: list[dict]  # per-trial metrics
    records: list[list[dict]] = field(repr=False)  # per-trial, per-step records (step 0 = reset)

    @property
    def summary(self) -> dict:
        return TASKS[self.task].summary(self.trials)

    def table_row(self) -> str:
        cells = [fmt.format(self.summary[key]) for key, _, fmt in TASKS[self.task].COLUMNS]
        return "| " + " | ".join([self.controller, *cells]) + " |"

    def to_json(self) -> dict:
        return {"task": self.task, "controller": self.controller, "seed": self.seed,
                "reading_noise": self.reading_noise, "summary": self.summary, "trials": self.trials}


def table_header(task: str) -> str:
    names = [title for _, title, _ in TASKS[task].COLUMNS]
    return "| controller | " + " | ".join(names) + " |\n|" + "---|" * (len(names) + 1)


def evaluate(controller: Controller, task: str = "transverse", trials: int = 100, steps: int | None = None,
             seed: int = 0, reading_noise: float = 0.0, floors: np.ndarray | None = None) -> Evaluation:
    """Run `trials` seeded trials (seeds seed .. seed+trials-1) of `task` with `controller`. `floors`: the best
    MAE reachable in each trial (`accel.oracle.trial_floors` of the same seeds) adds each trial's final MAE
    relative to it."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {', '.join(TASKS)}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if floors is not None and (task not in ("transverse", "cheetah") or len(floors) != trials):
        raise ValueError(f"floors are for the transverse and cheetah tasks, one per trial ({trials}); "
                         f"got {len(floors)} for {task}")
    spec = TASKS[task]
    steps = spec.default_steps if steps is None else int(steps)
    adapter = spec.make(controller, steps, reading_noise)
    all_metrics, all_records = [], []
    for i in range(trials):
        obs, info = adapter.reset(seed=seed + i)
        records = [spec.initial_record(adapter)]
        controller.reset(adapter, obs, records[0])
        done = False
        while not done:
            obs, _, terminated, truncated, info = adapter.step(controller.act(obs, info))
            records.append(spec.record(info))
            done = terminated or truncated
        metrics = spec.trial_metrics(records)
        if floors is not None:
            metrics.update(oracle_mae=float(floors[i]), ratio_to_oracle=metrics["final_mae"] / float(floors[i]))
        all_metrics.append(metrics)
        all_records.append(records)
    if hasattr(controller, "close"):
        controller.close()
    return Evaluation(task, controller.name, seed, reading_noise, all_metrics, all_records)


def plot_trials(evaluations: list[Evaluation], path: str | Path, trial: int = 0) -> Path:
    """One row per controller: the chosen trial's beam (or orbit) vs step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = TASKS[evaluations[0].task]
    ncols = 3 if isinstance(spec, TransverseTask) else 1
    fig, axes = plt.subplots(len(evaluations), ncols, figsize=(5 * ncols, 3.3 * len(evaluations)), squeeze=False)
    for row, ev in zip(axes, evaluations):
        spec.plot_trial(row, ev.records[trial], f"{ev.controller}, trial {trial}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_results(evaluations: list[Evaluation], out_dir: str | Path, plot_trial: int = 0) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = table_header(evaluations[0].task) + "\n" + "\n".join(ev.table_row() for ev in evaluations) + "\n"
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps([ev.to_json() for ev in evaluations], indent=2, default=float))
    plot = plot_trials(evaluations, out / f"trial{plot_trial}.png", plot_trial)
    return {"table": out / "results.md", "json": out / "results.json", "plot": plot}


def describe(evaluation: Evaluation) -> dict[str, Any]:
    return {"controller": evaluation.controller, **evaluation.summary}
