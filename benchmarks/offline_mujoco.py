"""Offline RL on MuJoCo, D4RL-style datasets made here: TD3+BC, IQL, AWAC, CQL and behaviour cloning.

    python -m benchmarks.offline_mujoco data ENV --out DIR [--sac-steps N] [--dataset-steps N]
    python -m benchmarks.offline_mujoco train ENV --out DIR [--algos td3_bc,iql,awac,cql,bc] [--steps N]
        [--seeds 0,1,2] [--datasets medium,medium-replay,medium-expert] [--algo-steps cql=N] [--set KEY=VALUE]
    python -m benchmarks.offline_mujoco table --out DIR

``data`` trains SAC (defaults, learning_starts 5000, seed 0) on ENV with every training episode recorded
(`polyak.data.datasets.EpisodeRecorder`), evaluating it (3 deterministic episodes) and saving a checkpoint every
``--eval-every`` steps. D4RL's dataset kinds, made from that one run:

* **medium**: the first checkpoint whose D4RL-normalised score reaches ``--medium-score`` (default 30: "about a
  third of the expert"), ``--dataset-steps`` transitions of its stochastic policy;
* **medium-replay**: every episode the SAC run trained on up to that checkpoint (its replay stream);
* **medium-expert**: medium plus ``--dataset-steps`` transitions of the best checkpoint's stochastic policy (the
  "expert" of this budget: its score is printed and recorded, and is far below D4RL's 1M-step expert).

``train`` learns each algorithm from each dataset with polyak's defaults (CORL's settings) for ``--steps``
gradient steps, all seeds vmapped in one jitted call per chunk (`offline.learner.train_chunk_seeds`: the seeds
share the dataset's buffer), then evaluates each seed with ``--eval-episodes`` deterministic episodes. ``bc`` is
behaviour cloning: TD3+BC with alpha = 0 (its actor loss is then the mean squared error to the dataset's actions;
the critics it also trains are never used). IQL's rewards are scaled by 1000 / (max - min episode return) of the
dataset and its cosine policy schedule spans the run (CORL's MuJoCo settings). Scores are normalised with D4RL's reference returns (the v2 envs').
Results go to DIR/results.jsonl, one line per (algorithm, dataset, seed); ``table`` prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.d3rlpy_side_by_side import D4RL_REFERENCE, d4rl_score
from polyak.runs.run import parse_overrides

DATASETS = ("medium-replay", "medium", "medium-expert")
ALGOS = ("bc", "td3_bc", "iql", "awac", "cql")
EVAL_SEED = 10_000  # evaluation episode k of seed s is reset with seed EVAL_SEED + 100 s + k


def dataset_id(env_id: str, kind: str) -> str:
    return f"polyak/{env_id}/{kind}-v0"


def collect_steps(env, model, n_steps: int, seed: int):
    """Episodes of `model`'s stochastic policy until at least `n_steps` transitions."""
    from polyak.data import datasets as D

    episodes, total = [], 0
    while total < n_steps:
        batch = D.collect_episodes(env, lambda o, i: model.predict(o, deterministic=False)[0], 5, seed=seed)
        seed += 5
        for ep in batch:
            if total < n_steps:
                episodes.append(ep)
                total += len(ep)
    return episodes


def make_data(args) -> None:
    import gymnasium as gym

    import polyak
    from polyak.data import datasets as D
    from polyak.evaluation import evaluate_policy

    out = Path(args.out)
    t0 = time.time()
    rec = D.EpisodeRecorder(gym.make(args.env))
    sac = polyak.SAC("MlpPolicy", rec, seed=0, learning_starts=5000)
    evals = []

    def checkpoint(m):
        if m.num_timesteps % args.eval_every == 0 and m.num_timesteps >= 2 * args.eval_every:
            ret = float(evaluate_policy(m, gym.make(args.env), 3, seed=20_000)[0])
            path = m.save(out / f"sac-{args.env}-{m.num_timesteps}.polyak")
            evals.append({"step": m.num_timesteps, "return": ret, "score": d4rl_score(args.env, ret),
                          "episodes": len(rec.episodes), "path": str(path)})
            print(json.dumps({k: v for k, v in evals[-1].items() if k != "path"}),
                  f"({time.time() - t0:.0f} s)", flush=True)

    sac.learn(args.sac_steps, callback=checkpoint)
    medium = next((e for e in evals if e["score"] >= args.medium_score), None)
    if medium is None:
        raise SystemExit(f"no checkpoint reached a normalised score of {args.medium_score}: "
                         f"best {max(e['score'] for e in evals):.1f}; raise --sac-steps")
    expert = max(evals, key=lambda e: e["score"])
    env = gym.make(args.env)
    spaces = (env.observation_space, env.action_space, args.env)
    replay = rec.episodes[:medium["episodes"]]
    D.write_dataset(dataset_id(args.env, "medium-replay"), replay, *spaces, overwrite=True,
                    algorithm_name=f"SAC replay up to step {medium['step']}")
    medium_eps = collect_steps(env, polyak.load(medium["path"]), args.dataset_steps, seed=0)
    D.write_dataset(dataset_id(args.env, "medium"), medium_eps, *spaces, overwrite=True,
                    algorithm_name=f"SAC at step {medium['step']}, stochastic")
    expert_eps = collect_steps(env, polyak.load(expert["path"]), args.dataset_steps, seed=1_000_000)
    D.write_dataset(dataset_id(args.env, "medium-expert"), medium_eps + expert_eps, *spaces, overwrite=True,
                    algorithm_name=f"SAC at step {medium['step']} and at step {expert['step']}, stochastic")
    summary = {"env": args.env, "sac_steps": args.sac_steps, "medium_checkpoint": medium, "expert_checkpoint": expert,
               "evals": evals, "seconds": round(time.time() - t0), "datasets": {}}
    for kind in DATASETS:
        info = D.dataset_info(dataset_id(args.env, kind))
        summary["datasets"][kind] = {k: info[k] for k in ("episodes", "steps", "return_mean", "return_std",
                                                          "return_min", "return_max")}
        print(kind, json.dumps(summary["datasets"][kind]), flush=True)
    (out / f"data-{args.env}.json").write_text(json.dumps(summary, indent=1))


def train(args) -> None:
    import gymnasium as gym
    import jax

    import polyak
    from polyak.algos.offline.learner import compiled
    from polyak.data.datasets import dataset_info
    from polyak.evaluation import evaluate_policy

    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    algo_steps = dict(kv.split("=") for kv in args.algo_steps.split(",") if kv)
    overrides = parse_overrides(args.set)  # polyak train's own --set parsing and errors
    chunk = 1000
    for kind in args.datasets.split(","):
        for algo in args.algos.split(","):
            steps = int(algo_steps.get(algo, args.steps))
            cls = polyak.ALGORITHMS["td3_bc" if algo == "bc" else algo]
            kwargs = {"alpha": 0.0} if algo == "bc" else {}
            kwargs.update(overrides)
            if algo == "iql":  # CORL's IQL on MuJoCo: rewards scaled by 1000 / (max - min episode return)
                kwargs["actor_lr_decay_steps"] = steps  # the cosine schedule over this run's length
                info = dataset_info(dataset_id(args.env, kind))
                kwargs["reward_scale"] = 1000.0 / (info["return_max"] - info["return_min"])
            t = time.time()
            models = [cls("MlpPolicy", dataset=dataset_id(args.env, kind), seed=s, eval_episodes=0, **kwargs)
                      for s in seeds]
            buffer = models[0].learner.buffer
            stacked = jax.tree.map(lambda *x: np.stack(x), *[m.learner._replace(buffer=None) for m in models])
            fns = compiled(models[0].spec)
            done = 0
            while done < steps:
                n = min(chunk, steps - done)
                stacked = fns["chunk_seeds"](n)(stacked, buffer)
                done += n
            jax.block_until_ready(stacked)
            train_s = time.time() - t
            for i, (seed, m) in enumerate(zip(seeds, models, strict=True)):
                m.learner = jax.tree.map(lambda x: x[i], stacked)._replace(buffer=buffer)
                m.num_timesteps = steps
                returns, _ = evaluate_policy(m, gym.make(args.env), args.eval_episodes, seed=EVAL_SEED + 100 * seed,
                                             return_episode_rewards=True)
                row = {"env": args.env, "dataset": kind, "algo": algo, "seed": seed, "steps": steps,
                       "return": float(np.mean(returns)), "score": d4rl_score(args.env, float(np.mean(returns))),
                       "train_s": round(train_s, 1), "seeds_vmapped": len(seeds), **({"set": overrides} if overrides else {})}
                print(json.dumps(row), flush=True)
                with open(out / "results.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")


def table(args) -> None:
    """Mean ± std over seeds of the D4RL-normalised score, one column per (algorithm, gradient steps)."""
    rows = [json.loads(line) for line in open(Path(args.out) / "results.jsonl")]
    envs = sorted({r["env"] for r in rows})
    for r in rows:  # runs with --set are columns of their own
        r["label"] = r["algo"] + "".join(f" {k}={v}" for k, v in r.get("set", {}).items())
    columns = sorted({(r["label"], r["algo"], r["steps"]) for r in rows}, key=lambda c: (-c[2], ALGOS.index(c[1]), c[0]))
    print("| env | dataset | " + " | ".join(f"{label} ({s // 1000}k)" for label, _, s in columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for env in envs:
        for kind in DATASETS:
            cells = []
            for label, _, steps in columns:
                s = np.array([r["score"] for r in rows
                              if (r["env"], r["dataset"], r["label"], r["steps"]) == (env, kind, label, steps)])
                cells.append(f"{s.mean():.1f} ± {s.std():.1f}" + ("" if len(s) == 3 else f" (n={len(s)})")
                             if len(s) else "–")
            if any(c != "–" for c in cells):
                print(f"| {env} | {kind} | " + " | ".join(cells) + " |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter,
                                epilog="See the module docstring (benchmarks/offline_mujoco.py) for what each step does.")
    p.add_argument("command", choices=("data", "train", "table"))
    p.add_argument("env", nargs="?", default="HalfCheetah-v5", help="a MuJoCo env with D4RL reference returns")
    p.add_argument("--out", required=True, help="folder for checkpoints, the Minari datasets and results.jsonl")
    p.add_argument("--sac-steps", type=int, default=100_000, help="data: SAC environment steps (default 100000)")
    p.add_argument("--eval-every", type=int, default=5000, help="data: steps between SAC checkpoints (default 5000)")
    p.add_argument("--medium-score", type=float, default=30.0, help="data: normalised score of medium (default 30)")
    p.add_argument("--dataset-steps", type=int, default=100_000,
                   help="data: transitions of each policy's dataset (default 100000)")
    p.add_argument("--algos", default="bc,td3_bc,iql,awac", help="train: comma-separated, of " + ",".join(ALGOS))
    p.add_argument("--datasets", default=",".join(DATASETS), help="train: comma-separated dataset kinds")
    p.add_argument("--steps", type=int, default=10_000, help="train: gradient steps (default 10000)")
    p.add_argument("--algo-steps", default="", help="train: per-algorithm steps, e.g. cql=2000")
    p.add_argument("--seeds", default="0,1,2", help="train: seeds, vmapped together (default 0,1,2)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="train: a hyperparameter for every algorithm run, a JSON value (repeatable); results.jsonl\n"
                        "records it and `table` keeps such rows apart")
    p.add_argument("--eval-episodes", type=int, default=5, help="train: evaluation episodes per seed (default 5)")
    args = p.parse_args(argv)
    if args.command != "table" and d4rl_score(args.env, 0.0) is None:
        p.error(f"{args.env} has no D4RL reference returns (known: {', '.join(D4RL_REFERENCE)})")
    os.makedirs(args.out, exist_ok=True)
    os.environ.setdefault("MINARI_DATASETS_PATH", os.path.join(os.path.abspath(args.out), "minari"))
    {"data": make_data, "train": train, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
