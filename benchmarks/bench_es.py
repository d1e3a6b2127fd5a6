"""Return against generations for CEM, CMA-ES and NES at several policy sizes on polyak/Pendulum-v1.

Run it as ``python -m benchmarks.bench_es [--generations 150] [--seeds 3] [--population 32] [--episodes 4]
[--sizes "8;32,32;96,96"] [--algos cem,cmaes,nes] [--out DIR]``.

What is measured: for every (method, policy size) the whole training run of every seed is one compiled
function (`polyak.algos.evolution.population.make_train`: `lax.scan` over generations, each generation's
population evaluated vmapped over the JAX Pendulum), seeds vmapped where that is cheaper. Each
generation records the return of the current mean policy (what `predict` uses) on that generation's
`--episodes` start states, averaged. The same population size, episodes per candidate and number of
generations for all three, so a generation costs the same environment steps; hyperparameters are the
classes' defaults except the ones set below (`SETTINGS`). Policy sizes are given by hidden widths
(tanh MLP, tanh output): "8" has 41 parameters, "32,32" 1,217 and "96,96" 9,793 on Pendulum.

Full-covariance CMA-ES keeps an n x n covariance and decomposes it (O(n^3)): it is skipped above
``--max-cmaes-params`` (default 2,000; at 9,793 parameters C alone is 384 MB per seed and one
eigendecomposition takes minutes on 2 cores). CMA-ES's seeds run one after the other, so its lazy
eigendecomposition is a real branch (under vmap it would run every generation).

Writes DIR/es_curves.csv (one row per method, size, seed, generation), DIR/es_summary.csv,
DIR/es_curves.png (one panel per size: mean over seeds, min-max band) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import polyak
from polyak.algos.evolution.population import make_train

SETTINGS = {"cem": {"init_std": 1.0}, "cmaes": {"init_std": 1.0}, "nes": {"sigma": 0.1, "learning_rate": 0.05}}
CLASSES = {"cem": polyak.CEM, "cmaes": polyak.CMAES, "nes": polyak.NES}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_es", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--env", default="polyak/Pendulum-v1", help="a polyak JAX env id (default: polyak/Pendulum-v1)")
    parser.add_argument("--algos", default="cem,cmaes,nes", help="comma-separated (default: cem,cmaes,nes)")
    parser.add_argument("--sizes", default="8;32,32;96,96",
                        help="policy hidden widths, sizes separated by ';' ('' is linear) (default: 8;32,32;96,96)")
    parser.add_argument("--generations", type=int, default=150, help="generations per run (default: 150)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default: 3)")
    parser.add_argument("--population", type=int, default=32, help="candidates per generation (default: 32)")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per candidate (default: 4)")
    parser.add_argument("--max-cmaes-params", type=int, default=2000,
                        help="skip CMA-ES for larger policies (default: 2000)")
    parser.add_argument("--out", default="benchmarks/results/es", help="output folder (default: benchmarks/results/es)")
    return parser.parse_args(argv)


def run_one(algo: str, hidden: tuple[int, ...], args) -> dict:
    cls = CLASSES[algo]
    model = cls("MlpPolicy", args.env, seed=0, population_size=args.population, policy_hidden=list(hidden),
                episodes_per_candidate=args.episodes, **SETTINGS[algo])
    adapter = model._jax_adapter
    if adapter is None:
        raise SystemExit(f"{args.env} is not a JAX env: this benchmark needs one")
    train = make_train(model.spec, adapter.env, adapter.params, args.generations)
    seeds = jnp.arange(args.seeds)
    vmapped = algo != "cmaes"
    t0 = time.perf_counter()
    if vmapped:
        learner, logs = jax.block_until_ready(jax.jit(jax.vmap(train))(seeds))
    else:
        one = jax.jit(train)
        results = [jax.block_until_ready(one(s)) for s in seeds]
        learner, logs = jax.tree.map(lambda *x: jnp.stack(x), *results)
    seconds = time.perf_counter() - t0
    returns = np.asarray(logs.mean_returns).mean(axis=2)  # (seeds, generations)
    steps_per_generation = int(np.asarray(learner.step)[0]) // args.generations
    return {"algo": algo, "hidden": hidden, "n_params": model.n_parameters, "returns": returns,
            "steps_per_generation": steps_per_generation, "seconds": seconds, "vmapped": vmapped}


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [tuple(int(w) for w in s.split(",") if w.strip()) for s in args.sizes.split(";")]
    results = []
    for hidden in sizes:
        for algo in args.algos.split(","):
            probe = CLASSES[algo]("MlpPolicy", args.env, seed=0, population_size=args.population,
                                  policy_hidden=list(hidden))
            if algo == "cmaes" and probe.n_parameters > args.max_cmaes_params:
                print(f"skip cmaes at {probe.n_parameters} parameters (> --max-cmaes-params {args.max_cmaes_params})",
                      flush=True)
                continue
            r = run_one(algo, hidden, args)
            final = r["returns"][:, -10:].mean(axis=1)
            print(f"{algo:6s} hidden={list(hidden)!s:9s} P={r['n_params']:6d}  final (last 10 gens) "
                  f"{final.mean():8.1f} ± {final.std():6.1f}  [{', '.join(f'{v:.0f}' for v in final)}]  "
                  f"{r['seconds']:.1f} s", flush=True)
            results.append(r)

    with open(out / "es_curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["algo", "hidden", "n_params", "seed", "generation", "env_steps", "mean_policy_return"])
        for r in results:
            for s, row in enumerate(r["returns"]):
                for g, value in enumerate(row):
                    w.writerow([r["algo"], "-".join(map(str, r["hidden"])), r["n_params"], s, g + 1,
                                (g + 1) * r["steps_per_generation"], f"{value:.3f}"])
    lines = ["| method | hidden | parameters | return, first gen | return, last 10 gens "
             "| per seed (last 10) | env steps / gen | wall s (incl. compile) |", "|---|---|---|---|---|---|---|---|"]
    with open(out / "es_summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["algo", "hidden", "n_params", "first", "final_mean", "final_std", "final_per_seed",
                    "steps_per_generation", "seconds"])
        for r in results:
            first = r["returns"][:, 0].mean()
            final = r["returns"][:, -10:].mean(axis=1)
            hidden = "-".join(map(str, r["hidden"])) or "linear"
            per_seed = " ".join(f"{v:.0f}" for v in final)
            w.writerow([r["algo"], hidden, r["n_params"], f"{first:.1f}", f"{final.mean():.1f}",
                        f"{final.std():.1f}", per_seed, r["steps_per_generation"], f"{r['seconds']:.1f}"])
            lines.append(f"| {r['algo']} | {hidden} | {r['n_params']} | {first:.0f} | "
                         f"{final.mean():.0f} ± {final.std():.0f} | {per_seed} | {r['steps_per_generation']} | "
                         f"{r['seconds']:.0f} |")
    table = "\n".join(lines)
    (out / "es_summary.md").write_text(table + "\n")
    print(table)

    import matplotlib  # noqa: PLC0415  (only for the plot)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False, sharey=True)
    for ax, hidden in zip(axes[0], sizes):
        for r in (r for r in results if r["hidden"] == hidden):
            g = np.arange(1, r["returns"].shape[1] + 1)
            ax.plot(g, r["returns"].mean(0), label=r["algo"])
            ax.fill_between(g, r["returns"].min(0), r["returns"].max(0), alpha=0.2)
        n_params = next((r["n_params"] for r in results if r["hidden"] == hidden), None)
        ax.set_title(f"hidden {list(hidden)} ({n_params} parameters)")
        ax.set_xlabel("generation")
        ax.legend()
    axes[0][0].set_ylabel(f"mean policy's return ({args.env})")
    fig.suptitle(f"population {args.population}, {args.episodes} episodes per candidate, {args.seeds} seeds "
                 "(mean, min-max band)")
    fig.tight_layout()
    fig.savefig(out / "es_curves.png", dpi=120)
    print(f"wrote {out / 'es_curves.csv'}, {out / 'es_summary.csv'}, {out / 'es_curves.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
