"""Crash-safe runs: `polyak train` killed with SIGKILL mid-run resumes from its latest checkpoint when the same
command runs again, and ends with the parameters and logs of a run that was never interrupted."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from polyak.io.checkpoint import read_checkpoint

pytestmark = pytest.mark.slow

STEPS, EVERY = 1500, 300
TIMING_COLUMNS = {"time_s", "steps_per_s"}  # wall-clock columns: the only ones allowed to differ


def train_command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "polyak", "train", "sac", "--env", "Pendulum-v1", "--steps", str(STEPS),
            "--seed", "3", "--checkpoint-every", str(EVERY), "--run-dir", str(run_dir), "--no-progress",
            "--no-tuned", "--eval-episodes", "1", "--log-interval", "100", "--set", "net_arch=[16,16]",
            "--set", "learning_starts=200", "--set", "batch_size=32", "--set", "buffer_size=4000", *extra]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]


def kill_after_checkpoint(cmd: list[str], run_dir: Path, step: int) -> None:
    """Start the run and SIGKILL it as soon as the checkpoint of `step` exists (mid-run, nothing finished)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = run_dir / "checkpoints" / f"step{step:09d}.polyak"
    deadline = time.monotonic() + 300
    while not target.exists():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run(train_command(whole))

    kill_after_checkpoint(train_command(killed), killed, 2 * EVERY)
    assert not (killed / "eval.json").exists() and not (killed / "model.polyak").exists()
    logged = rows(killed / "episodes.csv")  # flushed at the checkpoint: every episode up to it is on disk
    assert logged and int(logged[-1]["step"]) >= 2 * EVERY - 200
    (killed / "checkpoints" / ".step000000900.polyak.abcd1234.tmp").write_bytes(b"half a save")

    out = run(train_command(killed))  # the same command again
    assert "resuming" in out.stdout
    assert not list((killed / "checkpoints").glob(".*.tmp")), "temporary files of the interrupted save stay"
    assert len(list((killed / "checkpoints").glob("step*.polyak"))) == 2  # --keep-checkpoints 2

    a, meta_a = read_checkpoint(whole / "model.polyak")
    b, meta_b = read_checkpoint(killed / "model.polyak")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert meta_a["num_timesteps"] == meta_b["num_timesteps"] == STEPS
    assert rows(whole / "metrics.csv") == rows(killed / "metrics.csv")  # no row lost or repeated
    assert rows(whole / "episodes.csv") == rows(killed / "episodes.csv")
    eval_a, eval_b = (json.loads((d / "eval.json").read_text()) for d in (whole, killed))
    assert eval_a["eval_returns"] == eval_b["eval_returns"]

    again = run(train_command(killed))  # finished: not retrained
    assert "finished run" in again.stdout
    assert json.loads((killed / "eval.json").read_text())["eval_returns"] == eval_b["eval_returns"]


def test_a_folder_of_another_command_is_refused_and_fresh_starts_over(tmp_path):
    d = tmp_path / "run"
    cmd = train_command(d)
    cmd[cmd.index("--steps") + 1] = "300"
    run(cmd)
    other = list(cmd)
    other[other.index("--seed") + 1] = "4"
    out = subprocess.run(other, capture_output=True, text=True, timeout=600)
    assert out.returncode != 0 and "holds a run of another command (seed: folder 3, command 4)" in out.stderr
    out = run(other + ["--fresh"])
    assert json.loads((d / "config.json").read_text())["seed"] == 4 and (d / "eval.json").exists()
