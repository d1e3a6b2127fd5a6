"""MuJoCo comparison: polyak's SAC, TD3, TQC and CrossQ against Stable-Baselines3, sb3-contrib and SBX, same run.

Run it as ``python -m benchmarks.bench_mujoco`` (``--help`` lists the options). Needs the optional
benchmark dependencies (``pip install torch==2.13.0`` first on CPU-only machines, then
``pip install -e ".[bench]"``: stable-baselines3, sb3-contrib, sbx-rl, gymnasium[mujoco]).

Each (env, algorithm, library, seed) is one training run in its own fresh Python subprocess, one after
the other (interleaved over libraries within a seed, so slow drifts of a shared machine hit every library
alike), all with the hyperparameters of :class:`MujocoConfig`, given explicitly and identically to every
library (polyak without its observation normaliser, which the peers do not have). Every ``--eval-every``
environment steps, and at the end, the deterministic policy is evaluated for ``--eval-episodes`` episodes
on a separate env; evaluation time is not counted as training time. Recorded per run:

* **steps/s**: environment steps of ``learn`` over its wall time less evaluation time (compilation and
  the ``learning_starts`` warm-up included); **steady steps/s**: over the second half of the run;
* **final return**: the last evaluation's mean; per (env, algorithm, library) the table shows mean ± std
  over seeds and the IQM with a stratified-bootstrap 95% interval (``polyak.runs.report``);
* **time to threshold**: training wall-clock until the first evaluation at or above ``--threshold``.

Peers: SB3 (SAC, TD3), sb3-contrib (TQC, CrossQ), SBX (SAC, TD3, TQC, CrossQ). ``--out FILE`` writes every
raw number as JSON, rewritten after each run, so a comparison stopped part-way keeps the runs it finished;
``--resume`` reads ``--out`` first and runs only the (env, algorithm, library, seed) it lacks, so the
full comparison (hours of CPU) can be spread over several sessions. ``--first-seed K`` starts the seeds at K, so
two processes, one per core, can run disjoint seeds into their own ``--out`` files; ``--report FILE ...`` prints
the tables of several such files together and runs nothing. ``--worker TASK`` is the subprocess side.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import inspect
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.bench import RESULT_MARKER, library_versions, machine_info, run_worker

ALGOS = ("sac", "td3", "tqc", "crossq")
LIBS = ("polyak", "sb3", "sbx")  # "sb3" means sb3-contrib for TQC and CrossQ
LIB_LABELS = {"polyak": "polyak", "sb3": "SB3 / sb3-contrib", "sbx": "SBX"}
ENVS = ("HalfCheetah-v5", "Hopper-v5")
DEFAULT_THRESHOLDS = {"HalfCheetah-v5": 3000.0, "Hopper-v5": 1000.0}
VERSION_PACKAGES = ("polyak", "stable-baselines3", "sb3-contrib", "sbx-rl", "jax", "torch", "gymnasium", "mujoco")


@dataclass(frozen=True)
class MujocoConfig:
    """Hyperparameters given explicitly, and identically, to every library (SB3/SBX MuJoCo-style defaults)."""

    learning_rate: float = 3e-4  # CrossQ: crossq_learning_rate
    batch_size: int = 256
    tau: float = 0.005
    gamma: float = 0.99
    learning_starts: int = 5000
    net_arch: tuple[int, ...] = (256, 256)
    n_critics: int = 2
    policy_delay: int = 2  # TD3
    exploration_sigma: float = 0.1  # TD3
    n_quantiles: int = 25  # TQC
    top_quantiles_to_drop_per_net: int = 2  # TQC
    crossq_learning_rate: float = 1e-3
    crossq_policy_delay: int = 3
    crossq_critic_arch: tuple[int, ...] = (1024, 1024)


def _noise(env_id: str, sigma: float, lib: str) -> Any:
    import gymnasium

    n = int(np.prod(gymnasium.make(env_id).action_space.shape))
    if lib == "polyak":
        import polyak
        return polyak.NormalActionNoise(0.0, sigma)
    from stable_baselines3.common.noise import NormalActionNoise
    return NormalActionNoise(np.zeros(n), sigma * np.ones(n))


def _accepts(cls: Any, name: str) -> bool:
    return name in inspect.signature(cls.__init__).parameters


def build(lib: str, algo: str, env_id: str, seed: int, steps: int, cfg: MujocoConfig,
          polyak_cls: type | None = None) -> Any:
    """The model of `lib` for `algo`, with `cfg`'s values given explicitly (`polyak_cls`: a variant of polyak's class
    for `algo`, as `benchmarks.td3_sbx_variant` builds)."""
    if lib == "polyak":
        import polyak
        cls = polyak_cls or polyak.ALGORITHMS[algo]
        extra: dict[str, Any] = {"normalize_obs": False}
    elif lib == "sb3":
        import sb3_contrib
        import stable_baselines3
        cls = {"sac": stable_baselines3.SAC, "td3": stable_baselines3.TD3, "tqc": sb3_contrib.TQC,
               "crossq": sb3_contrib.CrossQ}[algo]
        extra = {"device": "cpu", "verbose": 0}
    else:
        import sbx
        cls = {"sac": sbx.SAC, "td3": sbx.TD3, "tqc": sbx.TQC, "crossq": sbx.CrossQ}[algo]
        extra = {"verbose": 0}
    lr = cfg.crossq_learning_rate if algo == "crossq" else cfg.learning_rate
    kwargs: dict[str, Any] = dict(seed=seed, learning_rate=lr, buffer_size=max(steps, 1000), batch_size=cfg.batch_size,
                                  gamma=cfg.gamma, learning_starts=cfg.learning_starts, train_freq=1, gradient_steps=1,
                                  **extra)
    if algo != "crossq":
        kwargs["tau"] = cfg.tau
    if lib == "sbx" and _accepts(cls, "qf_learning_rate"):
        kwargs["qf_learning_rate"] = lr
    policy_kwargs: dict[str, Any] = {"net_arch": list(cfg.net_arch), "n_critics": cfg.n_critics}
    if algo == "td3":
        kwargs.update(policy_delay=cfg.policy_delay, target_policy_noise=0.2, target_noise_clip=0.5,
                      action_noise=_noise(env_id, cfg.exploration_sigma, lib))
    else:
        kwargs.update(ent_coef="auto")
    if algo == "sac" and lib == "sbx":
        kwargs["policy_delay"] = 1
    if algo == "tqc":
        kwargs["top_quantiles_to_drop_per_net"] = cfg.top_quantiles_to_drop_per_net
        if lib == "polyak":
            kwargs["n_quantiles"] = cfg.n_quantiles
        else:
            policy_kwargs["n_quantiles"] = cfg.n_quantiles
    if algo == "crossq":
        kwargs["policy_delay"] = cfg.crossq_policy_delay
        policy_kwargs["net_arch"] = {"pi": list(cfg.net_arch), "qf": list(cfg.crossq_critic_arch)}
        # batch renormalisation: momentum 0.99 (Flax's convention; torch's 0.01), warm-up 100k, Adam beta_1 0.5:
        # the defaults of all three libraries
    return cls("MlpPolicy", env_id, policy_kwargs=policy_kwargs, **kwargs)


def evaluate(model: Any, env_id: str, episodes: int, seed: int) -> float:
    """Mean return of the deterministic policy over `episodes` episodes (seeded resets), any library."""
    import gymnasium

    env = gymnasium.make(env_id)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=10_000 + 100 * seed + i)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


class Clock:
    """Training time: wall time of `learn` less the evaluations made inside it."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.eval_s = 0.0

    def train_s(self) -> float:
        return time.perf_counter() - self.start - self.eval_s


def run_one(lib: str, algo: str, env_id: str, seed: int, steps: int, eval_every: int, eval_episodes: int,
            cfg: MujocoConfig, polyak_cls: type | None = None) -> dict[str, Any]:
    model = build(lib, algo, env_id, seed, steps, cfg, polyak_cls)
    evals: list[list[float]] = []
    half: list[float] = []
    clock = Clock()

    def observe(num_timesteps: int) -> None:
        if not half and num_timesteps >= steps // 2:
            half.extend([num_timesteps, clock.train_s()])
        if eval_every and num_timesteps % eval_every == 0 and num_timesteps < steps:
            t0 = time.perf_counter()
            value = evaluate(model, env_id, eval_episodes, seed)
            clock.eval_s += time.perf_counter() - t0
            evals.append([num_timesteps, clock.train_s(), value])

    if lib == "polyak":
        callback: Any = lambda m: observe(m.num_timesteps)  # noqa: E731
    else:
        from stable_baselines3.common.callbacks import BaseCallback

        class Observe(BaseCallback):
            def _on_step(self) -> bool:
                observe(self.num_timesteps)
                return True

        callback = Observe()
    clock.start = time.perf_counter()
    model.learn(steps, callback=callback)
    train_s = clock.train_s()
    done = int(model.num_timesteps)
    final = evaluate(model, env_id, eval_episodes, seed)
    evals.append([done, train_s, final])
    steady = (done - half[0]) / (train_s - half[1]) if half and train_s > half[1] and done > half[0] else None
    return {"lib": lib, "algo": algo, "env": env_id, "seed": seed, "status": "ok", "steps": done, "train_s": train_s,
            "steps_per_s": done / train_s, "steady_steps_per_s": steady, "final_return": final, "evals": evals}


def time_to(evals: list[list[float]], threshold: float) -> float | None:
    for _step, seconds, value in evals:
        if value >= threshold:
            return seconds
    return None


def summarize(runs: list[dict[str, Any]], thresholds: dict[str, float]) -> list[dict[str, Any]]:
    from polyak.runs.report import iqm, stratified_bootstrap_ci

    rows = []
    keys = sorted({(r["env"], r["algo"], r["lib"]) for r in runs if r.get("status") == "ok"},
                  key=lambda k: (k[0], ALGOS.index(k[1]), LIBS.index(k[2])))
    for env_id, algo, lib in keys:
        group = [r for r in runs if r.get("status") == "ok" and (r["env"], r["algo"], r["lib"]) == (env_id, algo, lib)]
        finals = np.array([r["final_return"] for r in group])
        times = [time_to(r["evals"], thresholds.get(env_id, np.inf)) for r in group]
        reached = [t for t in times if t is not None]
        ci = stratified_bootstrap_ci(finals, iqm, reps=2000, rng=0) if len(finals) > 1 else None
        rows.append({
            "env": env_id, "algo": algo, "lib": lib, "seeds": len(group),
            "steps_per_s": statistics.median(r["steps_per_s"] for r in group),
            "steady_steps_per_s": statistics.median(r["steady_steps_per_s"] or 0.0 for r in group),
            "return_mean": float(finals.mean()), "return_std": float(finals.std()),
            "return_iqm": float(iqm(finals)),
            "return_iqm_ci": None if ci is None else [float(ci[0]), float(ci[1])],
            "reached_threshold": f"{len(reached)}/{len(group)}",
            "time_to_threshold_s": statistics.median(reached) if len(reached) == len(group) else None,
        })
    return rows


def markdown(rows: list[dict[str, Any]], thresholds: dict[str, float]) -> str:
    out = ["| env | algorithm | library | seeds | steps/s | steady steps/s | final return mean ± std | IQM [95% CI] "
           "| reached threshold | median time to threshold (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = r["return_iqm_ci"]
        ci_text = f" [{ci[0]:.0f}, {ci[1]:.0f}]" if isinstance(ci, list) and len(ci) == 2 else ""
        ttt = "—" if r["time_to_threshold_s"] is None else f"{r['time_to_threshold_s']:.0f}"
        out.append(f"| {r['env']} | {r['algo']} | {LIB_LABELS[r['lib']]} | {r['seeds']} | {r['steps_per_s']:.0f} | "
                   f"{r['steady_steps_per_s']:.0f} | {r['return_mean']:.0f} ± {r['return_std']:.0f} | "
                   f"{r['return_iqm']:.0f}{ci_text} | {r['reached_threshold']} (≥ {thresholds.get(r['env'], 0):.0f}) "
                   f"| {ttt} |")
    out.append("")
    out.append("| env | algorithm | polyak / SBX steps/s | polyak / SB3 steps/s |")
    out.append("|---|---|---|---|")
    by = {(r["env"], r["algo"], r["lib"]): r for r in rows}
    for env_id, algo in sorted({(r["env"], r["algo"]) for r in rows}, key=lambda k: (k[0], ALGOS.index(k[1]))):
        p = by.get((env_id, algo, "polyak"))
        ratio = lambda lib: (f"{p['steps_per_s'] / by[(env_id, algo, lib)]['steps_per_s']:.2f}×"  # noqa: E731
                             if p and (env_id, algo, lib) in by else "—")
        out.append(f"| {env_id} | {algo} | {ratio('sbx')} | {ratio('sb3')} |")
    return "\n".join(out)


def _csv(allowed: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}; got {text!r}")
        return items
    return parse


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_mujoco", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", type=_csv(ENVS), default=list(ENVS), help=f"comma-separated from {','.join(ENVS)}")
    p.add_argument("--algos", type=_csv(ALGOS), default=list(ALGOS), help=f"comma-separated from {','.join(ALGOS)}")
    p.add_argument("--libs", type=_csv(LIBS), default=list(LIBS),
                   help="comma-separated from polyak,sb3,sbx (sb3: Stable-Baselines3, sb3-contrib for TQC and CrossQ)")
    p.add_argument("--seeds", type=int, default=3, help="seeds FIRST..FIRST+N-1 (default 3)")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--steps", type=int, default=100_000, help="environment steps per run (default 100000)")
    p.add_argument("--learning-starts", type=int, default=MujocoConfig.learning_starts,
                   help=f"random warm-up steps (default {MujocoConfig.learning_starts})")
    p.add_argument("--eval-every", type=int, default=10_000, help="steps between evaluations (0: only at the end)")
    p.add_argument("--eval-episodes", type=int, default=5, help="deterministic episodes per evaluation (default 5)")
    p.add_argument("--threshold", action="append", default=[], metavar="ENV=RETURN",
                   help="return threshold for the time-to-threshold column (default "
                        + ", ".join(f"{k}={v:.0f}" for k, v in DEFAULT_THRESHOLDS.items()) + ")")
    p.add_argument("--out", help="write every raw number as JSON (rewritten after each run)")
    p.add_argument("--resume", action="store_true",
                   help="keep the finished runs already in --out (same --steps, --learning-starts, --eval-every and "
                        "--eval-episodes) and run only the missing ones")
    p.add_argument("--report", nargs="+", metavar="FILE",
                   help="run nothing: print the tables of the runs in these --out files together (e.g. the seeds "
                        "that separate processes, one per core, wrote with --first-seed)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


RUN_SETTINGS = ("steps", "learning_starts", "eval_every", "eval_episodes")


def _resumed_runs(args) -> list[dict[str, Any]]:
    """The runs of an earlier `--out` file, refused when they were made with other run settings."""
    if not args.out:
        raise SystemExit("--resume needs --out FILE (the file whose finished runs it keeps)")
    try:
        with open(args.out) as f:
            earlier = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"--resume: cannot read {args.out}: {e}") from e
    differ = [k for k in RUN_SETTINGS if earlier.get("args", {}).get(k) != getattr(args, k)]
    if differ:
        raise SystemExit(f"--resume: {args.out} was written with other run settings ("
                         + ", ".join(f"{k} {earlier['args'].get(k)} there, {getattr(args, k)} now" for k in differ)
                         + "); use another --out")
    return list(earlier.get("runs", []))


def _report_runs(paths: list[str]) -> list[dict[str, Any]]:
    """The runs of several --out files; they must share their run settings, and a (env, algo, lib, seed) may appear
    in only one of them."""
    runs: list[dict[str, Any]] = []
    settings: dict[str, Any] | None = None
    for path in paths:
        try:
            with open(path) as f:
                payload = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"--report: cannot read {path}: {e}") from e
        these = {k: payload.get("args", {}).get(k) for k in RUN_SETTINGS}
        if settings is not None and these != settings:
            raise SystemExit(f"--report: {path} was written with other run settings ({these}) than {paths[0]} "
                             f"({settings})")
        settings = these
        runs.extend(payload.get("runs", []))
    ok = [(r["env"], r["algo"], r["lib"], r["seed"]) for r in runs if r.get("status") == "ok"]
    twice = sorted({k for k in ok if ok.count(k) > 1})
    if twice:
        raise SystemExit(f"--report: these runs appear in more than one file: {twice}")
    return runs


def _write(args, cfg, thresholds: dict[str, float], runs: list[dict[str, Any]]) -> None:
    """Write --out atomically (a temporary file renamed over it): a stop mid-write keeps the previous file."""
    payload = {"date": datetime.datetime.now().isoformat(), "machine": machine_info(),
               "versions": library_versions(VERSION_PACKAGES), "config": dataclasses.asdict(cfg),
               "args": vars(args), "thresholds": thresholds, "runs": runs, "summary": summarize(runs, thresholds)}
    tmp = f"{args.out}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, args.out)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    cfg = dataclasses.replace(MujocoConfig(), learning_starts=args.learning_starts)
    if args.worker:
        lib, algo, env_id, seed = args.worker.split(":")
        result = run_one(lib, algo, env_id, int(seed), args.steps, args.eval_every, args.eval_episodes, cfg)
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return 0
    thresholds = dict(DEFAULT_THRESHOLDS)
    for item in args.threshold:
        key, _, value = item.partition("=")
        thresholds[key] = float(value)
    if args.report:
        print(markdown(summarize(_report_runs(args.report), thresholds), thresholds))
        return 0
    runs = _resumed_runs(args) if args.resume else []
    done = {(r["env"], r["algo"], r["lib"], r["seed"]) for r in runs if r.get("status") == "ok"}
    for env_id in args.envs:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for algo in args.algos:
                for lib in args.libs:
                    if (env_id, algo, lib, seed) in done:
                        continue
                    cmd = [sys.executable, "-m", "benchmarks.bench_mujoco", "--worker", f"{lib}:{algo}:{env_id}:{seed}",
                           "--steps", str(args.steps), "--learning-starts", str(args.learning_starts),
                           "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes)]
                    result = run_worker(cmd)
                    result.setdefault("lib", lib)
                    result.setdefault("algo", algo)
                    result.setdefault("env", env_id)
                    result.setdefault("seed", seed)
                    result["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
                    runs = [r for r in runs if (r["env"], r["algo"], r["lib"], r["seed"]) != (env_id, algo, lib, seed)]
                    runs.append(result)
                    state = (f"{result['steps_per_s']:.0f} steps/s, return {result['final_return']:.0f}"
                             if result.get("status") == "ok" else result.get("error", "")[-300:])
                    print(f"[{datetime.datetime.now():%H:%M:%S}] {env_id} {algo} {lib} seed {seed}: {state} "
                          f"(other load {result.get('other_load_cores') or 0:.2f} cores)", file=sys.stderr, flush=True)
                    if args.out:
                        _write(args, cfg, thresholds, runs)
    rows = summarize(runs, thresholds)
    print(markdown(rows, thresholds))
    print(f"\n{args.steps} steps, seeds {args.first_seed}..{args.first_seed + args.seeds - 1}, "
          f"learning_starts {args.learning_starts}; "
          f"hyperparameters: {dataclasses.asdict(cfg)}; machine: {machine_info()}")
    if args.out:
        _write(args, cfg, thresholds, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
