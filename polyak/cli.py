"""Command line: `polyak train`, `polyak sweep`, `polyak tune`, `polyak eval`, `polyak report`, `polyak bench`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import polyak
from polyak.accel.controllers import make_controller
from polyak.accel.evaluation import TASKS, evaluate, write_results
from polyak.accel.oracle import trial_floors
from polyak.accel.speed import main as speed_main
from polyak.algos import registry
from polyak.core.config import HyperparameterError
from polyak.data import datasets
from polyak.envs.spaces import SpaceError
from polyak.evaluation import evaluate_policy, evaluate_q_bias
from polyak.io.checkpoint import CheckpointError
from polyak.runs.experiments import sweep_command, train_many
from polyak.runs.export import FORMATS, ExportError, export_policy
from polyak.runs.report import RunFolderError, write_report
from polyak.runs.run import MODEL_FILE, make_training_env, parse_overrides, q_bias_text, train_one
from polyak.runs.tune import tune_command


def cmd_train(args: argparse.Namespace) -> int:
    """One training run: a run folder with config.json, metrics.csv, episodes.csv, tensorboard/, the model,
    eval.json and learning_curve.png; several seeds go through polyak/runs/experiments.py."""
    if args.dataset is not None:  # offline: the dataset reaches the model as its `dataset` argument (every seed's)
        if registry.entry(args.algo).family != "offline":
            raise SystemExit(f"--dataset is for the offline algorithms ({', '.join(_offline_names())}), "
                             f"not {args.algo}")
        args.set = [*args.set, f"dataset={args.dataset}"]
    elif registry.entry(args.algo).family == "offline" and not any(s.startswith("dataset=") for s in args.set):
        raise SystemExit(f"{args.algo} learns from a dataset: add --dataset ID (make one with `polyak data collect`)")
    if args.online_steps and registry.entry(args.algo).family != "offline":
        raise SystemExit(f"--online-steps continues an offline algorithm online ({', '.join(_offline_names())}), "
                         f"not {args.algo}")
    if args.online_steps and args.seeds is not None:
        raise SystemExit("--online-steps runs one seed per command: drop --seeds")
    if args.dataset is not None:  # an offline run evaluates in the dataset's env, made as the data was collected
        data_env, data_kwargs = datasets.dataset_env(args.dataset)
        args.env = args.env or data_env
        if args.env == data_env and data_kwargs:  # --env-kwarg values come later and win
            args.env_kwarg = [f"{k}={json.dumps(v)}" for k, v in data_kwargs.items()] + list(args.env_kwarg or [])
    args.env = args.env or "Pendulum-v1"
    if args.seeds is not None:  # several seeds: one `polyak train` per seed, or all vmapped in one process
        return train_many(args)
    if args.workers is not None or args.backend != "local" or args.address:
        raise SystemExit("--workers, --backend and --address apply to several seeds: add --seeds N")
    folder, result, notes = train_one(args)
    print(f"deterministic evaluation over {args.eval_episodes} episodes: "
          f"{result['eval_return_mean']:.4g} ± {result['eval_return_std']:.3g}  "
          f"({result['steps_per_second']:.0f} steps/s)")
    for note in notes:
        print(note)
    print(f"run folder: {folder.path}  (config.json, metrics.csv, episodes.csv, tensorboard/, "
          f"learning_curve.png, {MODEL_FILE}, eval.json)")
    return 0


def _offline_names() -> list[str]:
    return [n for n in registry.names() if registry.entry(n).family == "offline"]


def cmd_data_collect(args: argparse.Namespace) -> int:
    """Run a policy (a run folder or model file, `random`, or a controller) in ENV and write a Minari dataset."""
    try:
        seeded = {"seed": args.seed} if args.policy in ("random", "random-perturbation") else {}
        controller = make_controller(args.policy, **seeded)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(str(err)) from None
    env = make_training_env(args.env, 1, parse_overrides(args.env_kwarg, "--env-kwarg"))
    # a controller acts on polyak's Gymnasium adapter (its JAX env is `.env`), in the action mode it was written for
    adapter = env.unwrapped
    needed, has = getattr(controller, "action_mode", None), getattr(getattr(adapter, "env", None), "action_mode", None)
    if needed is not None and has is not None and has != needed:
        raise SystemExit(f"{controller.name} needs {args.env} with action_mode={needed!r}, not {has!r}: add "
                         f"--env-kwarg action_mode={needed}")
    t0 = time.perf_counter()
    episodes = datasets.collect_episodes(env, controller.act, args.episodes, seed=args.seed, noise=args.noise,
                                         on_reset=lambda _env, obs, info: controller.reset(adapter, obs, info))
    path = datasets.write_dataset(args.id, episodes, env.observation_space, env.action_space, env_id=args.env,
                                  env_kwargs=parse_overrides(args.env_kwarg, "--env-kwarg"),
                                  algorithm_name=f"{controller.name} + N(0, {args.noise:g}^2) noise",
                                  description=f"polyak data collect --policy {args.policy} --episodes "
                                              f"{args.episodes} --noise {args.noise:g} --seed {args.seed}",
                                  overwrite=args.overwrite)
    returns = [e.episode_return for e in episodes]
    print(f"{args.id}: {len(episodes)} episodes, {sum(len(e) for e in episodes)} steps, return "
          f"{np.mean(returns):.2f} ± {np.std(returns):.2f} ({time.perf_counter() - t0:.1f} s) -> {path}")
    return 0


def _kwargs_text(kwargs: dict) -> str:
    return f" ({', '.join(f'{k}={json.dumps(v)}' for k, v in kwargs.items())})" if kwargs else ""


def cmd_data_import(args: argparse.Namespace) -> int:
    path, n = datasets.import_columns(args.file, args.id, env_id=args.env, overwrite=args.overwrite)
    print(f"{args.id}: {n} episodes from {args.file} -> {path}")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    info = datasets.dataset_info(args.id)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{info['dataset_id']} ({info['path']}, {info['size_bytes'] / 1e6:.2f} MB)\n"
          f"  env {info['env_id']}{_kwargs_text(info['env_kwargs'])}: observations {info['observation_space']}, actions {info['action_space']}\n"
          f"  {info['episodes']} episodes, {info['steps']} steps (mean length {info['episode_length_mean']:.1f}; "
          f"{info['terminations']} terminated, {info['truncations']} truncated)\n"
          f"  return {info['return_mean']:.2f} ± {info['return_std']:.2f} (min {info['return_min']:.2f}, "
          f"max {info['return_max']:.2f})")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    return sweep_command(args)


def cmd_tune(args: argparse.Namespace) -> int:
    return tune_command(args)


def cmd_eval(args: argparse.Namespace) -> int:
    target = Path(args.run_dir)
    model_path = target / MODEL_FILE if target.is_dir() else target
    model = polyak.load(model_path)
    cfg_path = model_path.parent / "config.json"
    config = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    env_id = args.env or config.get("env") or model.env_id
    if env_id is None:
        raise SystemExit("cannot tell which environment to evaluate on: pass --env")
    env_kwargs = config.get("env_kwargs", {}) if env_id == config.get("env") else {}
    returns, _ = evaluate_policy(model, make_training_env(env_id, 1, env_kwargs), args.episodes, deterministic=not args.stochastic,
                                 seed=args.seed, return_episode_rewards=True)
    print(f"{model.name.upper()} on {env_id}, {args.episodes} episodes: "
          f"return {np.mean(returns):.2f} ± {np.std(returns):.2f} (min {np.min(returns):.2f}, max {np.max(returns):.2f})")
    if args.q_bias:
        if not model.has_q_critic:
            raise SystemExit(f"--q-bias needs a model with a Q critic (an off-policy algorithm); {model.name} has none")

        print(q_bias_text(evaluate_q_bias(model, make_training_env(env_id, 1, env_kwargs), args.episodes, seed=args.seed)))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        paths = export_policy(args.run_dir, args.format, args.output)
    except ExportError as e:
        raise SystemExit(f"polyak export: {e}") from None
    for path in paths:
        print(f"wrote {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.reps < 1 or not 0 < args.confidence < 1 or args.smooth < 1:
        raise SystemExit("polyak report: --reps and --smooth must be >= 1 and --confidence in (0, 1)")
    try:
        report = write_report(args.run_dirs, args.out, metric=args.metric, reps=args.reps,
                              confidence=args.confidence, seed=args.seed, smooth=args.smooth)
    except RunFolderError as e:
        raise SystemExit(f"polyak report: {e}") from None
    for env, entry in report["environments"].items():
        for algo, s in entry["algorithms"].items():
            print(f"{env:<20} {algo.upper():<6} n={s['n']:<3} mean {s['mean']:.2f} ± {s['std']:.2f}  "
                  f"IQM {s['iqm']:.2f} [{s['iqm_ci'][0]:.2f}, {s['iqm_ci'][1]:.2f}]")
    for skipped in report["skipped"]:
        print(f"skipped: {skipped['reason']}")
    print(f"wrote {Path(args.out) / 'report.md'}, report.json and learning-curve PNGs")
    return 0


def cmd_accel_evaluate(args: argparse.Namespace) -> int:
    evaluations = []
    floors = None
    if args.task in ("transverse", "cheetah") and not args.no_oracle:  # the trials are the same in both
        t0 = time.perf_counter()
        floors = trial_floors(range(args.seed, args.seed + args.trials))
        print(f"oracle (best MAE reachable per trial): median {1e6 * np.median(floors):.1f} um, "
              f"{args.trials} trials in {time.perf_counter() - t0:.1f} s", flush=True)
    for item in args.controllers:
        spec, _, steps_text = item.rpartition("@") if item.rpartition("@")[2].isdigit() else (item, "", "")
        steps = int(steps_text) if steps_text else args.steps
        kwargs = {}
        if spec == "nelder-mead":
            kwargs = {"budget": steps or TASKS[args.task].default_steps, "initial_step": args.nm_step}
        elif spec == "random":
            kwargs = {"seed": args.seed}
        elif spec == "random-perturbation":
            kwargs = {"seed": args.seed, "budget": steps or TASKS[args.task].default_steps}
        try:
            controller = make_controller(spec, **kwargs)
        except (ValueError, FileNotFoundError) as err:
            raise SystemExit(str(err)) from None
        t0 = time.perf_counter()
        evaluation = evaluate(controller, args.task, trials=args.trials, steps=steps, seed=args.seed,
                              reading_noise=args.noise, floors=floors)
        evaluations.append(evaluation)
        print(f"{evaluation.controller}: {args.trials} trials in {time.perf_counter() - t0:.1f} s", flush=True)
    paths = write_results(evaluations, args.out, plot_trial=args.plot_trial)
    print(paths["table"].read_text())
    print(f"written: {paths['table']}, {paths['json']}, {paths['plot']}")
    return 0


def cmd_accel_speed(args: argparse.Namespace) -> int:
    return int(speed_main(args) or 0)


def _int_at_least(low: int):
    """argparse type: an integer >= low (the error names the flag through argparse)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polyak", description="Deep RL for continuous control (JAX).")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train an agent and write a run folder",
                        description=f"Train an algorithm ({', '.join(registry.names())}) "
                                    "on a Gymnasium environment. Writes a run folder with "
                                    "config.json, metrics.csv, episodes.csv, TensorBoard events, "
                                    "learning_curve.png, model.polyak and eval.json (deterministic evaluation).")
    tr.add_argument("algo", choices=registry.names(),
                    help="algorithm (qlearning: tabular, for Discrete x Discrete envs such as FrozenLake-v1)")
    tr.add_argument("--env", default=None,
                    help="Gymnasium environment id (default: Pendulum-v1, or the env the --dataset names)")
    tr.add_argument("--dataset", default=None, metavar="ID",
                    help="offline algorithms: the local Minari dataset to learn from (`polyak data collect`); "
                         "--steps counts gradient steps, and the policy is evaluated in --env (the dataset's env, "
                         "made with the keywords it was collected with; --env-kwarg overrides them)")
    tr.add_argument("--steps", type=_int_at_least(1), default=20_000, help="environment steps (default: 20000)")
    tr.add_argument("--online-steps", type=_int_at_least(0), default=0, metavar="N",
                    help="offline algorithms: after --steps gradient steps on the dataset, N environment steps of "
                         "online fine-tuning in --env (replay buffer seeded with the dataset; default: 0)")
    tr.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed (default: 0)")
    tr.add_argument("--n-envs", type=_int_at_least(1), default=None, metavar="N",
                    help="train on N copies of the env in a vector env (default: 1, or the tuned value)")
    tr.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                    help="keyword for gymnasium.make, e.g. --env-kwarg reward=differential (repeatable)")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a hyperparameter, e.g. --set learning_rate=3e-4 --set net_arch=[64,64] "
                         "--set action_noise=ou:0.2 (repeatable)")
    tr.add_argument("--no-tuned", action="store_true",
                    help="ignore the tuned hyperparameters recorded for this algorithm and env (polyak/zoo.py)")
    tr.add_argument("--run-dir", default=None,
                    help="run folder (default: RUNS_ROOT/ALGO-ENV-sSEED-TIMESTAMP). A folder with an unfinished run of "
                         "the same command resumes from its latest checkpoint; a finished one is not retrained")
    tr.add_argument("--fresh", action="store_true",
                    help="start over in --run-dir, deleting what an earlier run of it wrote")
    tr.add_argument("--runs-root", default="runs", help="parent folder of run folders (default: runs)")
    tr.add_argument("--eval-episodes", type=_int_at_least(1), default=10, help="deterministic evaluation episodes (default: 10)")
    tr.add_argument("--log-interval", type=_int_at_least(1), default=1000, help="steps between metric rows (default: 1000)")
    tr.add_argument("--checkpoint-every", type=_int_at_least(0), default=0, metavar="N",
                    help="also write checkpoints/stepN.polyak every N steps (default: off); they carry the replay "
                         "buffer when it is at most 1 GiB, so a resume is exact; a larger buffer is left out unless "
                         "--save-buffer, and a resume from such a checkpoint refills learning_starts transitions "
                         "before it updates again (not exact)")
    tr.add_argument("--keep-checkpoints", type=_int_at_least(0), default=2, metavar="K",
                    help="keep only the latest K checkpoints (default: 2; 0 keeps all)")
    tr.add_argument("--save-buffer", action="store_true",
                    help="include the replay buffer in model.polyak and in every checkpoint")
    tr.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    tr.add_argument("--variant", default=None, metavar="LABEL",
                    help="label recorded in config.json; `polyak report` keeps runs with different labels apart "
                         "(set by `polyak sweep` to the run's grid values)")
    ms = tr.add_argument_group("several seeds (polyak/experiments.py)")
    ms.add_argument("--seeds", type=_int_at_least(1), default=None, metavar="N",
                    help="train seeds SEED..SEED+N-1, one run folder each: RUNS_ROOT/ALGO-ENV-sSEED-TIMESTAMP, "
                         "or RUN_DIR/seedS with --run-dir; prints per-seed returns and mean ± std. On JAX envs "
                         "(polyak/..., gymnax/...) without --workers: all seeds vmapped in one process")
    ms.add_argument("--workers", type=_int_at_least(1), default=None, metavar="K",
                    help="seeds trained at the same time (default: min(N, CPUs))")
    ms.add_argument("--backend", choices=["local", "ray"], default="local",
                    help="local: worker processes on this machine; ray: one Ray task per seed (default: local)")
    ms.add_argument("--address", default=None, metavar="ADDR",
                    help="Ray cluster address for --backend ray (default: start a local Ray instance with K CPUs)")
    tr.set_defaults(func=cmd_train)

    sw = sub.add_parser("sweep", help="run a grid of algorithms x envs x seeds x hyperparameters (resumable)",
                        description="Expand the TOML sweep FILE into runs, one `polyak train` run folder each under "
                                    "the sweep's root, and run those not finished yet (a run is finished when its "
                                    "folder has eval.json and model.polyak; unfinished ones resume from their latest "
                                    "checkpoint, or start over without one). Writes ROOT/sweep.json; `polyak report ROOT` summarises it.")
    sw.add_argument("file", metavar="FILE", help="sweep file (TOML), see README.md")
    sw.add_argument("--backend", choices=["local", "ray"], default="local",
                    help="local: worker processes on this machine; ray: one Ray task per run (default: local)")
    sw.add_argument("--workers", type=int, default=None, metavar="K",
                    help="runs at the same time (default: min(runs, CPUs))")
    sw.add_argument("--address", default=None, metavar="ADDR",
                    help="Ray cluster address for --backend ray (default: start a local Ray instance with K CPUs)")
    sw.add_argument("--dry-run", action="store_true", help="list the runs that would run and those skipped; run nothing")
    sw.set_defaults(func=cmd_sweep)

    tu = sub.add_parser("tune", help="search hyperparameters with Optuna (resumable); writes best.json for the zoo",
                        description="Search the hyperparameters that matter for ALGO on ENV with Optuna (TPE sampler, "
                                    "median pruner). Each trial is a `polyak train` run folder with seed SEED + trial "
                                    "number, evaluated deterministically every STEPS / EVALS steps (reported to the "
                                    "pruner); its value is the final mean deterministic return over --eval-episodes "
                                    "episodes. The study is stored in STUDY_DIR/study.db: the same command again "
                                    "resumes it. Writes STUDY_DIR/best.json (zoo format), summary.md (trials, "
                                    "parameter importances, a snippet for polyak/runs/zoo.py), report.json and "
                                    "history.png. Needs Optuna: pip install \"polyak[tune]\".")
    tu.add_argument("algo", choices=registry.names(), help="algorithm (those without a built-in space need --space)")
    tu.add_argument("--env", default="Pendulum-v1", help="Gymnasium environment id (default: Pendulum-v1)")
    tu.add_argument("--trials", type=_int_at_least(1), required=True, metavar="N",
                    help="finished trials (complete, pruned or failed) the study should hold; a rerun runs only the "
                         "missing ones, a larger N extends the study")
    tu.add_argument("--steps", type=_int_at_least(1), required=True, metavar="S", help="environment steps per trial")
    tu.add_argument("--evals", type=_int_at_least(1), default=5, metavar="K",
                    help="evaluations per trial, every S/K steps; the last is the objective (default: 5)")
    tu.add_argument("--eval-episodes", type=_int_at_least(5), default=10, metavar="E",
                    help="deterministic episodes per evaluation, >= 5 (default: 10)")
    tu.add_argument("--seed", type=_int_at_least(0), default=0,
                    help="trial k trains with seed SEED + k; also seeds the sampler (default: 0)")
    tu.add_argument("--space", default=None, metavar="FILE.json",
                    help='replace the built-in search space, e.g. {"learning_rate": {"log_uniform": [1e-4, 1e-2]}, '
                         '"batch_size": {"choice": [64, 256]}, "n_epochs": {"int": [1, 20]}}')
    tu.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="fix a hyperparameter (not searched), as for train (repeatable)")
    tu.add_argument("--no-tuned", action="store_true",
                    help="start from the class defaults instead of the zoo's values for ALGO on ENV")
    tu.add_argument("--n-envs", type=_int_at_least(1), default=None, metavar="N",
                    help="vector env copies per trial (default: 1, or the zoo's value)")
    tu.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                    help="keyword for gymnasium.make (repeatable)")
    tu.add_argument("--study-dir", default=None, metavar="DIR",
                    help="study folder (default: RUNS_ROOT/tune/ALGO-ENV)")
    tu.add_argument("--runs-root", default="runs", help="parent of the default study folder (default: runs)")
    tu.add_argument("--storage", default=None, metavar="URL",
                    help="Optuna storage URL shared by several machines (default: sqlite:///STUDY_DIR/study.db)")
    tu.add_argument("--log-interval", type=_int_at_least(1), default=1000, help="steps between metric rows (default: 1000)")
    tu.add_argument("--backend", choices=["local", "ray"], default="local",
                    help="local: trials one after another in this process; ray: K Ray tasks share the trials "
                         "(default: local)")
    tu.add_argument("--workers", type=_int_at_least(1), default=None, metavar="K",
                    help="--backend ray: trials at the same time (default: min(trials to run, CPUs))")
    tu.add_argument("--address", default=None, metavar="ADDR",
                    help="Ray cluster address for --backend ray (default: a local Ray instance with K CPUs); the "
                         "study folder must be on a filesystem every node shares")
    tu.set_defaults(func=cmd_tune)

    ev = sub.add_parser("eval", help="evaluate a trained model",
                        description="Run deterministic evaluation episodes of RUN_DIR/model.polyak (or a model file).")
    ev.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by `polyak train`, or a .polyak file")
    ev.add_argument("--episodes", type=int, default=10, help="number of episodes (default: 10)")
    ev.add_argument("--env", default=None, help="environment id (default: the run's)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the first episode (default: 0)")
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic policy")
    ev.add_argument("--q-bias", action="store_true",
                    help="also compare the critic's Q(s_t, a_t) with the discounted return obtained from s_t "
                         "(deterministic episodes, polyak.evaluation.evaluate_q_bias)")
    ev.set_defaults(func=cmd_eval)

    xp = sub.add_parser("export", help="write the deterministic policy as ONNX or NumPy arrays for deployment",
                        description="Export the deterministic policy of RUN_DIR/model.polyak (or a model file) with the "
                                    "observation normaliser and the action rescaling inside: observations in, actions "
                                    "out, both in the env's units. onnx: one ONNX graph (needs pip install "
                                    "\"polyak[export]\"); npz: the weights as NumPy arrays and NAME_forward.py, a "
                                    "NumPy-only forward function. Either is checked against the model's predict.")
    xp.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by `polyak train`, or a .polyak file")
    xp.add_argument("--format", choices=FORMATS, default="onnx", help="onnx or npz (default: onnx)")
    xp.add_argument("--output", default=None, metavar="PATH",
                    help="file to write (default: RUN_DIR/policy.FORMAT, or MODEL.FORMAT next to a model file)")
    xp.set_defaults(func=cmd_export)

    rp = sub.add_parser("report", help="multi-seed statistics and learning curves of run folders",
                        description="Group run folders by (algorithm, environment) and write report.md, report.json "
                                    "and one learning-curve PNG per environment: mean ± sample std (ddof=1), median, "
                                    "IQM with a stratified-bootstrap confidence interval over seeds.")
    rp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                    help="run folders written by `polyak train`, or folders that contain run folders")
    rp.add_argument("--out", default="report", help="output folder (default: report)")
    rp.add_argument("--metric", default="final", choices=["final", "train-last", "train-mean"],
                    help="score per run: final = deterministic evaluation in eval.json; train-last = mean of the "
                         "last 10 training episodes; train-mean = mean of all training episodes (default: final)")
    rp.add_argument("--reps", type=int, default=50_000, help="bootstrap resamples (default: 50000, as rliable)")
    rp.add_argument("--confidence", type=float, default=0.95, help="confidence level of the interval (default: 0.95)")
    rp.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    rp.add_argument("--smooth", type=int, default=10,
                    help="moving-average window, in episodes, of the plotted curves (default: 10)")
    rp.set_defaults(func=cmd_report)

    ac = sub.add_parser("accel", help="accelerator tasks: evaluate controllers and trained agents, env speed",
                        description="Accelerator tasks (polyak/TransverseTuning-v0, polyak/CheetahTransverseTuning-v0, "
                                    "polyak/OrbitSteering-v0).")
    acs = ac.add_subparsers(dest="accel_command", required=True)
    ae = acs.add_parser("evaluate", help="seeded, fixed trials of a task with controllers or trained agents",
                        description="Run the same seeded trials with each controller and write a score table "
                                    "(results.md), per-trial metrics (results.json) and a plot of one trial. "
                                    "Controllers: do-nothing, random, nelder-mead, random-perturbation, svd "
                                    "(OrbitSteering), or a run folder / .polyak file of a trained agent; "
                                    "CONTROLLER@N gives that one N steps "
                                    "per trial (e.g. nelder-mead@150 RUN_DIR@50).")
    ae.add_argument("controllers", nargs="+", metavar="CONTROLLER_OR_RUN_DIR")
    ae.add_argument("--task", choices=list(TASKS), default="transverse",
                    help="transverse: TransverseTuning challenge trials; cheetah: the same trials tracked by Cheetah "
                         "in the challenge's conventions (polyak/CheetahTransverseTuning-v0); orbit: OrbitSteering "
                         "(default: transverse)")
    ae.add_argument("--trials", type=int, default=100, help="number of trials, seeds SEED..SEED+N-1 (default: 100)")
    ae.add_argument("--steps", type=int, default=None,
                    help="steps per trial (default: 150 for transverse and cheetah, 50 for orbit)")
    ae.add_argument("--seed", type=int, default=0, help="seed of the first trial (default: 0)")
    ae.add_argument("--noise", type=float, default=0.0, help="Gaussian reading noise std in metres (default: 0)")
    ae.add_argument("--nm-step", type=float, default=0.1,
                    help="Nelder-Mead initial simplex step as a fraction of each magnet's limit (default: 0.1)")
    ae.add_argument("--plot-trial", type=int, default=0, help="which trial to plot (default: 0)")
    ae.add_argument("--no-oracle", action="store_true",
                    help="transverse: skip the per-trial oracle (the best MAE reachable, found by projected Adam "
                         "through the differentiable optics from 128 starts) and the median final MAE / oracle column")
    ae.add_argument("--out", default="accel-eval", help="output folder (default: accel-eval)")
    ae.set_defaults(func=cmd_accel_evaluate)
    asp = acs.add_parser("speed", help="environment steps per second: vmapped JAX envs and the Gymnasium adapter")
    asp.add_argument("--env", choices=["transverse", "orbit", "pendulum"], default="transverse")
    asp.add_argument("--num-envs", type=int, nargs="+", default=[1, 1024], help="vmapped batch sizes (default: 1 1024)")
    asp.add_argument("--steps", type=int, default=200, help="steps per measurement (default: 200)")
    asp.add_argument("--repeats", type=int, default=5, help="repeats; the median is reported (default: 5)")
    asp.set_defaults(func=cmd_accel_speed)

    da = sub.add_parser("data", help="offline datasets (Minari format, under $MINARI_DATASETS_PATH): collect, "
                                     "import, info")
    das = da.add_subparsers(dest="data_command", required=True)
    dc = das.add_parser("collect", help="run a policy in an env and write a Minari dataset",
                        description="Run a policy for N episodes and write them as a Minari dataset (terminations "
                                    "and truncations kept apart, final observations kept).")
    dc.add_argument("--env", required=True, help="Gymnasium environment id")
    dc.add_argument("--policy", required=True, metavar="RUN_DIR|random|CONTROLLER",
                    help="a run folder or .polyak file (deterministic policy), random, or a controller of "
                         "`polyak accel evaluate`")
    dc.add_argument("--episodes", type=_int_at_least(1), required=True, metavar="N")
    dc.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                    help="Gaussian action noise, std in units of half the action range (default: 0)")
    dc.add_argument("--id", required=True, metavar="NAMESPACE/ENV/NAME-v0", help="dataset id")
    dc.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the first episode (default: 0)")
    dc.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                    help="keyword for gymnasium.make (repeatable), e.g. action_mode=direct for nelder-mead; "
                         "recorded in the dataset, so offline training evaluates in the same env")
    dc.add_argument("--overwrite", action="store_true", help="replace a dataset of that id")
    dc.set_defaults(func=cmd_data_collect)
    di = das.add_parser("import", help="logged arrays (.npz, .csv, .h5) -> a Minari dataset",
                        description="Columns obs, action, reward, terminated, truncated or episode ids, and "
                                    "optionally next_obs (without it a truncated episode's last step is dropped). "
                                    "CSV: vector columns as obs_0, obs_1, ...")
    di.add_argument("file", metavar="FILE")
    di.add_argument("--id", required=True, metavar="NAMESPACE/ENV/NAME-v0", help="dataset id")
    di.add_argument("--env", required=True, help="the environment id the data comes from (its spaces)")
    di.add_argument("--overwrite", action="store_true", help="replace a dataset of that id")
    di.set_defaults(func=cmd_data_import)
    dn = das.add_parser("info", help="size, episodes and return statistics of a dataset")
    dn.add_argument("id", metavar="ID")
    dn.add_argument("--json", action="store_true", help="print the statistics as JSON")
    dn.set_defaults(func=cmd_data_info)

    sub.add_parser("bench", help="speed benchmark against Stable-Baselines3 and SBX (same run); "
                                 "`polyak bench --help` lists its options")
    return parser


def run_benchmark(name: str, argv: list[str]) -> int:
    """`python -m benchmarks.NAME ARGV` in the source checkout this package was installed from (the benchmarks
    are scripts in the repository, not part of the installed library)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "benchmarks" / f"{name}.py").is_file():
        raise SystemExit(f"the benchmarks are scripts in polyak's repository (benchmarks/{name}.py), not part of an "
                         f"installed package: clone the repository, `pip install -e .` and run `polyak bench` there")
    return subprocess.call([sys.executable, "-m", f"benchmarks.{name}", *argv], cwd=root)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # everything after `bench` belongs to benchmarks/bench.py's own parser
        return run_benchmark("bench", argv[1:])
    args = make_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (HyperparameterError, SpaceError, CheckpointError, datasets.DatasetError) as e:
        raise SystemExit(f"polyak {args.command}: {e}") from None  # bad input: the message, not a traceback


if __name__ == "__main__":
    sys.exit(main())
