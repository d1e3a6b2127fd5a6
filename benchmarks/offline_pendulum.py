"""Offline RL on Pendulum-v1: "medium-replay" (a SAC run's training episodes) and "medium" (a partially trained SAC
policy) datasets, then TD3+BC, IQL, AWAC, CQL from each. Usage: python3 -m benchmarks.offline_pendulum OUT_DIR [SEEDS] (--help: this text)"""
import json
import os
import sys
import time

import gymnasium as gym
import numpy as np

if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
    print(__doc__)
    sys.exit(0)
out = sys.argv[1]
seeds = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "0").split(",")]
os.environ["MINARI_DATASETS_PATH"] = os.path.join(out, "minari")
import polyak  # noqa: E402
from polyak.data import datasets as D  # noqa: E402
from polyak.evaluation import evaluate_policy  # noqa: E402

t0 = time.time()
if not D.dataset_path("polyak/Pendulum-v1/medium-v0").exists():
    rec = D.EpisodeRecorder(gym.make("Pendulum-v1"))
    sac = polyak.SAC("MlpPolicy", rec, seed=0)
    saved = []

    def save_partial(m):  # candidate "medium" policies: every 500 steps from 2000 to 5000
        if 2000 <= m.num_timesteps <= 5000 and m.num_timesteps % 500 == 0:
            saved.append(m.save(os.path.join(out, f"sac_{m.num_timesteps}.polyak")))

    sac.learn(6000, callback=save_partial)
    print(f"SAC 6000 steps: {len(rec.episodes)} episodes recorded; final eval "
          f"{evaluate_policy(sac, gym.make('Pendulum-v1'), 10, seed=10_000)} ({time.time() - t0:.0f} s)", flush=True)
    # D4RL's "medium": a policy stopped at about a third of the expert's normalised return (random ~ -1250,
    # expert ~ -150 here: about -900); the first checkpoint whose 5-episode evaluation reaches -900
    medium_path = saved[-1]
    for path in saved:
        score = evaluate_policy(polyak.load(path), gym.make("Pendulum-v1"), 5, seed=20_000)[0]
        print(f"  {os.path.basename(path)}: {score:.1f}", flush=True)
        if score >= -900:
            medium_path = path
            break
    env = gym.make("Pendulum-v1")
    D.write_dataset("polyak/Pendulum-v1/medium-replay-v0", rec.episodes, env.observation_space, env.action_space,
                    "Pendulum-v1", algorithm_name="SAC replay (6000 steps)", overwrite=True)
    medium = polyak.load(medium_path)
    eps = D.collect_episodes(env, lambda o, i: medium.predict(o, deterministic=False)[0], 30, seed=0)
    D.write_dataset("polyak/Pendulum-v1/medium-v0", eps, env.observation_space, env.action_space, "Pendulum-v1",
                    algorithm_name=f"SAC {os.path.basename(medium_path)}, stochastic", overwrite=True)
for ds in ("medium-replay-v0", "medium-v0"):
    info = D.dataset_info(f"polyak/Pendulum-v1/{ds}")
    print(json.dumps({k: info[k] for k in ("dataset_id", "episodes", "steps", "return_mean", "return_std",
                                            "return_min", "return_max")}), flush=True)

STEPS = {"td3_bc": 5000, "iql": 5000, "awac": 5000, "cql": 2000}
EXTRA = {"iql": {"actor_lr_decay_steps": 5000}, "cql": {"critic_hidden": [256, 256], "actor_hidden": [256, 256]}}
results = []
for algo in ("td3_bc", "iql", "awac", "cql"):
    for ds in ("medium-replay-v0", "medium-v0"):
        for seed in seeds:
            t = time.time()
            cls = polyak.ALGORITHMS[algo]
            model = cls("MlpPolicy", dataset=f"polyak/Pendulum-v1/{ds}", seed=seed, eval_episodes=0,
                        **EXTRA.get(algo, {}))
            model.learn(STEPS[algo], log_interval=1000)
            returns, _ = evaluate_policy(model, gym.make("Pendulum-v1"), 10, seed=10_000 + seed,
                                         return_episode_rewards=True)
            row = {"algo": algo, "dataset": ds, "seed": seed, "steps": STEPS[algo], "return_mean": float(np.mean(returns)),
                   "return_std": float(np.std(returns)), "seconds": round(time.time() - t, 1)}
            results.append(row)
            print(json.dumps(row), flush=True)
json.dump(results, open(os.path.join(out, "results.json"), "w"), indent=1)
print(f"total {time.time() - t0:.0f} s")
