"""PCL and Unified PCL: the effect of the path length d (1, 5, 20) on learning speed, on polyak/Chain-v0 (deterministic,
sparse reward 9 steps away) and gymnax/CartPole-v1. Seeds vmapped in the jitted loop, the zoo's settings otherwise.

Per (algorithm, env, d): the steps until the mean return of the last 20 training episodes first reaches the
threshold (chain: 0.9, CartPole: 450) per seed, the mean training return over the run (area under the curve,
higher is faster), and the greedy evaluation return at the end (10 episodes).

Usage: python3 -m benchmarks.pcl_rollout_d OUT_DIR [SEEDS=0,1,2,3,4] [ALGOS=pcl] [ENVS=chain,cartpole]
(--help: this text)
"""
import csv
import json
import os
import sys
import time

import numpy as np

if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)
out = sys.argv[1]
seeds = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "0,1,2,3,4").split(",")]
algos = (sys.argv[3] if len(sys.argv) > 3 else "pcl").split(",")
envs = (sys.argv[4] if len(sys.argv) > 4 else "chain,cartpole").split(",")
from polyak.runs.seeds import train_seeds  # noqa: E402
from polyak.runs.zoo import tuned_hyperparameters  # noqa: E402

# env -> (id, steps, threshold on the running mean of training returns)
ENVS = {"chain": ("polyak/Chain-v0", 16_384, 0.9), "cartpole": ("gymnax/CartPole-v1", 102_400, 450.0)}
WINDOW = 20  # training episodes in the running mean


def steps_to_threshold(run_dir, threshold):
    rows = list(csv.DictReader(open(os.path.join(run_dir, "episodes.csv"))))
    returns = np.array([float(r["episode_return"]) for r in rows])
    steps = np.array([int(r["step"]) for r in rows])
    for i in range(WINDOW, len(returns) + 1):
        if returns[i - WINDOW:i].mean() >= threshold:
            return int(steps[i - 1]), float(returns.mean())
    return None, float(returns.mean())


results = []
for env in envs:
    env_id, steps, threshold = ENVS[env]
    for algo in algos:
        for d in (1, 5, 20):
            hp = tuned_hyperparameters(algo, env_id)
            n_envs = int(hp.pop("n_envs", 1))
            hp["d"] = d
            t0 = time.time()
            dirs = train_seeds(algo, env_id, seeds, steps, hp, n_envs=n_envs,
                               run_dir=os.path.join(out, f"{algo}_{env}_d{d}"), chunk=512, eval_episodes=10,
                               progress_bar=False)
            per_seed = [steps_to_threshold(x, threshold) for x in dirs]
            evals = [json.loads((x / "eval.json").read_text())["eval_return_mean"] for x in dirs]
            reached = [s for s, _ in per_seed if s is not None]
            row = {"algo": algo, "env": env_id, "d": d, "steps": steps, "seeds": seeds,
                   "steps_to_threshold": [s for s, _ in per_seed],
                   "median_steps_to_threshold": float(np.median(reached)) if len(reached) * 2 > len(seeds) else None,
                   "reached": len(reached), "mean_training_return": [round(a, 2) for _, a in per_seed],
                   "eval_return": [round(e, 1) for e in evals], "wall_s": round(time.time() - t0)}
            results.append(row)
            print(json.dumps(row), flush=True)
with open(os.path.join(out, "pcl_rollout_d.json"), "w") as f:
    json.dump(results, f, indent=1)
