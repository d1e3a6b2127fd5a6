"""FQI (explicit maximiser), amortised FQI and NFQCA on one Pendulum-v1 dataset: return, and how good the
amortisation is, over outer iterations.

Run it as ``python -m benchmarks.fitted_q_pendulum [--steps 5000] [--seeds 1] [--first-seed 0] [--every 500]
[--algos fqi,amortized_fqi,nfqca] [--out DIR]``.

The dataset (made here, in memory, the same every run): 20 episodes of a scripted swing-up controller (energy
pumping, then PD near the top; about -140 without noise) with Gaussian action noise of std 0.3 half-ranges,
plus 20 episodes of uniform random actions: 8,000 transitions. The same data through the CLI:
``polyak data collect --env Pendulum-v1 --policy random --episodes 20 ...`` (the scripted controller is not a
CLI policy).

Each algorithm trains with `polyak train`'s settings for Pendulum-v1 (`polyak.runs.zoo`) for `--steps`
gradient steps. Every `--every` steps, on 512 fixed next-states s' of the dataset:

    gap = mean_s' [ max_a q(s', a) - q(s', pi(s')) ]        q = min_j Q_j, reward units

where pi(s') is what the algorithm acts with (FQI: its own maximiser with its budget; amortised FQI and NFQCA:
the policy network) and the max is a reference maximiser far stronger than any agent's: projected gradient
ascent from 32 starts (one at pi(s')) for 100 Adam steps, and CEM with 256 samples for 8 rounds, the better
of the two (so gap >= 0). FQI's gap measures its own maximiser's shortfall. At the end: the deterministic return
over 10 episodes (reset seeds 10000-10009). Writes DIR/fitted_q_curves.csv and DIR/fitted_q_summary.csv and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import functools
import time
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

import polyak
from polyak.core.maximize import cem, gradient_ascent
from polyak.core.normalizer import rms_normalize
from polyak.data import datasets as D
from polyak.evaluation import evaluate_policy
from polyak.runs.zoo import tuned_hyperparameters

ALGOS = ("fqi", "amortized_fqi", "nfqca")
GAP_STATES = 512


def swing_up(obs: np.ndarray, info: dict) -> np.ndarray:
    """Energy pumping below the upright's energy, a PD controller near the top."""
    c, s, w = obs
    if c > 0.85:
        u = -10.0 * np.arctan2(s, c) - 2.0 * w
    else:
        energy = w**2 / 6 + 5 * c
        u = 2.0 * np.sign(w) * (energy < 5.0) if abs(w) > 1e-3 else 2.0
    return np.array([np.clip(u, -2.0, 2.0)], np.float32)


def make_dataset() -> D.OfflineData:
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    episodes = D.collect_episodes(env, swing_up, 20, seed=0, noise=0.3)
    episodes += D.collect_episodes(env, lambda obs, info: rng.uniform(-2.0, 2.0, (1,)).astype(np.float32), 20,
                                   seed=1000)
    return D.flatten(episodes, env.observation_space, env.action_space, "Pendulum-v1", "bench/Pendulum-v1/mix-v0")


@functools.lru_cache(maxsize=8)
def gap_fn(agent, normalize: bool, reward_scale: float):
    """(agent state, normaliser, raw s', key) -> mean [max_a q(s', a) - q(s', pi(s'))], pi's mean q (reward units)."""
    @jax.jit
    def gap(state, rms, next_obs, key):
        s = rms_normalize(rms, next_obs, enabled=normalize)
        k_act, k_ga, k_cem = jax.random.split(key, 3)
        pi = agent.act(state, s, k_act, True)
        f = lambda a: agent.q(state.critic_params, s, a)  # noqa: E731
        ga = gradient_ascent(f, k_ga, pi.shape, init=pi, restarts=32, max_steps=100, step_size=0.05, tol=0.0)
        ce = cem(f, k_cem, pi.shape, init=pi, population=256, elites=16, iterations=8)
        best = jnp.maximum(ga.value, ce.value)
        q_pi = f(pi)
        return (best - q_pi).mean() / reward_scale, q_pi.mean() / reward_scale

    return gap


def run(name: str, seed: int, data: D.OfflineData, steps: int, every: int) -> tuple[list[dict], dict]:
    hp = tuned_hyperparameters(name, "Pendulum-v1")
    net_arch = hp.pop("net_arch", None)
    kwargs = {**hp, **({"policy_kwargs": {"net_arch": net_arch}} if net_arch else {})}
    model = polyak.ALGORITHMS[name]("MlpPolicy", dataset=data, seed=seed, eval_episodes=0, **kwargs)
    gap = gap_fn(model.agent, model.config.normalize_obs, model.config.reward_scale)
    states = data.next_obs[np.random.default_rng(1).choice(len(data), GAP_STATES, replace=False)]
    rows, started = [], time.perf_counter()

    def record(m) -> bool:
        g, q_pi = jax.device_get(gap(m.learner.agent, m.learner.obs_rms, states, jax.random.PRNGKey(m.num_timesteps)))
        rows.append({"algo": name, "seed": seed, "step": m.num_timesteps, "gap": float(g), "q_pi_mean": float(q_pi),
                     "seconds": time.perf_counter() - started})
        return True

    model.learn(steps, callback=record, log_interval=every)
    seconds = time.perf_counter() - started
    mean, std = evaluate_policy(model, gym.make("Pendulum-v1"), 10, seed=10_000)
    return rows, {"algo": name, "seed": seed, "return_mean": mean, "return_std": std, "final_gap": rows[-1]["gap"],
                  "train_seconds": seconds, "hyperparameters": kwargs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5000, help="gradient steps per run (default: 5000)")
    p.add_argument("--seeds", type=int, default=1, help="seeds first..first+N-1 (default: 1)")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (default: 0)")
    p.add_argument("--every", type=int, default=500, help="gradient steps between gap measurements (default: 500)")
    p.add_argument("--algos", default=",".join(ALGOS), help=f"comma-separated (default: {','.join(ALGOS)})")
    p.add_argument("--out", default="fitted-q-pendulum", help="output folder (default: fitted-q-pendulum)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = make_dataset()
    returns = np.array([data.reward[data.episode == e].sum() for e in range(data.n_episodes)])
    print(f"dataset: {len(data)} transitions, {data.n_episodes} episodes, return {returns.mean():.0f} ± "
          f"{returns.std():.0f} [{returns.min():.0f}, {returns.max():.0f}]")
    curves, summary = [], []
    for name in args.algos.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rows, result = run(name, seed, data, args.steps, args.every)
            curves += rows
            summary.append(result)
            print(f"{name} seed {seed}: return {result['return_mean']:.1f} ± {result['return_std']:.1f}, gap "
                  + " ".join(f"{r['gap']:.2f}" for r in rows) + f" ({result['train_seconds']:.0f} s)", flush=True)
    with open(out / "fitted_q_curves.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(curves[0]))
        w.writeheader()
        w.writerows(curves)
    with open(out / "fitted_q_summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[k for k in summary[0] if k != "hyperparameters"], extrasaction="ignore")
        w.writeheader()
        w.writerows(summary)
    print(f"\n| algorithm | return (10 episodes, mean ± std per seed) | gap at steps {args.every}, "
          f"{args.steps // 2}, {args.steps} (mean over seeds) | train s |\n|---|---|---|---|")
    for name in args.algos.split(","):
        res = [r for r in summary if r["algo"] == name]
        gaps = [np.mean([r["gap"] for r in curves if r["algo"] == name and r["step"] == s])
                for s in (args.every, args.steps // 2, args.steps)]
        print(f"| {name} | " + ", ".join(f"{r['return_mean']:.0f} ± {r['return_std']:.0f}" for r in res)
              + " | " + ", ".join(f"{g:.2f}" for g in gaps)
              + f" | {np.mean([r['train_seconds'] for r in res]):.0f} |")


if __name__ == "__main__":
    main()
