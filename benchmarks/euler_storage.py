"""The Euler-equation method on polyak/Storage-v0 against value iteration on a fine grid and against SAC.

    python benchmarks/euler_storage.py [--grids 1001 2001 4001] [--degrees 6 8 12 16] [--sac-steps 20000]
                                       [--sac-seeds 0] [--episodes 100] [--out euler_storage.json]

Reports
  * value iteration (collocation.value_iteration.solve_on_grid) at each grid size: wall time, backups, whether
    the optimum is interior everywhere, and its policy's distance to the finest grid's (the reference's own error);
  * the Euler method at each Chebyshev degree: wall time (first call, with compilation, and a second solve),
    Newton iterations, max/mean |pi_euler - pi_VI| on the finest grid, the Euler residual off the nodes;
  * returns over `--episodes` episodes (reset seeds 10_000, 10_001, ...; the same initial charges and price paths
    for every policy) of Euler, VI, SAC (trained by polyak's fully jitted loop, `runs.seeds.train_seeds`) and
    two baselines (idle, a = 0; the greedy one-step maximiser of r, a = -p / c, which ignores the charge), with
    the paired difference to VI.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import polyak
from polyak.algos.collocation.value_iteration import solve_on_grid
from polyak.evaluation import evaluate_policy
from polyak.runs.seeds import train_seeds

ENV = "polyak/Storage-v0"
GAMMA = 0.99
EVAL_SEED = 10_000


class FixedPolicy:
    """A policy given as a function of the observation (s1, p), with the model API's predict."""

    def __init__(self, fn):
        self.fn = fn

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return np.asarray([self.fn(np.asarray(obs))], np.float32), None


def returns_of(model, episodes: int) -> np.ndarray:
    returns, _ = evaluate_policy(model, gym.make(ENV), episodes, seed=EVAL_SEED, return_episode_rewards=True)
    return np.asarray(returns)


def policy_on_grid(model, solution) -> np.ndarray:
    grid = solution.s1
    return np.stack([model.predict(np.stack([grid, np.full_like(grid, level)], 1).astype(np.float32))[0][:, 0]
                     for level in solution.levels], axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grids", type=int, nargs="+", default=[1001, 2001, 4001])
    ap.add_argument("--degrees", type=int, nargs="+", default=[6, 8, 12, 16])
    ap.add_argument("--sac-steps", type=int, default=20_000)
    ap.add_argument("--sac-seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--out", default="euler_storage.json")
    args = ap.parse_args()
    env = gym.make(ENV).unwrapped
    out: dict = {"env": ENV, "gamma": GAMMA, "episodes": args.episodes}

    # value iteration, finest grid = the reference
    solutions, out["value_iteration"] = {}, []
    for n in sorted(args.grids):
        t0 = time.perf_counter()
        solutions[n] = solve_on_grid(env.env, env.params, GAMMA, n_grid=n)
        out["value_iteration"].append({"n_grid": n, "seconds": round(time.perf_counter() - t0, 2),
                                       "backups": solutions[n].backups,
                                       "interior_everywhere": bool(solutions[n].interior.all())})
    reference = solutions[max(solutions)]
    for row in out["value_iteration"]:
        s = solutions[row["n_grid"]]
        diff = np.abs(np.stack([np.interp(reference.s1, s.s1, s.policy[:, k]) for k in range(len(s.levels))], 1)
                      - reference.policy)
        row.update(policy_diff_to_finest_max=float(diff.max()), policy_diff_to_finest_mean=float(diff.mean()))
        print(f"VI  M={row['n_grid']:5d}  {row['seconds']:6.1f} s  {row['backups']} backups  interior "
              f"{row['interior_everywhere']}  |pi - pi_finest| max {diff.max():.2e} mean {diff.mean():.2e}")

    # the Euler method at several degrees
    out["euler"], models = [], {}
    for degree in args.degrees:
        t0 = time.perf_counter()
        model = polyak.Euler(env=ENV, degree=degree, gamma=GAMMA, eval_episodes=0).learn(10**7)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        polyak.Euler(env=ENV, degree=degree, gamma=GAMMA, eval_episodes=0).learn(10**7)  # compiled: the solve alone
        again = time.perf_counter() - t0
        error = np.abs(policy_on_grid(model, reference) - reference.policy)
        row = {"degree": degree, "seconds_first": round(first, 2), "seconds_compiled": round(again, 3),
               "iterations": int(model.learner.iteration), "converged": model.converged,
               "policy_error_max": float(error.max()), "policy_error_mean": float(error.mean()), **model.euler_errors()}
        out["euler"].append(row)
        models[degree] = model
        print(f"Euler n={degree:2d}  {first:5.1f} s (compiled: {again:.3f} s)  {row['iterations']} iterations  "
              f"|pi - pi_VI| max {error.max():.2e} mean {error.mean():.2e}  Euler error (action units) max "
              f"{row['euler_error_action_max']:.2e}")

    # SAC in the fully jitted loop
    sac_models = []
    if args.sac_seeds:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            folders = train_seeds("sac", ENV, list(args.sac_seeds), args.sac_steps, {}, run_dir=tmp,
                                  eval_episodes=1, progress_bar=False)
            sac_seconds = time.perf_counter() - t0
            sac_models = [polyak.load(Path(f) / "model.polyak") for f in folders]
        out["sac"] = {"steps": args.sac_steps, "seeds": list(args.sac_seeds), "seconds": round(sac_seconds, 1),
                      "hyperparameters": "polyak's SAC defaults (Adam 3e-4, [256, 256], batch 256, gamma 0.99)"}
        print(f"SAC {args.sac_steps} steps x {len(args.sac_seeds)} seed(s) (jitted loop, seeds vmapped): "
              f"{sac_seconds:.0f} s")

    # returns on the same episodes
    best = models[max(models)]
    c = env.params.power_cost
    policies = {f"euler (n={max(models)})": best, f"value iteration (M={max(solutions)})": reference,
                **{f"sac seed {s}": m for s, m in zip(args.sac_seeds, sac_models)},
                "idle (a = 0)": FixedPolicy(lambda obs: 0.0), "greedy one-step (a = -p / c)": FixedPolicy(lambda obs: -obs[1] / c)}
    returns = {name: returns_of(m, args.episodes) for name, m in policies.items()}
    vi = returns[f"value iteration (M={max(solutions)})"]
    out["returns"] = {}
    for name, r in returns.items():
        d = r - vi
        out["returns"][name] = {"mean": float(r.mean()), "std": float(r.std()), "minus_vi_mean": float(d.mean()),
                                "minus_vi_sem": float(d.std(ddof=1) / np.sqrt(len(d)))}
        print(f"{name:<28} return {r.mean():8.3f} ± {r.std():.3f}   minus VI {d.mean():+.4f} ± {d.std(ddof=1) / np.sqrt(len(d)):.4f}")
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
