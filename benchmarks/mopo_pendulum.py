"""MOPO and offline-to-online on the Pendulum-v1 datasets of benchmarks/offline_pendulum.py.

Run ``python -m benchmarks.offline_pendulum OUT_DIR`` first (it writes the "medium" and "medium-replay" datasets under
OUT_DIR/minari), then ``python -m benchmarks.mopo_pendulum OUT_DIR --part mopo|online`` (``--help``: the options).

* ``--part mopo``: MOPO (polyak defaults, the model's training steps scaled by ``--model-train-steps``) learns from
  each dataset for ``--steps`` gradient steps; 10 deterministic evaluation episodes (reset seeds 10000 + seed ...),
  as offline_pendulum.py evaluates TD3+BC, IQL, AWAC and CQL. ``--model koopman`` rolls out the Koopman ensemble
  instead of the probabilistic MLP ensemble (MOPO's ``model`` setting; the same budget).
* ``--part online``: ``--algo`` (IQL by default) learns ``--steps`` gradient steps offline, is evaluated, then fine-tunes
  ``--online-steps`` environment steps online (`learn(n, online=True)`: buffer seeded with the dataset) and is
  evaluated again on the same episodes.

Prints one JSON line per run and writes OUT_DIR/mopo_results.json (appending).
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="OUT_DIR of benchmarks/offline_pendulum.py (its datasets are under OUT_DIR/minari)")
    p.add_argument("--part", choices=("mopo", "online"), required=True)
    p.add_argument("--datasets", default="medium-replay-v0,medium-v0", help="comma-separated (default: both)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    p.add_argument("--steps", type=int, default=5000, help="offline gradient steps (default: 5000)")
    p.add_argument("--model-train-steps", type=int, default=2000, help="MOPO: ensemble Adam steps (default: 2000)")
    p.add_argument("--model", choices=("mlp", "koopman"), default="mlp", help="MOPO: the world model (default: mlp)")
    p.add_argument("--algo", default="iql", help="--part online: the offline algorithm (default: iql)")
    p.add_argument("--online-steps", type=int, default=5000, help="--part online: env steps (default: 5000)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra hyperparameter (JSON value)")
    args = p.parse_args(argv)
    os.environ["MINARI_DATASETS_PATH"] = os.path.join(args.out, "minari")

    import gymnasium as gym
    import numpy as np

    import polyak
    from polyak.evaluation import evaluate_policy

    extra = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    results = []

    def evaluate(model, seed):
        returns, _ = evaluate_policy(model, gym.make("Pendulum-v1"), 10, seed=10_000 + seed, return_episode_rewards=True)
        return float(np.mean(returns)), float(np.std(returns))

    for ds in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            t = time.time()
            dataset = f"polyak/Pendulum-v1/{ds}"
            if args.part == "mopo":
                model = polyak.MOPO("MlpPolicy", dataset=dataset, seed=seed, eval_episodes=0, model=args.model,
                                    model_train_steps=args.model_train_steps, **extra)
                model.learn(args.steps, log_interval=1000)
                mean, std = evaluate(model, seed)
                metrics = {k: round(float(v), 4) for k, v in model.learner.monitor.metrics.items()}
                row = {"algo": "mopo", "model": args.model, "dataset": ds, "seed": seed, "steps": args.steps,
                       "model_train_steps": args.model_train_steps, "extra": extra, "return_mean": mean,
                       "return_std": std, "model_mse_per_member": np.round(np.asarray(
                           model.learner.agent.model_mse), 5).tolist(), "final_metrics": metrics}
            else:
                cls = polyak.ALGORITHMS[args.algo]
                extra_algo = {"actor_lr_decay_steps": args.steps + args.online_steps} if args.algo == "iql" else {}
                model = cls("MlpPolicy", dataset=dataset, seed=seed, eval_episodes=0, **extra_algo, **extra)
                model.learn(args.steps, log_interval=1000)
                before = evaluate(model, seed)
                t_online = time.time()
                model.learn(args.online_steps, online=True, log_interval=1000)
                after = evaluate(model, seed)
                row = {"algo": args.algo, "dataset": ds, "seed": seed, "offline_steps": args.steps,
                       "online_steps": args.online_steps, "extra": {**extra_algo, **extra},
                       "return_before": before, "return_after": after,
                       "online_seconds": round(time.time() - t_online, 1)}
            row["seconds"] = round(time.time() - t, 1)
            results.append(row)
            print(json.dumps(row), flush=True)
    path = os.path.join(args.out, "mopo_results.json")
    old = json.load(open(path)) if os.path.exists(path) else []
    json.dump(old + results, open(path, "w"), indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
