"""Run logging: metrics CSV, episode CSV, TensorBoard events, progress bar, learning-curve PNG."""

from __future__ import annotations

import csv
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from tensorboardX import SummaryWriter
from tqdm import tqdm

METRICS_FILE = "metrics.csv"
EPISODES_FILE = "episodes.csv"
RECENT = 20  # episodes in the running mean return/length of metrics.csv


def truncate_log(path: Path, last_step: int) -> int:
    """Keep the header and the rows of a step-indexed CSV log with step <= last_step (a resume from the
    checkpoint at `last_step` rewrites what came after it); returns the rows kept. Atomic (temp file, rename)."""
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return 0
    kept = [rows[0]] + [r for r in rows[1:] if r and _step_of(r) <= last_step]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    tmp.replace(path)
    return len(kept) - 1


def _step_of(row: list[str]) -> float:
    try:
        return float(row[0])
    except ValueError:
        return float("inf")  # a torn last line (killed mid-write) goes


class RunLogger:
    """Writes to `run_dir` (if given): metrics.csv, episodes.csv and TensorBoard events.

    `resume_step`: the run continues from a checkpoint at that step: rows logged after it (by the
    interrupted run) are dropped from the CSV logs, TensorBoard discards its events after it, and
    the running mean of recent episodes starts from the episodes logged up to it.
    """

    def __init__(self, run_dir: str | Path | None = None, verbose: int = 0, progress_bar: bool = False,
                 tensorboard: bool = True, resume_step: int | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.verbose = verbose
        self.recent_returns: deque[float] = deque(maxlen=RECENT)
        self.recent_lengths: deque[int] = deque(maxlen=RECENT)
        self._metrics_file = self._episodes_file = None
        self._metrics_writer = None
        self._metrics_fields: list[str] | None = None
        self._episodes_writer = None
        self._tb = None
        self._pbar = None
        self._pending = 0
        self._show_progress = progress_bar
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if resume_step is not None:
                truncate_log(self.run_dir / METRICS_FILE, resume_step)
                truncate_log(self.run_dir / EPISODES_FILE, resume_step)
                self._reload_recent_episodes()
            if tensorboard:  # purge_step: TensorBoard drops the earlier files' events from that step on
                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"),
                                         purge_step=None if resume_step is None else resume_step + 1)

    def _reload_recent_episodes(self) -> None:
        path = self.run_dir / EPISODES_FILE
        if path.is_file():
            with open(path, newline="") as f:
                for row in list(csv.reader(f))[1:][-RECENT:]:
                    self.recent_returns.append(float(row[1]))
                    self.recent_lengths.append(int(float(row[2])))

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, total_steps: int, initial_step: int = 0) -> None:
        self._t0, self._s0 = time.perf_counter(), initial_step
        self._last_t, self._last_s = self._t0, initial_step
        if self._show_progress:
            self._pbar = tqdm(total=total_steps, initial=0, unit="step", dynamic_ncols=True, smoothing=0.05)

    def progress(self, n: int) -> None:
        """Count n more steps; the bar is redrawn every 64 steps (a tqdm update per step is a measurable cost)."""
        if self._pbar is not None:
            self._pending += n
            if self._pending >= 64:
                self._pbar.update(self._pending)
                self._pending = 0

    def flush(self) -> None:
        """Everything logged so far onto the disk (at every checkpoint, so a killed run loses no row)."""
        for f in (self._metrics_file, self._episodes_file):
            if f is not None:
                f.flush()
                os.fsync(f.fileno())
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._pbar is not None:
            self._pbar.update(self._pending)
            self._pbar.close()
            self._pbar = None
        for f in (self._metrics_file, self._episodes_file):
            if f is not None:
                f.close()
        self._metrics_file = self._episodes_file = None
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None

    # -- records ---------------------------------------------------------------------------
    def episode(self, step: int, episode_return: float, length: int) -> None:
        self.recent_returns.append(episode_return)
        self.recent_lengths.append(length)
        if self.run_dir is not None:
            if self._episodes_writer is None:
                self._episodes_file = open(self.run_dir / EPISODES_FILE, "a", newline="")
                self._episodes_writer = csv.writer(self._episodes_file)
                if self._episodes_file.tell() == 0:
                    self._episodes_writer.writerow(["step", "episode_return", "episode_length"])
            self._episodes_writer.writerow([step, episode_return, length])
        if self._tb is not None:
            self._tb.add_scalar("rollout/episode_return", episode_return, step)
            self._tb.add_scalar("rollout/episode_length", length, step)

    def metrics(self, step: int, values: dict[str, Any]) -> dict[str, float]:
        now = time.perf_counter()
        row = {"step": step, "time_s": round(now - self._t0, 3),
               "steps_per_s": (step - self._last_s) / max(now - self._last_t, 1e-9)}
        self._last_t, self._last_s = now, step
        # mean return and length of the last 20 episodes (NaN before the first one ends)
        row["recent_return"] = float(np.mean(self.recent_returns)) if self.recent_returns else float("nan")
        row["recent_length"] = float(np.mean(self.recent_lengths)) if self.recent_lengths else float("nan")
        row.update({k: float(v) for k, v in values.items()})
        if self.run_dir is not None:
            if self._metrics_writer is None:
                self._metrics_file = open(self.run_dir / METRICS_FILE, "a", newline="")
                self._metrics_fields = list(row)
                self._metrics_writer = csv.DictWriter(self._metrics_file, self._metrics_fields, extrasaction="ignore")
                if self._metrics_file.tell() == 0:
                    self._metrics_writer.writeheader()
            self._metrics_writer.writerow(row)
            self._metrics_file.flush()
        if self._tb is not None:
            for k, v in row.items():
                if k != "step":
                    self._tb.add_scalar(f"train/{k}", v, step)
        if self._pbar is not None:
            post = {"steps/s": f"{row['steps_per_s']:.0f}"}
            if self.recent_returns:
                post["return"] = f"{row['recent_return']:.1f}"
            self._pbar.set_postfix(post, refresh=False)
        elif self.verbose:
            print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        return row

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self._tb is not None:
            self._tb.add_scalar(tag, value, step)


def plot_learning_curve(run_dir: str | Path, title: str = "", eval_return: float | None = None) -> Path | None:
    """Episode returns (and their moving average) against environment steps -> learning_curve.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    path = run_dir / "episodes.csv"
    if not path.exists():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    steps = np.array([float(r["step"]) for r in rows])
    returns = np.array([float(r["episode_return"]) for r in rows])
    window = max(1, min(10, len(returns)))
    smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, returns, ".", alpha=0.35, label="episode return")
    ax.plot(steps[window - 1:], smooth, "-", lw=2, label=f"moving average ({window} episodes)")
    if eval_return is not None:
        ax.axhline(eval_return, color="k", ls="--", lw=1, label=f"final deterministic eval: {eval_return:.1f}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = run_dir / "learning_curve.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
