"""The learning tests' margins at a network width: every seed's evaluation return, trained as the tests train.

    python -m benchmarks.learning_test_margins --algo sac --width 64 --seeds 0-4     # Pendulum-v1, host loop
    python -m benchmarks.learning_test_margins --algo dqn --width 64 --seeds 0-9     # gymnax CartPole-v1, jitted

SAC, TD3 and DDPG: `tests/algos/offpolicy/test_learning_offpolicy.py`'s run — Gymnasium's Pendulum-v1, the zoo's
settings, 10k steps, evaluation over 10 episodes seeded 10000 + seed, threshold -200 — for every seed (the test stops
once "2 of 3" is decided), one after the other, with each seed's wall time. DQN and Double DQN:
`tests/algos/onpolicy/test_learning_family.py`'s case — gymnax CartPole-v1, the zoo's settings, 50k steps, the seeds
vmapped in one jitted program, threshold 475 — with the wall time of all seeds together. `--width W` sets every hidden
layer to [W, W] (`--width 0`: the zoo's networks, [256, 256]). Timings depend on the machine's load: pin the process
(`taskset -c 0`) and say what else ran.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

PENDULUM = ("sac", "td3", "ddpg")
CARTPOLE = ("dqn", "double_dqn")


def seed_list(text: str) -> list[int]:
    """'0-4' or '0,2,5' -> the seeds."""
    if "-" in text:
        first, last = (int(x) for x in text.split("-", 1))
        return list(range(first, last + 1))
    return [int(x) for x in text.split(",")]


def pendulum(algo: str, width: int, seeds: list[int], steps: int) -> list[dict]:
    import polyak
    from polyak.evaluation import evaluate_policy
    from polyak.runs.zoo import tuned_hyperparameters

    rows = []
    for seed in seeds:
        start = time.perf_counter()
        nets = {"policy_kwargs": {"net_arch": [width, width]}} if width else {}
        model = polyak.ALGORITHMS[algo]("MlpPolicy", "Pendulum-v1", seed=seed,
                                        **tuned_hyperparameters(algo, "Pendulum-v1"), **nets)
        model.learn(steps)
        train_s = time.perf_counter() - start
        mean, _ = evaluate_policy(model, "Pendulum-v1", n_eval_episodes=10, seed=10_000 + seed)
        rows.append({"seed": seed, "return": round(float(mean), 1), "train_s": round(train_s, 1)})
        print(json.dumps({"algo": algo, "width": width, **rows[-1]}), flush=True)
    return rows


def cartpole(algo: str, width: int, seeds: list[int], steps: int) -> list[dict]:
    from polyak.runs.seeds import train_seeds
    from polyak.runs.zoo import tuned_hyperparameters

    hp = tuned_hyperparameters(algo, "gymnax/CartPole-v1")
    n_envs, env_kwargs = int(hp.pop("n_envs", 1)), hp.pop("env_kwargs", {})
    if width:
        hp["net_arch"] = [width, width]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        dirs = train_seeds(algo, "gymnax/CartPole-v1", seeds, steps, hp, env_kwargs=env_kwargs, n_envs=n_envs,
                           run_dir=run_dir, eval_episodes=10, progress_bar=False)
        returns = [json.loads((Path(d) / "eval.json").read_text())["eval_return_mean"] for d in dirs]
    wall = round(time.perf_counter() - start, 1)
    print(json.dumps({"algo": algo, "width": width, "seeds": seeds, "returns": [round(r, 1) for r in returns],
                      "wall_s_all_seeds": wall}), flush=True)
    return [{"seed": s, "return": round(float(r), 1)} for s, r in zip(seeds, returns)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", required=True, choices=PENDULUM + CARTPOLE)
    parser.add_argument("--width", type=int, default=0, help="hidden width W of [W, W] networks (0: the zoo's)")
    parser.add_argument("--seeds", type=seed_list, default=[0, 1, 2, 3, 4], help="'0-4' or '0,2,5' (default 0-4)")
    parser.add_argument("--steps", type=int, default=None,
                        help="environment steps (default: the test's, 10000 on Pendulum, 50000 on CartPole)")
    args = parser.parse_args(argv)
    if args.width < 0:
        parser.error(f"--width must be 0 (the zoo's networks) or positive, got {args.width}")
    if args.algo in PENDULUM:
        rows = pendulum(args.algo, args.width, args.seeds, args.steps or 10_000)
        threshold = -200.0
    else:
        rows = cartpole(args.algo, args.width, args.seeds, args.steps or 50_000)
        threshold = 475.0
    reached = sum(r["return"] >= threshold for r in rows)
    print(f"{args.algo}, width {args.width or 'zoo'}: {reached} of {len(rows)} seeds at or above {threshold}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
