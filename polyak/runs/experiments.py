"""Many seeds in one command, and resumable sweeps: `polyak train --seeds N`, `polyak sweep FILE`.

Every run is exactly one `polyak train` (same run folder: config.json, metrics.csv, episodes.csv,
tensorboard/, learning_curve.png, model.polyak, eval.json, plus train.log with the run's own output).
This module only decides *which* runs to do, *where* their folders go and *who* executes them:

* ``local`` backend: K lanes (default K = min(runs, CPUs)); each lane starts its runs one after the
  other, each in a new ``python`` process (a fresh interpreter, never a fork of this one: JAX is not
  fork-safe), pinned to the lane's share of the CPUs (``os.sched_setaffinity`` before JAX is
  imported; XLA sizes its thread pool to the CPUs it may use).
* ``ray`` backend: every run is a Ray task (``num_cpus=1``, a fresh worker process per run) on a
  local Ray instance with K CPUs, or on the cluster at ``--address``. The tasks write the run
  folders themselves, so on a cluster the run folders must be on a filesystem all nodes share.
* a JAX environment (``polyak/...`` with a ``vector_entry_point``), the local backend and no
  ``--workers``: all seeds are trained vmapped in this process by ``polyak.runs.seeds.train_seeds``
  once that module exists (see :func:`train_many`).

A failed run is reported with its seed and error; the other runs finish and the command exits
with status 1. A sweep (``polyak sweep FILE``) expands a TOML grid into run folders with
deterministic names under one root; a run counts as finished when its folder holds eval.json and
model.polyak, finished runs are skipped and unfinished ones resume from their latest checkpoint (or start
over without one: `polyak train --run-dir` decides), so a
sweep resumes after a crash by running the same command again.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from polyak.algos import registry
from polyak.core.config import HyperparameterError
from polyak.runs.report import summarize
from polyak.runs.run import EVAL_FILE, LOG_FILE, RunFolder, run_folder_name, training_settings
from polyak.runs.seeds import train_seeds
from polyak.runs.zoo import tuned_hyperparameters, with_overrides

SWEEP_FILE = "sweep.json"
RAY_PIN = "ray==2.60.0"
RAY_INSTALL = f'pip install "polyak[ray]"  (or: pip install "{RAY_PIN}")'


class ExperimentError(RuntimeError):
    """A multi-run command cannot start (bad options, missing optional dependency, ...)."""


class SweepFileError(ValueError):
    """A sweep file is invalid; the message names the file and the key."""


# -- runs -----------------------------------------------------------------------------------
@dataclass
class RunSpec:
    """One `polyak train` run: its identity (for summaries) and its complete command line."""

    algo: str
    env: str
    seed: int
    run_dir: Path
    argv: list[str]  # `polyak` arguments, starting with "train"
    variant: str | None = None

    @property
    def name(self) -> str:
        return self.run_dir.name

    def to_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, "env": self.env, "seed": self.seed, "run_dir": str(self.run_dir),
                "argv": list(self.argv), "variant": self.variant}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
        return cls(d["algo"], d["env"], int(d["seed"]), Path(d["run_dir"]), list(d["argv"]), d.get("variant"))


@dataclass
class RunResult:
    spec: RunSpec
    ok: bool
    eval: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0
    skipped: bool = False  # finished before this command started (sweeps)

    @property
    def score(self) -> float | None:
        return None if self.eval is None else float(self.eval["eval_return_mean"])


def is_finished(run_dir: Path) -> bool:
    """A finished run has its evaluation and its model (`RunFolder.is_finished`)."""
    return RunFolder(run_dir).is_finished()


def _last_error_line(log: Path) -> str:
    """The message of the exception a run died with: the last non-empty line of its log."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log written"
    return lines[-1] if lines else "no output"


def _result(spec: RunSpec, rc: int, seconds: float, error: str | None = None) -> RunResult:
    run_dir = spec.run_dir
    if rc == 0 and is_finished(run_dir):
        try:
            return RunResult(spec, True, json.loads((run_dir / EVAL_FILE).read_text()), seconds=seconds)
        except (OSError, json.JSONDecodeError) as e:
            error = f"cannot read {run_dir / EVAL_FILE}: {e}"
    if error is None:
        error = _last_error_line(run_dir / LOG_FILE) if rc != 0 else "finished without eval.json and model.polyak"
        if rc < 0:
            error = f"killed by signal {-rc}; last output: {error}"
    return RunResult(spec, False, error=error, seconds=seconds)


def cpu_shares(workers: int) -> list[list[int] | None]:
    """CPU sets of the K local lanes: an equal, disjoint share each, or None (no pinning) when K > CPUs."""
    if not hasattr(os, "sched_getaffinity"):
        return [None] * workers
    cpus = sorted(os.sched_getaffinity(0))
    share = len(cpus) // workers
    if share < 1:
        return [None] * workers
    return [cpus[i * share:(i + 1) * share] for i in range(workers)]


def run_child(spec: RunSpec, cpus: list[int] | None = None, procs: set | None = None,
              lock: threading.Lock | None = None) -> RunResult:
    """One run as `python -m polyak [--cpus 0,1] train ...` in a new process, its output into train.log.

    `procs` (guarded by `lock`) holds the running process, so that a runner can terminate it.
    """
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "polyak", *(["--cpus", ",".join(map(str, cpus))] if cpus else []), *spec.argv]
    env = dict(os.environ)
    if cpus:  # libraries that read these (OpenMP, BLAS) get the same share as XLA
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, str(len(cpus)))
    lock = lock or threading.Lock()
    procs = procs if procs is not None else set()
    t0 = time.perf_counter()
    with open(spec.run_dir / LOG_FILE, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        with lock:
            procs.add(proc)
        try:
            rc = proc.wait()
        finally:
            with lock:
                procs.discard(proc)
    return _result(spec, rc, time.perf_counter() - t0)


class LocalRunner:
    """K lanes; each runs its runs one after another, each in a new `python` process (a fresh interpreter, not a
    fork of this one: JAX is not fork-safe), pinned to the lane's share of the CPUs when `pin`."""

    def __init__(self, workers: int, pin: bool = True, echo=print):
        self.workers = max(1, int(workers))
        self.shares = cpu_shares(self.workers) if pin else [None] * self.workers
        self.echo = echo
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()

    def run_one(self, spec: RunSpec, cpus: list[int] | None = None) -> RunResult:
        return run_child(spec, cpus, self._procs, self._lock)

    def run(self, specs: Sequence[RunSpec]) -> list[RunResult]:
        queue = list(enumerate(specs))
        results: list[RunResult | None] = [None] * len(specs)
        done = [0]
        stop = threading.Event()

        def lane(cpus):
            while not stop.is_set():
                with self._lock:
                    if not queue:
                        return
                    i, spec = queue.pop(0)
                try:
                    r = self.run_one(spec, cpus)
                except Exception as e:  # noqa: BLE001  (e.g. the run folder cannot be created)
                    r = RunResult(spec, False, error=f"{type(e).__name__}: {e}")
                results[i] = r
                with self._lock:
                    done[0] += 1
                    self.echo(_progress_line(r, done[0], len(specs)), flush=True)

        threads = [threading.Thread(target=lane, args=(self.shares[i],), daemon=True)
                   for i in range(min(self.workers, len(specs)))]
        previous = None
        if threading.current_thread() is threading.main_thread():  # `kill PID` cleans up like Ctrl-C does
            previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except BaseException:  # Ctrl-C or SIGTERM: stop the lanes and the running trainings, then re-raise
            stop.set()
            with self._lock:
                queue.clear()
                procs = list(self._procs)
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return [r for r in results if r is not None]


def _raise_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _progress_line(r: RunResult, done: int, total: int) -> str:
    head = f"[{done}/{total}] {r.spec.name} (seed {r.spec.seed})"
    if r.ok:
        return f"{head}: eval return {r.score:.2f} in {r.seconds:.0f} s"
    return f"{head}: FAILED after {r.seconds:.0f} s: {r.error} (log: {r.spec.run_dir / LOG_FILE})"


# -- ray ------------------------------------------------------------------------------------
def import_ray():
    try:
        import ray
    except ImportError:
        raise ExperimentError(f"--backend ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


@contextmanager
def ray_started(workers: int, address: str | None = None) -> Iterator[tuple[Any, str]]:
    """Ray for the block: the cluster at `address`, or a local instance with `workers` CPUs, shut down after the
    block. Yields (ray, what was started: "connected to ADDRESS in 1.2 s"); a Ray the caller had initialised
    already is used and left running, with "" as what was started."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray, ""
        return
    t0 = time.perf_counter()
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    where = f"connected to {address}" if address else f"local instance with {workers} CPUs"
    try:
        yield ray, f"{where} in {time.perf_counter() - t0:.1f} s"
    finally:
        ray.shutdown()


def _train_in_process(spec_dict: dict[str, Any]) -> dict[str, Any]:
    """Body of a Ray task: one `polyak train` as a child process of this worker, its output into train.log."""
    r = run_child(RunSpec.from_dict(spec_dict))
    return {"ok": r.ok, "eval": r.eval, "error": r.error, "seconds": r.seconds}


def run_ray(specs: Sequence[RunSpec], workers: int, address: str | None = None, echo=print) -> list[RunResult]:
    """Each run a Ray task (num_cpus=1); a local instance with `workers` CPUs unless `address` is given."""
    with ray_started(workers, address) as (ray, started):
        if started:
            echo(f"ray: {started}", flush=True)
        task = ray.remote(num_cpus=1, max_calls=1, max_retries=0)(_train_in_process)
        pending = {task.remote(spec.to_dict()): i for i, spec in enumerate(specs)}
        results: list[RunResult | None] = [None] * len(specs)
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    out = ray.get(ref)
                    r = RunResult(specs[i], out["ok"], out["eval"], out["error"], out["seconds"])
                except Exception as e:  # noqa: BLE001  (a crashed worker or task)
                    cause = getattr(e, "cause", None) or e
                    last = (str(cause).strip().splitlines() or [""])[-1]
                    r = RunResult(specs[i], False, error=f"{type(cause).__name__}: {last}")
                results[i] = r
                done += 1
                echo(_progress_line(r, done, len(specs)), flush=True)
        return [r for r in results if r is not None]


def execute(specs: Sequence[RunSpec], backend: str = "local", workers: int | None = None,
            address: str | None = None, pin: bool = True, echo=print) -> list[RunResult]:
    """Run `specs` on a backend; never raises for a failed run (see RunResult.ok / .error)."""
    if not specs:
        return []
    k = default_workers(len(specs)) if workers is None else int(workers)
    if k < 1:
        raise ExperimentError(f"--workers must be >= 1, got {k}")
    if backend == "ray":
        return run_ray(specs, k, address, echo=echo)
    if backend != "local":
        raise ExperimentError(f"--backend must be 'local' or 'ray', got {backend!r}")
    if address:
        raise ExperimentError("--address is for --backend ray (the address of a running Ray cluster)")
    return LocalRunner(k, pin=pin, echo=echo).run(specs)


def default_workers(n_runs: int) -> int:
    return max(1, min(n_runs, os.cpu_count() or 1))


# -- summaries ------------------------------------------------------------------------------
def summary_lines(results: Sequence[RunResult]) -> list[str]:
    """Per (algorithm, env, variant): per-seed final eval return, mean ± std (ddof=1), IQM [95% CI]."""

    groups: dict[tuple[str, str, str], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.spec.algo, r.spec.env, r.spec.variant or ""), []).append(r)
    lines = []
    for (algo, env, variant), group in groups.items():
        title = f"{algo.upper()} on {env}" + (f" [{variant}]" if variant else "")
        good = sorted((r for r in group if r.ok), key=lambda r: r.spec.seed)
        per_seed = ", ".join(f"s{r.spec.seed}: {r.score:.2f}" for r in good)
        bad = [r for r in group if not r.ok]
        if good:
            s = summarize([r.score for r in good], reps=10_000)
            std = "n/a" if not math.isfinite(s["std"]) else f"{s['std']:.2f}"
            lines.append(f"{title}: {per_seed} | n={s['n']} mean {s['mean']:.2f} ± {std} (std, ddof=1), "
                         f"IQM {s['iqm']:.2f} [{s['iqm_ci'][0]:.2f}, {s['iqm_ci'][1]:.2f}]")
        else:
            lines.append(f"{title}: no finished run")
        for r in sorted(bad, key=lambda r: r.spec.seed):
            lines.append(f"  seed {r.spec.seed} FAILED: {r.error} (log: {r.spec.run_dir / LOG_FILE})")
    return lines


def _finish(results: Sequence[RunResult]) -> int:
    print("\nfinal deterministic evaluation return per seed:")
    for line in summary_lines(results):
        print("  " + line)
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(results)} runs failed: "
              + ", ".join(f"{r.spec.name} (seed {r.spec.seed})" for r in failed), file=sys.stderr)
        return 1
    return 0


# -- polyak train --seeds N ------------------------------------------------------------------
def _vmappable(algo: str, env_id: str) -> bool:
    """An algorithm the jitted loop runs (not A3C or tabular Q-learning) on a JAX environment: a polyak/ or
    gymnax/ id whose Gymnasium registration has a vector_entry_point."""
    if not env_id.startswith(("polyak/", "gymnax/")):
        return False
    spec = gym.registry.get(env_id)
    runs_jitted = algo in registry.names() and registry.entry(algo).jitted_loop
    return runs_jitted and spec is not None and spec.vector_entry_point is not None


def _passthrough(args) -> list[str]:
    """The `polyak train` options of `args` that every seed's run gets unchanged."""
    out: list[str] = ["--env", args.env, "--steps", str(args.steps), "--no-progress",
                      "--eval-episodes", str(args.eval_episodes), "--log-interval", str(args.log_interval)]
    if args.n_envs is not None:
        out += ["--n-envs", str(args.n_envs)]
    for item in args.env_kwarg:
        out += ["--env-kwarg", item]
    for item in args.set:
        out += ["--set", item]
    if args.no_tuned:
        out.append("--no-tuned")
    if args.checkpoint_every:
        out += ["--checkpoint-every", str(args.checkpoint_every)]
    if args.save_buffer:
        out.append("--save-buffer")
    if args.fresh:
        out.append("--fresh")
    if args.keep_checkpoints != 2:
        out += ["--keep-checkpoints", str(args.keep_checkpoints)]
    if getattr(args, "variant", None):
        out += ["--variant", args.variant]
    return out


def seed_specs(args, stamp: str | None = None) -> list[RunSpec]:
    """Seeds S..S+N-1: RUNS_ROOT/ALGO-ENV-sSEED-STAMP each, or RUN_DIR/seedS when --run-dir is given."""
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
    common = _passthrough(args)
    specs = []
    for seed in range(args.seed, args.seed + args.seeds):
        if args.run_dir:
            run_dir = Path(args.run_dir) / f"seed{seed}"
        else:
            run_dir = Path(args.runs_root) / run_folder_name(args.algo, args.env, seed, stamp=stamp)
        run_dir = run_dir.absolute()
        specs.append(RunSpec(args.algo, args.env, seed, run_dir,
                             ["train", args.algo, "--seed", str(seed), "--run-dir", str(run_dir), *common],
                             getattr(args, "variant", None)))
    return specs


def train_many(args) -> int:
    """`polyak train ALGO --seeds N [--workers K] [--backend local|ray] [--address ADDR]`."""
    if args.seeds < 1:
        raise SystemExit(f"--seeds must be >= 1, got {args.seeds}")
    if args.workers is not None and args.workers < 1:
        raise SystemExit(f"--workers must be >= 1, got {args.workers}")
    if args.address and args.backend != "ray":
        raise SystemExit("--address is for --backend ray (the address of a running Ray cluster)")
    if args.backend == "ray":
        try:
            import_ray()
        except ExperimentError as e:
            raise SystemExit(f"polyak train: {e}") from None
    specs = seed_specs(args)
    # The vmapped trainer takes no --checkpoint-every, --save-buffer or --variant: those go to processes.
    host_only = args.checkpoint_every or args.save_buffer or args.variant
    if _vmappable(args.algo, args.env) and args.backend == "local" and args.workers is None and not host_only:
        return _train_vmapped(args, specs)
    k = default_workers(len(specs)) if args.workers is None else args.workers
    where = "Ray" if args.backend == "ray" else f"{k} local worker process{'es' if k != 1 else ''}"
    print(f"polyak {args.algo.upper()} on {args.env}: {args.steps} steps, seeds {specs[0].seed}..{specs[-1].seed} "
          f"on {where}", flush=True)
    for s in specs:
        print(f"  seed {s.seed} -> {s.run_dir}")
    try:
        results = execute(specs, args.backend, k, args.address)
    except ExperimentError as e:
        raise SystemExit(f"polyak train: {e}") from None
    return _finish(results)


def _train_vmapped(args, specs: list[RunSpec]) -> int:
    """All seeds vmapped in one process by `polyak.runs.seeds.train_seeds` (JAX envs, local backend, no --workers).

    The call (hyperparameters resolved as `polyak train` does: polyak/zoo.py's tuned values unless
    --no-tuned, then --set; n_envs taken out)::

        polyak.runs.seeds.train_seeds(
            algo: str, env_id: str, seeds: list[int], steps: int, hyperparameters: dict, *,
            env_kwargs: dict, n_envs: int, run_root: str, run_dir: str | None,
            eval_episodes: int, progress_bar: bool, command: str,
        ) -> list[pathlib.Path]

    It writes each seed's run folder as `polyak train` does (RUN_DIR/seedS, or
    RUNS_ROOT/ALGO-ENV-sSEED-TIMESTAMP) and returns the folders in seed order.
    """
    hp, n_envs, env_kwargs = training_settings(args)
    seeds = [s.seed for s in specs]
    print(f"polyak {args.algo.upper()} on {args.env}: {args.steps} steps, seeds {seeds[0]}..{seeds[-1]} "
          f"vmapped in one process (polyak.runs.seeds)", flush=True)
    t0 = time.perf_counter()
    run_dirs = train_seeds(args.algo, args.env, seeds, args.steps, hp, env_kwargs=env_kwargs,
                           n_envs=n_envs, run_root=args.runs_root, run_dir=args.run_dir,
                           eval_episodes=args.eval_episodes, progress_bar=not args.no_progress,
                           command=" ".join(sys.argv))
    seconds = time.perf_counter() - t0
    return _finish([_result(RunSpec(args.algo, args.env, seed, Path(d), []), 0, seconds)
                    for seed, d in zip(seeds, run_dirs)])


# -- sweeps ---------------------------------------------------------------------------------
SWEEP_KEYS = {"name", "root", "algorithms", "envs", "seeds", "steps", "grid", "set", "env_kwargs",
              "eval_episodes", "log_interval", "tuned", "checkpoint_every"}
CLI_HYPERPARAMETERS = {"net_arch", "action_noise", "n_envs"}  # translated by polyak.cli, not config fields
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SAFE_RE = re.compile(r"^[A-Za-z0-9._+-]*$")
MAX_LABEL = 120


@dataclass
class Sweep:
    """A parsed, validated sweep file."""

    name: str
    root: Path
    algorithms: list[str]
    envs: list[str]
    seeds: list[int]
    steps: int
    grid: dict[str, list[Any]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)  # the [set] table
    env_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)  # per env id, global values merged in
    eval_episodes: int = 10
    log_interval: int = 1000
    tuned: bool = True
    checkpoint_every: int = 0  # steps between a run's checkpoints (0: none; an interrupted run then starts over)
    source: str = "<sweep>"

    def settings(self) -> dict[str, Any]:
        """What every run shares; a finished run is only reused when these are unchanged."""
        return {"steps": self.steps, "grid_keys": sorted(self.grid), "set": self.fixed,
                "env_kwargs": self.env_kwargs, "eval_episodes": self.eval_episodes,
                "log_interval": self.log_interval, "tuned": self.tuned}


def _type_name(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(v), type(v).__name__)


def parse_sweep(data: dict[str, Any], source: str = "<sweep>") -> Sweep:
    """Validate the TOML contents of a sweep file; errors name the file and the key."""

    def fail(msg: str):
        raise SweepFileError(f"{source}: {msg}")

    def need_type(key: str, value: Any, types, what: str):
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            fail(f"'{key}' must be {what}, got a boolean ({value!r})")
        if not isinstance(value, types):
            fail(f"'{key}' must be {what}, got a {_type_name(value)} ({value!r})")
        return value

    unknown = sorted(set(data) - SWEEP_KEYS)
    if unknown:
        fail(f"unknown key(s) {', '.join(repr(k) for k in unknown)}; known: {', '.join(sorted(SWEEP_KEYS))}")
    if "name" not in data:
        fail("'name' is missing (a short name for the sweep; the default root is sweeps/NAME)")
    name = need_type("name", data["name"], str, "a string")
    if not _NAME_RE.match(name):
        fail(f"'name' must be letters, digits, '.', '_' or '-' (it becomes a folder name), got {name!r}")
    root = Path(need_type("root", data["root"], str, "a string (a folder)")) if "root" in data else Path("sweeps") / name

    def str_list(key: str) -> list[str]:
        if key not in data:
            fail(f"'{key}' is missing")
        value = data[key]
        if isinstance(value, str):
            value = [value]
        need_type(key, value, list, "a list of strings")
        if not value:
            fail(f"'{key}' is empty: list at least one")
        for v in value:
            if not isinstance(v, str):
                fail(f"'{key}' must be a list of strings, got the {_type_name(v)} {v!r} in it")
        if len(set(value)) != len(value):
            fail(f"'{key}' lists {sorted({v for v in value if value.count(v) > 1})} more than once")
        return list(value)

    algorithms = str_list("algorithms")
    for a in algorithms:
        if a not in registry.names():
            fail(f"'algorithms': unknown algorithm {a!r}; known: {', '.join(registry.names())}")
    envs = str_list("envs")

    seeds_value = data.get("seeds", 1)
    if isinstance(seeds_value, int) and not isinstance(seeds_value, bool):
        if seeds_value < 1:
            fail(f"'seeds' must be >= 1 (a number of seeds 0..N-1) or a list of seeds, got {seeds_value}")
        seeds = list(range(seeds_value))
    else:
        need_type("seeds", seeds_value, list, "an integer (number of seeds) or a list of integer seeds")
        if not seeds_value:
            fail("'seeds' is an empty list: give at least one seed")
        for s in seeds_value:
            if not isinstance(s, int) or isinstance(s, bool) or s < 0:
                fail(f"'seeds' must hold integers >= 0, got {s!r}")
        if len(set(seeds_value)) != len(seeds_value):
            fail("'seeds' lists a seed more than once")
        seeds = list(seeds_value)

    def positive_int(key: str, default: int) -> int:
        v = need_type(key, data.get(key, default), int, "a positive integer")
        if v < 1:
            fail(f"'{key}' must be >= 1, got {v}")
        return v

    steps = positive_int("steps", 20_000)
    eval_episodes = positive_int("eval_episodes", 10)
    log_interval = positive_int("log_interval", 1000)
    tuned = need_type("tuned", data.get("tuned", True), bool, "true or false")
    checkpoint_every = need_type("checkpoint_every", data.get("checkpoint_every", 0), int,
                                 "a whole number of steps (0: no checkpoints)")
    if checkpoint_every < 0:
        fail(f"'checkpoint_every' must be >= 0, got {checkpoint_every}")

    grid = need_type("grid", data.get("grid", {}), dict, "a table ([grid]) of hyperparameter = [values]")
    if "grid" in data and not grid:
        fail("[grid] is empty: list at least one hyperparameter with its values, e.g. learning_rate = [3e-4, 1e-3], "
             "or remove [grid] to sweep only algorithms x envs x seeds")
    for key, values in grid.items():
        if not isinstance(values, list):
            fail(f"grid.{key} must be a list of values (every one is tried), got a {_type_name(values)} ({values!r}); "
                 f"a single fixed value goes in [set]")
        if not values:
            fail(f"grid.{key} is an empty list: give at least one value")
        canon = [json.dumps(v, sort_keys=True) for v in values]
        if len(set(canon)) != len(canon):
            fail(f"grid.{key} lists a value more than once")
    fixed = need_type("set", data.get("set", {}), dict, "a table ([set]) of hyperparameter = value")
    both = sorted(set(grid) & set(fixed))
    if both:
        fail(f"{', '.join(both)} in both [grid] and [set]: keep each hyperparameter in one of them")

    raw_kwargs = need_type("env_kwargs", data.get("env_kwargs", {}), dict, "a table ([env_kwargs])")
    common = {k: v for k, v in raw_kwargs.items() if not (k in envs and isinstance(v, dict))}
    env_kwargs = {}
    for env in envs:
        merged = dict(common)
        merged.update(raw_kwargs.get(env, {}) if isinstance(raw_kwargs.get(env), dict) else {})
        env_kwargs[env] = merged

    sweep = Sweep(name, root, algorithms, envs, seeds, steps, dict(grid), dict(fixed), env_kwargs, eval_episodes,
                  log_interval, bool(tuned), checkpoint_every, source)
    _check_hyperparameters(sweep, fail)
    _check_envs(sweep, fail)
    return sweep


def _check_hyperparameters(sweep: Sweep, fail) -> None:
    """Every grid point must be valid for every algorithm: unknown names and bad values fail here, not mid-sweep."""
    keys = list(sweep.grid)
    for algo in sweep.algorithms:
        config_cls = registry.algorithm_class(algo).config_cls
        known = {f for f in config_cls.__dataclass_fields__} | CLI_HYPERPARAMETERS
        for where, table in (("grid", sweep.grid), ("set", sweep.fixed)):
            bad = sorted(set(table) - known)
            if bad:
                fail(f"{where}.{bad[0]}: unknown hyperparameter for {algo}; known: {', '.join(sorted(known))}")
        for env in sweep.envs:
            for values in itertools.product(*(sweep.grid[k] for k in keys)):
                point = dict(zip(keys, values))
                hp = with_overrides(algo, tuned_hyperparameters(algo, env) if sweep.tuned else {},
                                    {**sweep.fixed, **point})
                hp.pop("n_envs", None)
                noise = hp.pop("action_noise", None)
                if noise is not None and not (isinstance(noise, str) and re.match(
                        r"^(normal|ou|ornstein_uhlenbeck)(:[0-9.eE+-]+)?$", noise)):
                    fail(f"action_noise must be 'normal:SIGMA' or 'ou:SIGMA', got {noise!r}")
                policy_kwargs = {"net_arch": hp.pop("net_arch")} if "net_arch" in hp else None
                try:
                    config_cls.from_kwargs(hp, policy_kwargs)
                except (HyperparameterError, TypeError, ValueError, KeyError) as e:
                    where = ", ".join(f"{k}={v!r}" for k, v in point.items()) or "[set]"
                    fail(f"invalid hyperparameters for {algo} at {where}: {e}")


def _space_kind(space: gym.Space) -> str:
    return type(space).__name__


def _check_envs(sweep: Sweep, fail) -> None:
    """Every env id must be registered and every algorithm must fit its spaces: a misspelt id or DQN on a
    Box env fails here (and in --dry-run), not run by run."""
    for env_id in sweep.envs:
        if env_id not in gym.registry:
            close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
            fail(f"unknown env id {env_id!r}" + (f"; did you mean {', '.join(map(repr, close))}?" if close else ""))
        try:
            env = gym.make(env_id, **sweep.env_kwargs.get(env_id, {}))
        except Exception as e:  # noqa: BLE001  (any failure to build the env is the sweep file's problem)
            fail(f"cannot make env {env_id!r} with env_kwargs {sweep.env_kwargs.get(env_id, {})}: "
                 f"{type(e).__name__}: {e}")
        obs_kind, act_kind = _space_kind(env.observation_space), _space_kind(env.action_space)
        env.close()
        for algo in sweep.algorithms:
            entry = registry.entry(algo)
            if act_kind not in entry.action_kinds or obs_kind not in entry.observation_kinds:
                fits = [n for n in registry.names() if act_kind in registry.entry(n).action_kinds
                        and obs_kind in registry.entry(n).observation_kinds]
                fail(f"{algo} does not fit {env_id} ({obs_kind} observations, {act_kind} actions; {algo} takes "
                     f"{'/'.join(entry.observation_kinds)} observations and {'/'.join(entry.action_kinds)} actions); "
                     f"algorithms that fit: {', '.join(fits) or 'none'}")


def load_sweep(path: str | Path) -> Sweep:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise SweepFileError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepFileError(f"{path}: not valid TOML ({e})") from None
    return parse_sweep(data, str(path))


def format_value(v: Any) -> tuple[str, bool]:
    """A value for a folder name, and whether that text is exact (no characters replaced)."""
    if isinstance(v, bool):
        return ("true" if v else "false"), True
    if isinstance(v, int):
        return str(v), True
    if isinstance(v, float):
        return repr(v), True  # shortest round-trip: 0.0003, 1e-05
    if isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return "x".join(map(str, v)) or "none", True  # net_arch [64, 64] -> 64x64
    text = v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "_"
    return safe, safe == text


def variant_label(point: dict[str, Any]) -> str:
    """`key=value,key=value` over the sorted grid keys (empty for a sweep without a grid)."""
    parts, exact = [], True
    for key in sorted(point):
        text, ok = format_value(point[key])
        exact &= ok
        parts.append(f"{key}={text}")
    label = ",".join(parts)
    if not exact or len(label) > MAX_LABEL:  # lossy or too long: a hash of the exact values keeps names apart
        import hashlib

        digest = hashlib.sha1(json.dumps(point, sort_keys=True).encode()).hexdigest()[:8]
        label = label[:MAX_LABEL] + "," + digest
    return label


def run_name(algo: str, env: str, point: dict[str, Any], seed: int) -> str:
    """`ALGO-ENV[-key=value,...]-sSEED`: readable, deterministic, safe as a folder name."""
    label = variant_label(point)
    return run_folder_name(algo, env, seed, label)


def expand(sweep: Sweep) -> list[RunSpec]:
    """algorithms x envs x grid points x seeds, in that nesting order, as runs under the sweep root."""
    keys = list(sweep.grid)
    root = sweep.root.absolute()
    specs: list[RunSpec] = []
    for algo in sweep.algorithms:
        for env in sweep.envs:
            for values in itertools.product(*(sweep.grid[k] for k in keys)):
                point = dict(zip(keys, values))
                variant = variant_label(point) or None
                for seed in sweep.seeds:
                    run_dir = root / run_name(algo, env, point, seed)
                    argv = ["train", algo, "--env", env, "--steps", str(sweep.steps), "--seed", str(seed),
                            "--run-dir", str(run_dir), "--no-progress", "--eval-episodes", str(sweep.eval_episodes),
                            "--log-interval", str(sweep.log_interval)]
                    if not sweep.tuned:
                        argv.append("--no-tuned")
                    if sweep.checkpoint_every:
                        argv += ["--checkpoint-every", str(sweep.checkpoint_every)]
                    for k, v in {**sweep.fixed, **point}.items():
                        argv += ["--set", f"{k}={json.dumps(v)}"]
                    for k, v in sweep.env_kwargs.get(env, {}).items():
                        argv += ["--env-kwarg", f"{k}={json.dumps(v)}"]
                    if variant:
                        argv += ["--variant", variant]
                    specs.append(RunSpec(algo, env, seed, run_dir, argv, variant))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):  # cannot happen with the hash rule, but never let two runs share a folder
        dup = sorted({n for n in names if names.count(n) > 1})
        raise SweepFileError(f"{sweep.source}: two grid points map to the same folder name {dup[0]}")
    return specs


def plan(sweep: Sweep) -> tuple[list[RunSpec], list[RunSpec], list[RunSpec]]:
    """(to run, finished -> skipped, unfinished -> resumed by `polyak train` from their latest checkpoint)."""
    todo, skip, redo = [], [], []
    for spec in expand(sweep):
        if is_finished(spec.run_dir):
            skip.append(spec)
        else:
            todo.append(spec)
            if spec.run_dir.exists():
                redo.append(spec)
    return todo, skip, redo


def _check_settings(sweep: Sweep) -> None:
    """Refuse to resume into a root whose finished runs were made with other shared settings."""
    path = sweep.root / SWEEP_FILE
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text()).get("settings")
    except (OSError, json.JSONDecodeError):
        return
    new = json.loads(json.dumps(sweep.settings()))
    if old is not None and old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise SweepFileError(
            f"{sweep.source}: {path} was written with other settings ({', '.join(diff)}: "
            f"{', '.join(f'{k}={old.get(k)!r}' for k in diff)}; now {', '.join(f'{k}={new.get(k)!r}' for k in diff)}). "
            "Finished runs would mix settings: give the sweep another name or root, or delete the old root")


def write_sweep_json(sweep: Sweep, specs: Sequence[RunSpec]) -> Path:
    sweep.root.mkdir(parents=True, exist_ok=True)
    data = {"name": sweep.name, "source": sweep.source, "root": str(sweep.root),
            "written": time.strftime("%Y-%m-%d %H:%M:%S"),
            "algorithms": sweep.algorithms, "envs": sweep.envs, "seeds": sweep.seeds, "grid": sweep.grid,
            "settings": sweep.settings(),
            "runs": [{"name": s.name, "algorithm": s.algo, "env": s.env, "seed": s.seed, "variant": s.variant,
                      "command": "polyak " + " ".join(s.argv)} for s in specs]}
    path = sweep.root / SWEEP_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
    return path


def _existing_result(spec: RunSpec) -> RunResult:
    try:
        return RunResult(spec, True, json.loads((spec.run_dir / EVAL_FILE).read_text()), skipped=True)
    except (OSError, json.JSONDecodeError) as e:
        return RunResult(spec, False, error=f"cannot read {spec.run_dir / EVAL_FILE}: {e}", skipped=True)


def sweep_command(args) -> int:
    """`polyak sweep FILE [--backend local|ray] [--workers K] [--address ADDR] [--dry-run]`."""
    try:
        sweep = load_sweep(args.file)
        _check_settings(sweep)
        todo, skip, redo = plan(sweep)
    except SweepFileError as e:
        raise SystemExit(f"polyak sweep: {e}") from None
    total = len(todo) + len(skip)
    n_points = math.prod(len(v) for v in sweep.grid.values())
    print(f"sweep {sweep.name}: {len(sweep.algorithms)} algorithm(s) x {len(sweep.envs)} env(s) x {n_points} grid "
          f"point(s) x {len(sweep.seeds)} seed(s) = {total} runs in {sweep.root}; {len(skip)} finished, "
          f"{len(todo)} to run ({len(redo)} unfinished, resumed)", flush=True)
    if args.dry_run:
        redo_names = {s.name for s in redo}
        for s in skip:
            print(f"  skip  {s.name}  (finished)")
        for s in todo:
            print(f"  {'resume' if s.name in redo_names else 'run   '}  {s.name}"
                  + ("  (unfinished: resumes from its latest checkpoint, or starts over without one)"
                     if s.name in redo_names else ""))
        return 0
    if args.address and args.backend != "ray":
        raise SystemExit("polyak sweep: --address is for --backend ray (the address of a running Ray cluster)")
    if args.workers is not None and args.workers < 1:
        raise SystemExit(f"polyak sweep: --workers must be >= 1, got {args.workers}")
    if args.backend == "ray":
        try:
            import_ray()
        except ExperimentError as e:
            raise SystemExit(f"polyak sweep: {e}") from None
    write_sweep_json(sweep, expand(sweep))
    try:
        results = execute(todo, args.backend, args.workers, args.address)
    except ExperimentError as e:
        raise SystemExit(f"polyak sweep: {e}") from None
    results = [_existing_result(s) for s in skip] + list(results)
    order = {s.name: i for i, s in enumerate(expand(sweep))}
    results.sort(key=lambda r: order.get(r.spec.name, 0))
    code = _finish(results)
    print(f"report: polyak report {sweep.root} --out {sweep.root / 'report'}")
    return code
