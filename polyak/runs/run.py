"""One training run and its folder: building the model and env, training with checkpoints, writing the files."""

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


def make_training_env(env_id: str, n_envs: int = 1, env_kwargs: dict[str, Any] | None = None):
    """`gymnasium.make` for one env; `gymnasium.make_vec` for several (one vmapped call for polyak's JAX envs)."""
    import gymnasium as gym

    import polyak  # noqa: F401  (registers polyak's environment ids)

    if n_envs < 1:
        raise SystemExit(f"--n-envs must be >= 1, got {n_envs}")
    env_kwargs = env_kwargs or {}
    if n_envs == 1:
        return gym.make(env_id, **env_kwargs)
    entry = gym.spec(env_id).vector_entry_point
    if isinstance(entry, str) and entry.startswith("polyak."):  # polyak's JAX envs: one vmapped call, SAME_STEP
        return gym.make_vec(env_id, num_envs=n_envs, **env_kwargs)
    # Gymnasium's own vector envs (e.g. CartPole's) auto-reset on the NEXT step: use sync copies with
    # SAME_STEP autoreset: every vector step is a transition (on-policy rollouts need that)
    return gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}, **env_kwargs)


def training_settings(args: argparse.Namespace) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """(hyperparameters, n_envs, env_kwargs) of a `polyak train` command: the tuned values recorded in
    polyak/zoo.py (unless --no-tuned), then --set, --n-envs and --env-kwarg on top."""
    from polyak.runs.zoo import tuned_hyperparameters

    hp = {} if args.no_tuned else tuned_hyperparameters(args.algo, args.env)
    hp.update(parse_overrides(args.set))
    n_envs = int(args.n_envs or hp.pop("n_envs", 1))
    hp.pop("n_envs", None)
    env_kwargs = hp.pop("env_kwargs", {})
    env_kwargs.update(parse_overrides(args.env_kwarg))
    return hp, n_envs, env_kwargs


def build_model(algo: str, env_id, seed: int, hyperparameters: dict[str, Any], verbose: int = 0):
    """Turn CLI-level hyperparameters (net_arch, action_noise='normal:0.1'/'ou:0.2') into a model."""
    import polyak
    from polyak.core.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

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
    import inspect

    cls = polyak.ALGORITHMS[algo]
    if "action_noise" in inspect.signature(cls.__init__).parameters:
        hp["action_noise"] = noise
    elif noise is not None:
        raise SystemExit(f"{algo} takes no action_noise (it is not an off-policy method with a deterministic actor)")
    return cls("MlpPolicy", env_id, seed=seed, policy_kwargs=policy_kwargs or None, verbose=verbose, **hp)


def new_run_folder(args: argparse.Namespace, model, hp: dict[str, Any], n_envs: int,
                   env_kwargs: dict[str, Any]) -> Path:
    """Create the run folder (--run-dir or RUNS_ROOT/ALGO-ENV-sSEED-TIME) with its config.json."""
    from polyak._version import __version__

    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.run_dir or Path(args.runs_root) / f"{args.algo}-{args.env.replace('/', '_')}-s{args.seed}-{stamp}")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"algorithm": args.algo, "env": args.env, "env_kwargs": env_kwargs, "n_envs": n_envs,
              "steps": args.steps, "seed": args.seed, **({"variant": args.variant} if args.variant else {}),
              "library_version": __version__, "command": " ".join(sys.argv),
              "overrides": hp, "hyperparameters": model.config.to_dict(),
              "action_noise": None if getattr(model, "action_noise", None) is None else repr(model.action_noise)}
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    print(f"polyak {args.algo.upper()} on {args.env}: {args.steps} steps, seed {args.seed} -> {run_dir}", flush=True)
    return run_dir


def train_with_checkpoints(args: argparse.Namespace, model, run_dir: Path) -> float:
    """model.learn(--steps) logging into run_dir, saving checkpoints/stepN.polyak every --checkpoint-every
    steps; returns the training time in seconds."""
    from polyak.io.logger import RunLogger

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
    return time.perf_counter() - t0
