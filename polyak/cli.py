"""Command line: `polyak train`, `polyak eval`, `polyak bench`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

MODEL_FILE = "model.polyak"


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = _parse_value(value.strip())
    return out


def build_model(algo: str, env_id: str, seed: int, hyperparameters: dict[str, Any], verbose: int = 0):
    """Turn CLI-level hyperparameters (net_arch, action_noise='normal:0.1'/'ou:0.2') into a model."""
    import polyak
    from polyak.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

    hp = dict(hyperparameters)
    policy_kwargs = {}
    if "net_arch" in hp:
        policy_kwargs["net_arch"] = hp.pop("net_arch")
    noise = hp.pop("action_noise", None)
    if isinstance(noise, str):
        kind, _, sigma = noise.partition(":")
        sigma = float(sigma or 0.1)
        if kind == "normal":
            noise = NormalActionNoise(0.0, sigma)
        elif kind in ("ou", "ornstein_uhlenbeck"):
            noise = OrnsteinUhlenbeckActionNoise(0.0, sigma)
        else:
            raise SystemExit(f"action_noise must be 'normal:SIGMA' or 'ou:SIGMA', got {noise!r}")
    elif noise is not None:
        raise SystemExit(f"action_noise must be 'normal:SIGMA' or 'ou:SIGMA', got {noise!r}")
    return polyak.ALGORITHMS[algo]("MlpPolicy", env_id, seed=seed, action_noise=noise,
                                   policy_kwargs=policy_kwargs or None, verbose=verbose, **hp)


def cmd_train(args: argparse.Namespace) -> int:
    from polyak import __version__
    from polyak.common.logger import RunLogger, plot_learning_curve
    from polyak.evaluation import evaluate_policy
    from polyak.zoo import tuned_hyperparameters

    hp = {} if args.no_tuned else tuned_hyperparameters(args.algo, args.env)
    hp.update(parse_overrides(args.set))
    model = build_model(args.algo, args.env, args.seed, hp)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.run_dir or Path(args.runs_root) / f"{args.algo}-{args.env.replace('/', '_')}-s{args.seed}-{stamp}")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"algorithm": args.algo, "env": args.env, "steps": args.steps, "seed": args.seed,
              "library_version": __version__, "command": " ".join(sys.argv),
              "overrides": hp, "hyperparameters": model.config.to_dict(),
              "action_noise": None if model.action_noise is None else repr(model.action_noise)}
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    print(f"polyak {args.algo.upper()} on {args.env}: {args.steps} steps, seed {args.seed} -> {run_dir}", flush=True)

    logger = RunLogger(run_dir, verbose=0, progress_bar=not args.no_progress)
    callback = None
    if args.checkpoint_every:
        every = args.checkpoint_every

        def callback(m):
            if m.num_timesteps % every == 0:
                m.save(run_dir / "checkpoints" / f"step{m.num_timesteps:09d}.polyak", include_buffer=args.save_buffer)

    t0 = time.perf_counter()
    try:
        model.learn(args.steps, callback=callback, log_interval=args.log_interval, logger=logger)
    finally:
        logger.close()
    train_s = time.perf_counter() - t0
    model.save(run_dir / MODEL_FILE, include_buffer=args.save_buffer)
    returns, lengths = evaluate_policy(model, args.env, args.eval_episodes, seed=10_000 + args.seed,
                                       return_episode_rewards=True)
    import numpy as np

    result = {"eval_return_mean": float(np.mean(returns)), "eval_return_std": float(np.std(returns)),
              "eval_returns": returns, "eval_lengths": lengths, "train_seconds": round(train_s, 2),
              "steps_per_second": round(args.steps / train_s, 1), "steps": model.num_timesteps}
    (run_dir / "eval.json").write_text(json.dumps(result, indent=2))
    plot_learning_curve(run_dir, f"{args.algo.upper()} on {args.env} (seed {args.seed})", result["eval_return_mean"])
    print(f"deterministic evaluation over {args.eval_episodes} episodes: "
          f"{result['eval_return_mean']:.1f} ± {result['eval_return_std']:.1f}  "
          f"({result['steps_per_second']:.0f} steps/s)")
    print(f"run folder: {run_dir}  (config.json, metrics.csv, episodes.csv, tensorboard/, "
          f"learning_curve.png, {MODEL_FILE}, eval.json)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import numpy as np

    import polyak
    from polyak.evaluation import evaluate_policy

    target = Path(args.run_dir)
    model_path = target / MODEL_FILE if target.is_dir() else target
    model = polyak.load(model_path)
    env_id = args.env
    if env_id is None:
        cfg_path = model_path.parent / "config.json"
        env_id = json.loads(cfg_path.read_text())["env"] if cfg_path.exists() else model.env_id
    if env_id is None:
        raise SystemExit("cannot tell which environment to evaluate on: pass --env")
    returns, _ = evaluate_policy(model, env_id, args.episodes, deterministic=not args.stochastic,
                                 seed=args.seed, return_episode_rewards=True)
    print(f"{model.name.upper()} on {env_id}, {args.episodes} episodes: "
          f"return {np.mean(returns):.2f} ± {np.std(returns):.2f} (min {np.min(returns):.2f}, max {np.max(returns):.2f})")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polyak", description="Deep RL for continuous control (JAX).")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train an agent and write a run folder",
                        description="Train SAC, TD3 or DDPG on a Gymnasium environment. Writes a run folder with "
                                    "config.json, metrics.csv, episodes.csv, TensorBoard events, "
                                    "learning_curve.png, model.polyak and eval.json (deterministic evaluation).")
    tr.add_argument("algo", choices=["sac", "td3", "ddpg"], help="algorithm")
    tr.add_argument("--env", default="Pendulum-v1", help="Gymnasium environment id (default: Pendulum-v1)")
    tr.add_argument("--steps", type=int, default=20_000, help="environment steps (default: 20000)")
    tr.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a hyperparameter, e.g. --set learning_rate=3e-4 --set net_arch=[64,64] "
                         "--set action_noise=ou:0.2 (repeatable)")
    tr.add_argument("--no-tuned", action="store_true",
                    help="ignore the tuned hyperparameters recorded for this algorithm and env (polyak/zoo.py)")
    tr.add_argument("--run-dir", default=None, help="run folder (default: RUNS_ROOT/ALGO-ENV-sSEED-TIMESTAMP)")
    tr.add_argument("--runs-root", default="runs", help="parent folder of run folders (default: runs)")
    tr.add_argument("--eval-episodes", type=int, default=10, help="deterministic evaluation episodes (default: 10)")
    tr.add_argument("--log-interval", type=int, default=1000, help="steps between metric rows (default: 1000)")
    tr.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                    help="also write checkpoints/stepN.polyak every N steps (default: off)")
    tr.add_argument("--save-buffer", action="store_true", help="include the replay buffer in saved files")
    tr.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="evaluate a trained model",
                        description="Run deterministic evaluation episodes of RUN_DIR/model.polyak (or a model file).")
    ev.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by `polyak train`, or a .polyak file")
    ev.add_argument("--episodes", type=int, default=10, help="number of episodes (default: 10)")
    ev.add_argument("--env", default=None, help="environment id (default: the run's)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the first episode (default: 0)")
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic policy")
    ev.set_defaults(func=cmd_eval)

    sub.add_parser("bench", help="speed benchmark against Stable-Baselines3 and SBX (same run); "
                                 "`polyak bench --help` lists its options")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # everything after `bench` belongs to polyak.bench's own parser
        from polyak.bench import main as bench_main

        return int(bench_main(argv[1:]) or 0)
    args = make_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
