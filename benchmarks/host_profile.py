"""Where a step of the off-policy host loop goes: microseconds per environment step, phase by phase.

Run it as ``python -m benchmarks.host_profile`` (``--help`` lists the options). Each (algorithm, mode)
trains the benchmark's model (``benchmarks.bench.build_polyak``: the identical hyperparameters of
``BenchConfig``, one env) for ``--steps`` steps in its own fresh subprocess, with timers wrapped around
the pieces of the real ``learn`` loop; only the second half of the run is counted (compilation and
warm-up are over: one env step and one gradient step per step). Modes: ``sb3-order`` (the default:
the action after the step's update) and ``overlap`` (``act_before_update=True``: the action before the
update, which then runs while the env steps). Phases, per environment step:

* ``env.step``: the Gymnasium env's own ``step`` (plus ``reset`` at episode ends);
* ``stepper``: the single-env stepper around it (output checks, arrays, episode bookkeeping);
* ``checks``: the loop's finiteness checks of observations and rewards;
* ``to_env``: rescaling the action from [-1, 1] to the env's bounds;
* ``pack``: filling the one packed host->device array;
* ``dispatch <call>``: time inside each jitted call, i.e. until it returns (dispatch, or waiting for the
  inputs' producers where the call must);
* ``wait for action``: ``jax.device_get`` of the action (and the non-finite flag): the device still busy;
* ``other``: everything else in the loop (episode returns, logger, callback, Python).

Wall time per step is the sum. Timers cost about 1 µs each. ``--out FILE`` writes the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

RESULT_MARKER = "@@host-profile "
MODES = {"sb3-order": False, "overlap": True}


class Timers:
    """Accumulated seconds per phase, counted only once `on` is set."""

    def __init__(self) -> None:
        self.on = False
        self.total: dict[str, float] = defaultdict(float)

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            if not self.on:
                return fn(*args, **kwargs)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[name] += time.perf_counter() - t0
        return timed


class TimedJit:
    """A jitted function with a timer around its calls; `lower` etc. pass through (compile_ahead)."""

    def __init__(self, timers: Timers, name: str, fn) -> None:
        self._fn, self._call = fn, timers.wrap(name, fn)

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def __getattr__(self, item):
        return getattr(self._fn, item)


class TimedJax:
    """The `jax` module as the host loop sees it, with `device_get` timed."""

    def __init__(self, timers: Timers, jax_module) -> None:
        self._jax, self.device_get = jax_module, timers.wrap("wait for action", jax_module.device_get)

    def __getattr__(self, item):
        return getattr(self._jax, item)


def profile(algo: str, overlap: bool, steps: int, seed: int, env_id: str) -> dict[str, Any]:
    import jax

    import polyak.algos.offpolicy.host as host_module
    from benchmarks.bench import BenchConfig, build_polyak

    timers = Timers()
    model = build_polyak(algo, BenchConfig(env_id=env_id), seed, act_before_update=overlap)
    names = {"store": "dispatch store", "store_and_act": "dispatch store_and_act"}
    fns = dict(model._fns)
    for key, label in names.items():
        fns[key] = TimedJit(timers, label, fns[key])
    for key, label in (("train", "dispatch train"), ("update_phase", "dispatch update")):
        factory, made = fns[key], {}

        def timed_factory(n, factory=factory, made=made, label=label):
            if n not in made:
                made[n] = TimedJit(timers, label if n > 0 else "dispatch collect", factory(n))
            return made[n]
        fns[key] = timed_factory
    model._fns = fns
    host_module.jax = TimedJax(timers, jax)
    env = model.stepper.env
    env.step = timers.wrap("env.step", env.step)
    env.reset = timers.wrap("env.step", env.reset)
    model.stepper.step = timers.wrap("stepper", model.stepper.step)
    model.scaler.to_env = timers.wrap("to_env", model.scaler.to_env)
    model._step_envs = timers.wrap("checks", model._step_envs)
    columns = model.spec.columns
    fill = type(columns).fill
    type(columns).fill = timers.wrap("pack", fill)
    half = steps // 2
    mark: dict[str, float] = {}

    def callback(m) -> None:
        if not timers.on and m.num_timesteps >= half:
            timers.on, mark["t"], mark["step"] = True, time.perf_counter(), m.num_timesteps

    model.learn(steps, callback=callback)
    jax.block_until_ready(model.learner)
    wall = time.perf_counter() - mark["t"]
    n = model.num_timesteps - mark["step"]
    t = dict(timers.total)
    # nested timers: checks contains stepper and to_env, stepper contains env.step
    t["checks"] -= t.get("stepper", 0.0) + t.get("to_env", 0.0)
    t["stepper"] -= t.get("env.step", 0.0)
    t["other"] = wall - sum(t.values())
    return {"algo": algo, "mode": "overlap" if overlap else "sb3-order", "env": env_id, "steps_counted": n,
            "steps_per_s": n / wall, "us_per_step": {k: 1e6 * v / n for k, v in t.items()},
            "total_us": 1e6 * wall / n}


def spawn(algo: str, mode: str, steps: int, seed: int, env_id: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.host_profile", "--worker", f"{algo}:{mode}", "--steps", str(steps),
           "--seed", str(seed), "--env", env_id]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    raise RuntimeError(f"worker {algo}:{mode} failed:\n{proc.stderr[-3000:]}")


ORDER = ["env.step", "stepper", "checks", "to_env", "pack", "dispatch store", "dispatch train", "dispatch collect",
         "dispatch store_and_act", "dispatch update", "wait for action", "other"]


def table(results: list[dict[str, Any]]) -> str:
    """Median µs per step per phase, one column per (algorithm, mode)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[(r["algo"], r["mode"])].append(r)
    cols = sorted(groups)
    phases = [p for p in ORDER if any(p in r["us_per_step"] for r in results)]
    head = "| phase (µs per step) | " + " | ".join(f"{a.upper()} {m}" for a, m in cols) + " |"
    lines = [head, "|---" + "|---:" * len(cols) + "|"]
    for p in phases:
        cells = [statistics.median(r["us_per_step"].get(p, 0.0) for r in groups[c]) for c in cols]
        lines.append(f"| {p} | " + " | ".join(f"{v:,.0f}" for v in cells) + " |")
    lines.append("| **wall per step** | " + " | ".join(
        f"**{statistics.median(r['total_us'] for r in groups[c]):,.0f}**" for c in cols) + " |")
    lines.append("| steps/s | " + " | ".join(
        f"{statistics.median(r['steps_per_s'] for r in groups[c]):,.0f}" for c in cols) + " |")
    return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.host_profile",
                                description="Microseconds per environment step of polyak's off-policy host loop, "
                                            "phase by phase, in the SB3 order and with act_before_update (overlap).")
    p.add_argument("--algos", default="sac,td3", help="comma-separated from sac,td3 (default: sac,td3)")
    p.add_argument("--modes", default="sb3-order,overlap", help="comma-separated from sb3-order,overlap")
    p.add_argument("--steps", type=int, default=6000, help="environment steps per run; the 2nd half is counted")
    p.add_argument("--repeats", type=int, default=1, help="runs per (algorithm, mode), interleaved; medians shown")
    p.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    p.add_argument("--env", default="Pendulum-v1", help="Gymnasium env id (default Pendulum-v1)")
    p.add_argument("--out", help="write the raw numbers as JSON")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.worker:
        algo, mode = args.worker.split(":")
        print(RESULT_MARKER + json.dumps(profile(algo, MODES[mode], args.steps, args.seed, args.env)), flush=True)
        return 0
    algos, modes = args.algos.split(","), args.modes.split(",")
    bad = [a for a in algos if a not in ("sac", "td3")] + [m for m in modes if m not in MODES]
    if bad:
        raise SystemExit(f"unknown --algos/--modes entries: {bad}")
    results = []
    for rep in range(args.repeats):
        for algo in algos:
            for mode in modes:
                r = spawn(algo, mode, args.steps, args.seed, args.env)
                r["repeat"] = rep
                print(f"[{rep + 1}/{args.repeats}] {algo} {mode}: {r['steps_per_s']:.1f} steps/s", file=sys.stderr,
                      flush=True)
                results.append(r)
    print(table(results))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"argv": sys.argv[1:], "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
