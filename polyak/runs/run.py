"""One training run and its folder — the only module that writes a run folder.

A run folder holds: config.json (what was run), metrics.csv, episodes.csv and tensorboard/ (written by
the run's `RunLogger` while training), model.polyak, eval.json (deterministic evaluation) and
learning_curve.png. `polyak train` (one seed), `polyak train --seeds N` (one process per seed, or all
seeds vmapped in one process: `polyak.runs.seeds`) and sweeps all write it through `RunFolder`, so
`polyak report` reads the same files whichever path made them.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import polyak.envs  # noqa: F401  (registers polyak's environment ids with Gymnasium)
from polyak._version import __version__
from polyak.algos import registry
from polyak.core.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from polyak.envs.gym_compat import make_vector
from polyak.evaluation import evaluate_policy, evaluate_q_bias
from polyak.io.logger import EPISODES_FILE, METRICS_FILE, RunLogger, plot_learning_curve
from polyak.runs.zoo import tuned_hyperparameters, with_overrides

MODEL_FILE = "model.polyak"
CONFIG_FILE = "config.json"
EVAL_FILE = "eval.json"
LOG_FILE = "train.log"  # a worker process's output (sweeps and --seeds in processes)
EVAL_SEED_OFFSET = 10_000  # evaluation episodes of seed s are reset with seeds 10_000 + s, ...
CHECKPOINT_BUFFER_LIMIT = 1 << 30  # replay buffers up to 1 GiB travel with every checkpoint (--checkpoint-every)
DEFAULT_EVAL_STEP_LIMIT = 1000  # for envs without a time limit (a greedy policy can walk into a wall forever)


def parse_overrides(items: list[str], flag: str = "--set") -> dict[str, Any]:
    """`["key=value", ...]` -> {key: JSON value, or the text itself when it is not JSON}. A value that starts
    like JSON (a number, list, object, quoted string) must be valid JSON: the error names the flag."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise SystemExit(f"{flag} expects key=value, got {item!r}")
        try:
            out[key] = json.loads(value)  # activation="tanh" is the string tanh, as activation=tanh is
        except json.JSONDecodeError:
            if value[:1] in '[{"-+.0123456789':
                raise SystemExit(f"{flag} {item}: {value!r} is not valid JSON (a list, number or quoted string), "
                                 "e.g. net_arch=[64,64], learning_rate=3e-4") from None
            out[key] = value
    return out


def env_safe(env_id: str) -> str:
    """An env id as part of a folder name (`polyak/Pendulum-v1` -> `polyak_Pendulum-v1`)."""
    return env_id.replace("/", "_")


def run_folder_name(algo: str, env_id: str, seed: int, label: str = "", stamp: str | None = None) -> str:
    """`ALGO-ENV[-LABEL]-sSEED[-STAMP]`: readable, deterministic given the stamp, safe as a folder name."""
    return f"{algo}-{env_safe(env_id)}" + (f"-{label}" if label else "") + f"-s{seed}" + (f"-{stamp}" if stamp else "")


def time_stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def make_training_env(env_id: str, n_envs: int = 1, env_kwargs: dict[str, Any] | None = None):
    """`gymnasium.make` for one env; `gymnasium.make_vec` for several (one vmapped call for polyak's JAX envs)."""
    if n_envs < 1:
        raise SystemExit(f"--n-envs must be >= 1, got {n_envs}")
    env_kwargs = env_kwargs or {}
    if n_envs == 1:
        return gym.make(env_id, **env_kwargs)
    # polyak's JAX envs: one vmapped call; others: sync copies with SAME_STEP autoreset (not 1.x's own
    # NEXT_STEP vector envs, e.g. CartPole's), so every vector step is a transition (on-policy rollouts need that)
    return make_vector(env_id, n_envs, same_step=True, **env_kwargs)


def training_settings(args: argparse.Namespace) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """(hyperparameters, n_envs, env_kwargs) of a `polyak train` command: the tuned values recorded in
    polyak/runs/zoo.py (unless --no-tuned), then --set, --n-envs and --env-kwarg on top."""
    hp = with_overrides(args.algo, {} if args.no_tuned else tuned_hyperparameters(args.algo, args.env),
                        parse_overrides(args.set))
    n_envs = int(args.n_envs or hp.pop("n_envs", 1))
    hp.pop("n_envs", None)
    env_kwargs = hp.pop("env_kwargs", {})
    env_kwargs.update(parse_overrides(args.env_kwarg, "--env-kwarg"))
    return hp, n_envs, env_kwargs


def parse_action_noise(noise: Any):
    """'normal:SIGMA' / 'ou:SIGMA' (the CLI's and sweep files' spelling) -> a noise object; None stays None."""
    if noise is None:
        return None
    if isinstance(noise, str):
        kind, _, sigma = noise.partition(":")
        sigma = float(sigma or 0.1)
        if kind == "normal":
            return NormalActionNoise(0.0, sigma)
        if kind in ("ou", "ornstein_uhlenbeck"):
            return OrnsteinUhlenbeckActionNoise(0.0, sigma)
    raise SystemExit(f"action_noise must be 'normal:SIGMA' or 'ou:SIGMA', got {noise!r}")


def build_model(algo: str, env, seed: int, hyperparameters: dict[str, Any], verbose: int = 0):
    """The registered algorithm `algo` on `env`, from CLI-level hyperparameters (net_arch, action_noise='ou:0.2')."""
    cls = registry.algorithm_class(algo)
    hp = dict(hyperparameters)
    verbose = hp.pop("verbose", verbose)  # --set verbose=1: the model's own progress output (e.g. MOPO's fit)
    if isinstance(verbose, bool) or not isinstance(verbose, int) or verbose < 0:
        raise SystemExit(f"--set verbose={verbose!r}: verbose must be an integer >= 0 (0: quiet)")
    for name, instead in (("seed", "--seed"), ("env", "--env"), ("policy", "the algorithm's MlpPolicy"),
                          ("policy_kwargs", "--set net_arch=[...]")):
        if name in hp:
            raise SystemExit(f"--set {name}=...: {name} is not a hyperparameter; use {instead}")
    policy_kwargs = {"net_arch": hp.pop("net_arch")} if "net_arch" in hp else None
    noise = parse_action_noise(hp.pop("action_noise", None))
    if "action_noise" in inspect.signature(cls.__init__).parameters:
        hp["action_noise"] = noise
    elif noise is not None:
        raise SystemExit(f"{algo} takes no action_noise (it is not an off-policy method with a deterministic actor)")
    return cls(cls.default_policy, env, seed=seed, policy_kwargs=policy_kwargs, verbose=verbose, **hp)


def evaluation_env_kwargs(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The env kwargs for evaluation: the training ones, plus a step limit where the env has none."""
    out = dict(env_kwargs)
    if gym.spec(env_id).max_episode_steps is None and "max_episode_steps" not in out:
        out["max_episode_steps"] = DEFAULT_EVAL_STEP_LIMIT
    return out


def q_bias_text(q: dict[str, Any]) -> str:
    """Lines summarising `polyak.evaluation.evaluate_q_bias`: Q - G in reward units, per critic statistic."""
    lines = [f"critic bias Q - G over {q['n_states']} states of {q['n_episodes']} deterministic episodes "
             f"(gamma {q['gamma']:g}; states with tail weight gamma^(T-t) <= {q['max_tail_weight']:g}; "
             f"positive = overestimation):"]
    if q["n_states"] == 0:
        lines.append(f"  (episodes too short for gamma {q['gamma']:g}: no state has tail weight <= "
                     f"{q['max_tail_weight']:g}, so only the t = 0 bias is given; its tail is bootstrapped)")
    for name, s in [*q["critics"].items(), *([("soft", q["soft"])] if "soft" in q else [])]:
        if name != "min" and s == q["critics"]["min"]:  # one critic (DDPG): mean and Q1 equal the min
            continue
        label = {"min": "min over critics", "mean": "mean of critics", "q1": "Q1 (actor's critic)",
                 "soft": "soft return (min)"}.get(name, name)
        if q["n_states"] == 0:
            lines.append(f"  {label:<20} t=0 {s['bias_t0']:+.3f}")
            continue
        lines.append(f"  {label:<20} mean {s['bias_mean']:+.3f}  median {s['bias_median']:+.3f}  "
                     f"t=0 {s['bias_t0']:+.3f}  normalised {s['bias_normalized']:+.3f}  "
                     f"(Q {s['q_mean']:.3f} vs G {s['return_mean']:.3f})")
    if "soft" in q:
        lines.append(f"  SAC critic estimates a soft value: alpha {q['soft']['alpha']:.4g} x entropy "
                     f"{q['soft']['entropy_mean']:.3f} = {q['soft']['alpha_entropy']:+.4f} per step "
                     f"({q['soft']['alpha_entropy_discounted']:+.3f} over an infinite discounted horizon)")
    return "\n".join(lines)


class RunFolder:
    """One run's folder and every file in it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path) -> "RunFolder":
        folder = cls(path)
        folder.path.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    def is_finished(self) -> bool:
        """A finished run has its evaluation and its model."""
        return (self.path / EVAL_FILE).is_file() and self.model_path.is_file()

    def has_run(self) -> bool:
        """A run was started here (its config.json exists), finished or not."""
        return (self.path / CONFIG_FILE).is_file()

    def read_config(self) -> dict[str, Any]:
        return json.loads((self.path / CONFIG_FILE).read_text())

    def check_same_run(self, settings: dict[str, Any]) -> None:
        """Refuse to resume (or skip) a folder that holds a run of another command."""
        try:
            config = self.read_config()
        except (OSError, ValueError) as e:
            raise SystemExit(f"{self.path}: cannot read {CONFIG_FILE} ({e}); use --fresh or another --run-dir") from None
        differ = [k for k, v in settings.items() if config.get(k) != v]
        if differ:
            details = "; ".join(f"{k}: folder {config.get(k)!r}, command {settings[k]!r}" for k in differ)
            raise SystemExit(f"{self.path} holds a run of another command ({details}); --fresh starts over there, "
                             "or choose another --run-dir")

    def clear(self) -> None:
        """Remove what a run wrote here (config, logs, checkpoints, model, evaluation; train.log is the
        worker's output, written by the parent process, and stays)."""
        for name in (CONFIG_FILE, EVAL_FILE, MODEL_FILE, METRICS_FILE, EPISODES_FILE, "learning_curve.png"):
            (self.path / name).unlink(missing_ok=True)
        for sub in ("checkpoints", "tensorboard"):
            if (self.path / sub).is_dir():
                shutil.rmtree(self.path / sub)

    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        return sorted((self.path / "checkpoints").glob("step*.polyak"))

    def latest_checkpoint(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def remove_temporary_files(self) -> None:
        """Temporary files of saves that a kill interrupted (`.NAME.XXXX.tmp`, see io/checkpoint.py)."""
        for folder in (self.path, self.path / "checkpoints"):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)

    @staticmethod
    def buffer_fits(model) -> bool:
        """Checkpoints carry the replay buffer (an exact resume) when it is at most CHECKPOINT_BUFFER_LIMIT."""
        return model.replay_buffer_nbytes() <= CHECKPOINT_BUFFER_LIMIT

    def save_checkpoint(self, model, include_buffer: bool, keep: int) -> Path:
        """checkpoints/stepN.polyak; only the latest `keep` files stay (0: all)."""
        path = model.save(self.checkpoint_path(model.num_timesteps), include_buffer=include_buffer)
        if keep > 0:
            for old in self.checkpoints()[:-keep]:
                old.unlink(missing_ok=True)
        return path

    def read_eval(self) -> dict[str, Any]:
        return json.loads((self.path / EVAL_FILE).read_text())

    def write_config(self, *, algo: str, env_id: str, env_kwargs: dict[str, Any], n_envs: int, steps: int,
                     seed: int, overrides: dict[str, Any], model, command: str | None = None,
                     variant: str | None = None, loop: str | None = None, online_steps: int = 0) -> None:
        config = {"algorithm": algo, "env": env_id, "env_kwargs": env_kwargs, "n_envs": n_envs, "steps": steps,
                  **({"online_steps": online_steps} if online_steps else {}),
                  "seed": seed, **({"variant": variant} if variant else {}), "library_version": __version__,
                  "command": " ".join(sys.argv) if command is None else command, "overrides": overrides,
                  "hyperparameters": model.config.to_dict(), **({"loop": loop} if loop else {}),
                  "action_noise": None if getattr(model, "action_noise", None) is None else repr(model.action_noise)}
        (self.path / CONFIG_FILE).write_text(json.dumps(config, indent=2))

    def logger(self, progress_bar: bool = False, resume_step: int | None = None) -> RunLogger:
        """The training logger: metrics.csv, episodes.csv, tensorboard/ in this folder (cut back to
        `resume_step` when a run resumes from a checkpoint there)."""
        return RunLogger(self.path, verbose=0, progress_bar=progress_bar, resume_step=resume_step)

    def checkpoint_path(self, step: int) -> Path:
        return self.path / "checkpoints" / f"step{step:09d}.polyak"

    def finish(self, model, *, algo: str, env_id: str, env_kwargs: dict[str, Any], seed: int, eval_episodes: int,
               train_seconds: float, steps_per_second: float, include_buffer: bool = False,
               extra: dict[str, Any] | None = None, title: str = "") -> tuple[dict[str, Any], list[str]]:
        """Save the model, evaluate it (deterministic episodes, the critic's bias where it has a Q critic,
        the algorithm's exact extras), write eval.json and the learning curve. Returns (eval, notes to print)."""
        model.save(self.model_path, include_buffer=include_buffer)
        eval_kwargs = evaluation_env_kwargs(env_id, env_kwargs)
        returns, lengths = evaluate_policy(model, make_training_env(env_id, 1, eval_kwargs), eval_episodes,
                                           seed=EVAL_SEED_OFFSET + seed, return_episode_rewards=True)
        result = {"eval_return_mean": float(np.mean(returns)), "eval_return_std": float(np.std(returns)),
                  "eval_returns": returns, "eval_lengths": lengths, "train_seconds": round(train_seconds, 2),
                  "steps_per_second": round(steps_per_second, 1), "steps": model.num_timesteps, **(extra or {})}
        if eval_kwargs != env_kwargs:
            result["eval_max_episode_steps"] = eval_kwargs.get("max_episode_steps")
        notes = []
        if model.has_q_critic:  # the critic's Q(s_t, a_t) vs the return obtained, same episodes
            q_bias = evaluate_q_bias(model, make_training_env(env_id, 1, eval_kwargs), eval_episodes,
                                     seed=EVAL_SEED_OFFSET + seed)
            result.update(q_bias=q_bias["bias_mean"], q_bias_t0=q_bias["bias_t0"],
                          q_bias_normalized=q_bias["bias_normalized"], q_bias_details=q_bias)
            notes.append(q_bias_text(q_bias))
        extras, extra_notes = model.evaluation_extras()
        result.update(extras)
        notes += extra_notes
        (self.path / EVAL_FILE).write_text(json.dumps(result, indent=2))
        plot_learning_curve(self.path, title or f"{algo.upper()} on {env_id} (seed {seed})",
                            result["eval_return_mean"])
        return result, notes


def train_one(args: argparse.Namespace) -> tuple[RunFolder, dict[str, Any], list[str]]:
    """`polyak train ALGO --env ENV --seed S ...` for one seed: build (or resume), train with checkpoints, save,
    evaluate.

    Into a `--run-dir` that holds an unfinished run of the same command, training resumes from the latest
    checkpoint (logs cut back to its step); a finished run is not retrained; `--fresh` starts over.
    """
    hp, n_envs, env_kwargs = training_settings(args)
    entry = registry.entry(args.algo)
    if args.save_buffer and entry.family == "tabular":
        raise SystemExit(f"{args.algo} has no replay buffer: drop --save-buffer")
    if args.checkpoint_every < 0:
        raise SystemExit(f"--checkpoint-every must be >= 0 (0: no checkpoints), got {args.checkpoint_every}")
    path = Path(args.run_dir) if args.run_dir else Path(args.runs_root) / run_folder_name(
        args.algo, args.env, args.seed, stamp=time_stamp())
    folder = RunFolder(path)
    settings = {"algorithm": args.algo, "env": args.env, "env_kwargs": env_kwargs, "n_envs": n_envs,
                "steps": args.steps, "seed": args.seed, "overrides": hp, **({"variant": args.variant}
                                                                             if args.variant else {}),
                **({"online_steps": args.online_steps} if getattr(args, "online_steps", 0) else {})}
    if folder.has_run() and args.fresh:
        folder.clear()
    elif folder.is_finished():
        folder.check_same_run(settings)
        print(f"{folder.path} holds a finished run of this command; nothing to do (--fresh retrains it)")
        return folder, folder.read_eval(), []
    elif folder.has_run():
        folder.check_same_run(settings)
    env = make_training_env(args.env, n_envs, env_kwargs)
    checkpoint = folder.latest_checkpoint()
    if checkpoint is not None:
        model = entry.cls.load(checkpoint, env=env)
        print(f"polyak {args.algo.upper()} on {args.env}: resuming {folder.path} from {checkpoint.name} "
              f"(step {model.num_timesteps} of {args.steps})", flush=True)
    else:
        model = build_model(args.algo, env, args.seed, hp)
        folder.clear()  # an unfinished run without a checkpoint starts over (files of other programs stay)
        folder = RunFolder.create(path)
        folder.write_config(**{k: v for k, v in settings.items() if k not in ("algorithm", "env")},
                            algo=args.algo, env_id=args.env, model=model)
        print(f"polyak {args.algo.upper()} on {args.env}: {args.steps} steps, seed {args.seed} -> {folder.path}",
              flush=True)
    folder.remove_temporary_files()
    resume_step = model.num_timesteps if checkpoint is not None else None
    logger = folder.logger(progress_bar=not args.no_progress, resume_step=resume_step)
    callback = None
    if args.checkpoint_every:
        every, keep = args.checkpoint_every, args.keep_checkpoints
        last = [model.num_timesteps // every]  # a checkpoint each time the step count passes a multiple of N
        # (not only lands on one: vector envs and evolution strategies' generations advance by many steps)

        def callback(m):
            if m.num_timesteps // every > last[0]:
                last[0] = m.num_timesteps // every
                logger.flush()  # the logs hold every row up to the checkpoint's step
                folder.save_checkpoint(m, include_buffer=args.save_buffer or folder.buffer_fits(m), keep=keep)

    t0 = time.perf_counter()
    try:
        model.learn(max(0, args.steps - model.num_timesteps), callback=callback, log_interval=args.log_interval,
                    logger=logger)
        if getattr(args, "online_steps", 0):  # offline-to-online: env steps in --env after the gradient steps
            model.learn(max(0, args.steps + args.online_steps - model.num_timesteps), callback=callback,
                        log_interval=args.log_interval, logger=logger, online=True)
    finally:
        logger.close()
    train_s = time.perf_counter() - t0
    result, notes = folder.finish(model, algo=args.algo, env_id=args.env, env_kwargs=env_kwargs, seed=args.seed,
                                  eval_episodes=args.eval_episodes, train_seconds=train_s,
                                  steps_per_second=(args.steps - (resume_step or 0)) / train_s,
                                  include_buffer=args.save_buffer)
    return folder, result, notes
