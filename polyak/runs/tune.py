"""`polyak tune ALGO --env ENV --trials N --steps S`: a hyperparameter search with Optuna, resumable.

* **Search space.** `search_space(algo, steps, n_envs)` gives, per algorithm, the hyperparameters that matter
  (only fields of the algorithm's config dataclass, plus `net_arch`, which the config maps onto its hidden
  layers); `--space FILE.json` replaces it. Keys fixed with `--set` are not searched.
* **Objective.** One trial = one `polyak train` run folder (`RunFolder`, `build_model`, the model's own `learn`)
  with a seed derived from the trial number (SEED + number). Every S/K steps the policy is evaluated
  deterministically on the run's evaluation episodes (`evaluate_policy`, reset seeds 10_000 + seed, ...);
  the value is reported to Optuna, whose pruner may stop the trial. The objective is the final mean
  deterministic return over `eval_episodes` (>= 5) episodes, i.e. the trial's eval.json. A trial that meets
  NaN/inf (training, or a non-finite evaluation) is recorded as failed and the study goes on.
* **Study.** TPE sampler, median pruner; stored in SQLite at STUDY_DIR/study.db. `--trials N` is the number of
  finished trials (complete, pruned or failed) the study should hold: running the same command again after an
  interruption runs only the missing ones, a larger N extends the study; other settings must stay the same.
* **Backends.** local: the trials run one after another in this process. ray: K Ray tasks, each a worker
  process running its share of the trials against the same study (on a cluster, STUDY_DIR must be on a
  filesystem every node shares, or `--storage` names a database server).
* **Output** in STUDY_DIR: trials/trial-NNNN/ (run folders), best.json (the best trial's settings in the zoo's
  format, see polyak/runs/zoo.py), summary.md (trials, best, parameter importances, a snippet for zoo.py),
  report.json, history.png (objective per trial and best so far; every trial's evaluations).

Optuna is an optional dependency (`pip install "polyak[tune]"`), imported when a study starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyak._version import __version__
from polyak.algos import registry
from polyak.algos.algorithm import NonFiniteError
from polyak.evaluation import evaluate_policy
from polyak.runs.experiments import ExperimentError, import_ray, ray_started
from polyak.runs.run import (EVAL_SEED_OFFSET, RunFolder, build_model, env_safe, evaluation_env_kwargs,
                             make_training_env, parse_overrides, training_settings)

OPTUNA_PIN = "optuna==5.1.0"
OPTUNA_INSTALL = f'pip install "polyak[tune]"  (or: pip install "{OPTUNA_PIN}")'
STUDY_FILE = "study.db"
BEST_FILE = "best.json"
SUMMARY_FILE = "summary.md"
REPORT_FILE = "report.json"
HISTORY_PLOT = "history.png"
MIN_EVAL_EPISODES = 5
NET_ARCH = "net_arch"  # not a config field: the config's policy_kwargs mapping sets its hidden layers
LOOP_KEYS = ("n_envs", "env_kwargs")  # zoo entries may hold these besides config fields
FAILURE = "failure"  # user attribute of a trial that failed (NaN/inf), not one that was interrupted


class TuneError(RuntimeError):
    """A study cannot start: missing Optuna, an algorithm without a search space, a bad space, changed settings."""


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise TuneError(f"polyak tune needs Optuna, which is not installed: {OPTUNA_INSTALL}") from None
    return optuna


# -- search spaces ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Uniform:
    """A float in [low, high], uniform or (log=True) log-uniform."""

    low: float
    high: float
    log: bool = False

    def suggest(self, trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def probes(self) -> tuple:
        return (self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        return {"log_uniform" if self.log else "uniform": [self.low, self.high]}


@dataclass(frozen=True)
class IntRange:
    """An integer in [low, high]."""

    low: int
    high: int
    log: bool = False

    def suggest(self, trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log)

    def probes(self) -> tuple:
        return (self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        return {"int_log" if self.log else "int": [self.low, self.high]}


@dataclass(frozen=True)
class Choice:
    """One of `options`; a single option is set without asking the sampler. Lists travel as JSON text
    (Optuna's categorical values are scalars)."""

    options: tuple

    def suggest(self, trial, name: str) -> Any:
        if len(self.options) == 1:
            return self.options[0]
        encoded = [json.dumps(o) if isinstance(o, (list, tuple)) else o for o in self.options]
        value = trial.suggest_categorical(name, encoded)
        return self.options[encoded.index(value)]

    def probes(self) -> tuple:
        return self.options

    def to_dict(self) -> dict[str, Any]:
        return {"choice": [list(o) if isinstance(o, tuple) else o for o in self.options]}


Dimension = Uniform | IntRange | Choice
SPACE_KINDS = {"uniform": Uniform, "log_uniform": Uniform, "int": IntRange, "int_log": IntRange, "choice": Choice}

GAMMAS = Choice((0.9, 0.95, 0.98, 0.99, 0.995))


def _warmup(steps: int) -> Choice:
    """learning_starts: the warm-up may take at most a quarter of the run."""
    return Choice(tuple(v for v in (0, 100, 1000, 5000, 10_000) if v <= steps // 4))


def _rollouts(options: tuple[int, ...], steps: int, n_envs: int) -> Choice:
    """n_steps: rollouts short enough for at least two updates in the run (the shortest option otherwise)."""
    fit = tuple(n for n in options if 2 * n * n_envs <= steps)
    return Choice(fit or options[:1])


def _off_policy(steps: int) -> dict[str, Dimension]:
    return {"learning_rate": Uniform(1e-4, 3e-3, log=True), "batch_size": Choice((64, 128, 256, 512)),
            "gamma": GAMMAS, "tau": Choice((0.001, 0.005, 0.01, 0.02, 0.05)),
            "train_freq": Choice((1, 4, 16, 64)),  # gradient_steps follows: one per transition collected
            "learning_starts": _warmup(steps), NET_ARCH: Choice(("64x64", "256x256", "400x300"))}


def _on_policy(rollouts: tuple[int, ...], steps: int, n_envs: int) -> dict[str, Dimension]:
    return {"learning_rate": Uniform(1e-5, 3e-3, log=True), "n_steps": _rollouts(rollouts, steps, n_envs),
            "gamma": GAMMAS, "gae_lambda": Choice((0.8, 0.9, 0.95, 0.98, 1.0)),
            "ent_coef": Uniform(1e-8, 0.1, log=True), "max_grad_norm": Choice((0.3, 0.5, 1.0, 5.0)),
            NET_ARCH: Choice(("64x64", "256x256"))}


def _without(space: dict[str, Dimension], *keys: str) -> dict[str, Dimension]:
    return {k: v for k, v in space.items() if k not in keys}


def search_space(algo: str, steps: int, n_envs: int = 1) -> dict[str, Dimension]:
    """The hyperparameters searched for `algo` (a run of `steps` env steps on `n_envs` envs)."""
    off, ppo_rollouts, a2c_rollouts = _off_policy(steps), (64, 128, 256, 512, 1024, 2048), (5, 8, 16, 32, 64, 128)
    spaces: dict[str, dict[str, Dimension]] = {
        "sac": off, "sac_n": off,
        "tqc": {**off, "top_quantiles_to_drop_per_net": IntRange(0, 5)},
        "redq": _without(off, "train_freq"), "droq": _without(off, "train_freq"),  # their update ratio is the method
        "crossq": {**_without(off, "tau", NET_ARCH),  # no target critics; wide critics are its point
                   "critic_hidden": Choice(((256, 256), (1024, 1024))), "policy_delay": Choice((1, 3))},
        "td3": {**off, "policy_delay": Choice((1, 2, 3)), "target_policy_noise": Uniform(0.1, 0.5),
                "exploration_noise": Uniform(0.05, 0.5)},
        "ddpg": {**off, "exploration_noise": Uniform(0.05, 0.5)},
        "ppo": {**_on_policy(ppo_rollouts, steps, n_envs), "batch_size": Choice((32, 64, 128, 256)),
                "n_epochs": Choice((1, 5, 10, 20)), "clip_range": Choice((0.1, 0.2, 0.3))},
        "a2c": {**_on_policy(a2c_rollouts, steps, n_envs), "vf_coef": Uniform(0.2, 1.0)},
        "a3c": {**_on_policy(a2c_rollouts, steps, n_envs), "vf_coef": Uniform(0.2, 1.0)},
        "reinforce": _without(_on_policy((128, 256, 512, 1024, 2048), steps, n_envs), "gae_lambda", "max_grad_norm"),
        "cem": {"population_size": Choice((16, 32, 64, 128)), "elite_fraction": Uniform(0.05, 0.5),
                "init_std": Uniform(0.01, 1.0, log=True), NET_ARCH: Choice(("", "16", "64"))},
        "cmaes": {"population_size": Choice((16, 32, 64)), "init_std": Uniform(0.05, 1.0, log=True),
                  NET_ARCH: Choice(("", "16", "64"))},
        "nes": {"population_size": Choice((16, 32, 64, 128)), "learning_rate": Uniform(1e-3, 0.1, log=True),
                "sigma": Uniform(0.01, 0.5, log=True), NET_ARCH: Choice(("", "16", "64"))},
    }
    dqn = {"learning_rate": Uniform(1e-4, 3e-3, log=True), "batch_size": Choice((32, 64, 128, 256)), "gamma": GAMMAS,
           "train_freq": Choice((1, 4, 16, 64, 256)), "target_update_interval": Choice((1, 10, 100, 1000)),
           "exploration_fraction": Uniform(0.05, 0.5), "exploration_final_eps": Uniform(0.01, 0.2),
           "n_steps": Choice((1, 3, 5)), "learning_starts": _warmup(steps), NET_ARCH: Choice(("64x64", "256x256"))}
    spaces.update(dqn=dqn, double_dqn=dqn)
    registry.entry(algo)  # an unknown name: the registry's error, listing every algorithm
    if algo not in spaces:
        have = sorted(n for n in spaces if n in registry.names())
        raise TuneError(f"no search space for {algo}; algorithms with one: {', '.join(have)} "
                        "(or give one with --space FILE.json)")
    return spaces[algo]


def load_space(path: str | Path) -> dict[str, Dimension]:
    """A space file: {"learning_rate": {"log_uniform": [1e-4, 1e-2]}, "batch_size": {"choice": [64, 256]},
    "n_epochs": {"int": [1, 20]}, "gamma": {"uniform": [0.9, 0.999]}, "net_arch": {"choice": ["64x64"]}}."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise TuneError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise TuneError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not data:
        raise TuneError(f"{path}: expected an object of hyperparameter -> {{kind: values}}")
    return {key: _dimension(spec, f"{path}: {key}") for key, spec in data.items()}


def _dimension(spec: Any, where: str) -> Dimension:
    if not (isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in SPACE_KINDS):
        raise TuneError(f"{where}: expected one of {{{', '.join(f'{k!r}: ...' for k in SPACE_KINDS)}}}, got {spec!r}")
    kind, values = next(iter(spec.items()))
    if kind == "choice":
        if not isinstance(values, list) or not values:
            raise TuneError(f"{where}: 'choice' needs a non-empty list of values, got {values!r}")
        return Choice(tuple(tuple(v) if isinstance(v, list) else v for v in values))
    number = int if kind.startswith("int") else (int, float)
    if not (isinstance(values, list) and len(values) == 2 and all(isinstance(v, number) and not isinstance(v, bool)
                                                                  for v in values) and values[0] < values[1]):
        raise TuneError(f"{where}: {kind!r} needs [low, high] with low < high"
                        f"{' (integers)' if number is int else ''}, got {values!r}")
    if kind.endswith("log") and values[0] <= 0:
        raise TuneError(f"{where}: {kind!r} needs low > 0, got {values[0]}")
    if kind.startswith("int"):
        return IntRange(values[0], values[1], log=kind == "int_log")
    return Uniform(float(values[0]), float(values[1]), log=kind == "log_uniform")


def space_from_dict(data: dict[str, Any]) -> dict[str, Dimension]:
    return {key: _dimension(spec, key) for key, spec in data.items()}


def _arch(value: Any) -> list[int]:
    """'256x256' -> [256, 256]; '' -> [] (a linear policy); a list stays a list."""
    if isinstance(value, str):
        return [int(w) for w in value.split("x") if w]
    return [int(w) for w in value]


def config_values(algo: str, values: dict[str, Any], n_envs: int = 1) -> dict[str, Any]:
    """Sampled values -> config fields: `net_arch` through the config's own policy_kwargs mapping, and
    `gradient_steps` = train_freq x n_envs (one gradient step per transition) when train_freq is set alone."""
    config_cls = registry.algorithm_class(algo).config_cls
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if k != NET_ARCH}
    if NET_ARCH in values:
        fields = config_cls.policy_kwargs_to_fields({"net_arch": _arch(values[NET_ARCH])})
        out.update({k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()})
    names = {f.name for f in dataclasses.fields(config_cls)}
    if "train_freq" in values and "gradient_steps" not in values and "gradient_steps" in names:
        out["gradient_steps"] = int(values["train_freq"]) * n_envs
    return out


def check_space(algo: str, space: dict[str, Dimension], base: dict[str, Any], n_envs: int = 1) -> None:
    """Every key is a config field (or net_arch) and every value the space can take is valid with the base
    hyperparameters: a bad space fails here, naming the key, not in the middle of a study."""
    cls = registry.algorithm_class(algo)
    base = {k: v for k, v in base.items() if k != "action_noise"}  # a model argument, not a config field
    known = {f.name for f in dataclasses.fields(cls.config_cls)} | {NET_ARCH}
    for key, dim in space.items():
        if key not in known:
            raise TuneError(f"unknown hyperparameter {key!r} in the search space of {algo}; known: "
                            f"{', '.join(sorted(known))}")
        for value in dim.probes():
            try:
                cls.config_cls.from_kwargs({**base, **config_values(algo, {key: value}, n_envs)})
            except (ValueError, TypeError) as e:
                raise TuneError(f"search space of {algo}: {key}={value!r} is not valid: {e}") from None


def zoo_entry(algo: str, hp: dict[str, Any], n_envs: int, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as an entry of zoo.TUNED: config fields (a `net_arch` mapped onto them), plus n_envs and
    env_kwargs where they differ from the defaults."""
    hp = dict(hp)
    if NET_ARCH in hp:
        hp.update(config_values(algo, {NET_ARCH: hp.pop(NET_ARCH)}))
    return {**hp, **({"n_envs": n_envs} if n_envs != 1 else {}), **({"env_kwargs": env_kwargs} if env_kwargs else {})}


# -- settings of one study ----------------------------------------------------------------------
@dataclass
class TuneSettings:
    """What a study is (compared on resume) and where it lives."""

    algo: str
    env_id: str
    steps: int
    study_dir: Path
    space: dict[str, Dimension]
    base: dict[str, Any] = field(default_factory=dict)  # fixed hyperparameters (zoo, --set), config fields
    n_envs: int = 1
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    evals: int = 5  # evaluations per trial, every steps / evals env steps; the last is the objective
    eval_episodes: int = 10
    seed: int = 0  # trial k trains with seed + k
    storage: str | None = None  # an Optuna storage URL; None: SQLite in study_dir
    log_interval: int = 1000
    command: str = ""

    @property
    def study_name(self) -> str:
        return f"{self.algo}-{env_safe(self.env_id)}"

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(Path(self.study_dir) / STUDY_FILE).absolute()}"

    def identity(self) -> dict[str, Any]:
        """The settings every trial of a study must share (stored in the study, checked on resume)."""
        return json.loads(json.dumps({
            "algorithm": self.algo, "env": self.env_id, "steps": self.steps, "n_envs": self.n_envs,
            "env_kwargs": self.env_kwargs, "base": self.base, "evals": self.evals,
            "eval_episodes": self.eval_episodes, "seed": self.seed,
            "space": {k: v.to_dict() for k, v in self.space.items()}}))

    def to_dict(self) -> dict[str, Any]:
        return {**self.identity(), "study_dir": str(Path(self.study_dir).absolute()), "storage": self.storage,
                "log_interval": self.log_interval, "command": self.command}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TuneSettings":
        return cls(d["algorithm"], d["env"], d["steps"], Path(d["study_dir"]), space_from_dict(d["space"]),
                   d["base"], d["n_envs"], d["env_kwargs"], d["evals"], d["eval_episodes"], d["seed"],
                   d["storage"], d["log_interval"], d["command"])


def _storage(optuna, url: str):
    if url.startswith("sqlite:"):  # several worker processes share the file: wait for its lock, don't fail
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
    return url


def open_study(settings: TuneSettings, sampler=None, pruner=None, create: bool = False):
    optuna = import_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # polyak prints one line per trial itself
    if create:
        Path(settings.study_dir).mkdir(parents=True, exist_ok=True)
    kwargs = dict(study_name=settings.study_name, storage=_storage(optuna, settings.storage_url), sampler=sampler,
                  pruner=pruner)
    if not create:
        return optuna.load_study(**kwargs)
    study = optuna.create_study(**kwargs, direction="maximize", load_if_exists=True)
    identity, stored = settings.identity(), study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", identity)
        study.set_user_attr("library_version", __version__)
    elif stored != identity:
        diff = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
        raise TuneError(f"the study in {settings.storage_url} was made with other settings ("
                        + "; ".join(f"{k}: study {stored.get(k)!r}, command {identity.get(k)!r}" for k in diff)
                        + "): its trials would not be comparable; use another --study-dir, or delete it")
    return study


def finished_trials(study) -> list:
    """Complete, pruned and failed (NaN/inf) trials: those `--trials N` counts. A trial interrupted by Ctrl-C or
    a crash is not one of them (a resume replaces it)."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and FAILURE in t.user_attrs)]


# -- one trial ----------------------------------------------------------------------------------
def trial_folder(settings: TuneSettings, number: int) -> Path:
    return Path(settings.study_dir) / "trials" / f"trial-{number:04d}"


def objective(trial, settings: TuneSettings) -> float:
    """Train one sampled configuration in its own run folder; the final mean deterministic evaluation return.

    Evaluations every steps / evals env steps are reported to the pruner (same episodes as the final one)."""
    optuna = import_optuna()
    seed = settings.seed + trial.number
    sampled = {key: dim.suggest(trial, key) for key, dim in settings.space.items()}
    hp = {**settings.base, **config_values(settings.algo, sampled, settings.n_envs)}
    trial.set_user_attr("seed", seed)
    trial.set_user_attr("hyperparameters", zoo_entry(settings.algo, hp, settings.n_envs, settings.env_kwargs))
    folder = RunFolder.create(trial_folder(settings, trial.number))
    folder.clear()
    model = build_model(settings.algo, make_training_env(settings.env_id, settings.n_envs, settings.env_kwargs),
                        seed, hp)
    folder.write_config(algo=settings.algo, env_id=settings.env_id, env_kwargs=settings.env_kwargs,
                        n_envs=settings.n_envs, steps=settings.steps, seed=seed, overrides=hp, model=model,
                        command=settings.command, variant=f"tune trial {trial.number}")
    eval_env = make_training_env(settings.env_id, 1, evaluation_env_kwargs(settings.env_id, settings.env_kwargs))
    marks = [settings.steps * i // settings.evals for i in range(1, settings.evals)]
    reported: set[int] = set()

    def evaluate(m) -> float:
        returns, _ = evaluate_policy(m, eval_env, settings.eval_episodes, seed=EVAL_SEED_OFFSET + seed,
                                     return_episode_rewards=True)
        return float(np.mean(returns))

    def callback(m):
        if not marks or m.num_timesteps < marks[0]:
            return True
        while marks and m.num_timesteps >= marks[0]:
            marks.pop(0)
        value = evaluate(m)
        if not math.isfinite(value):
            raise NonFiniteError(f"evaluation return {value} at step {m.num_timesteps}")
        trial.report(value, m.num_timesteps)
        reported.add(m.num_timesteps)
        if trial.should_prune():
            raise optuna.TrialPruned(f"evaluation return {value:.4g} at step {m.num_timesteps}")
        return True

    logger = folder.logger()
    t0 = time.perf_counter()
    try:
        model.learn(settings.steps, callback=callback, log_interval=settings.log_interval, logger=logger)
    except NonFiniteError as e:
        trial.set_user_attr(FAILURE, str(e))
        raise
    finally:
        logger.close()
        eval_env.close()
    train_s = time.perf_counter() - t0
    result, _ = folder.finish(model, algo=settings.algo, env_id=settings.env_id, env_kwargs=settings.env_kwargs,
                              seed=seed, eval_episodes=settings.eval_episodes, train_seconds=train_s,
                              steps_per_second=model.num_timesteps / train_s,
                              title=f"{settings.algo.upper()} on {settings.env_id} (tune trial {trial.number})")
    value = float(result["eval_return_mean"])
    if not math.isfinite(value):
        trial.set_user_attr(FAILURE, f"final evaluation return {value}")
        return value  # Optuna records a NaN objective as a failed trial
    if model.num_timesteps not in reported:  # an evolution strategy's last generation may have reported it
        trial.report(value, model.num_timesteps)
    return value


def _trial_line(t) -> str:
    from optuna.trial import TrialState

    head = f"trial {t.number} (seed {t.user_attrs.get('seed', '?')})"
    params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
    if t.state == TrialState.COMPLETE:
        return f"{head}: {t.value:.4g}  [{params}]"
    if t.state == TrialState.PRUNED:
        step = t.last_step
        return f"{head}: pruned at step {step} ({t.intermediate_values.get(step, float('nan')):.4g})  [{params}]"
    return f"{head}: FAILED: {t.user_attrs.get(FAILURE, 'interrupted')}  [{params}]"


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def run_trials(settings: TuneSettings, n_trials: int, worker: int = 0, n_done: int = 0, pruner=None,
               echo=print) -> None:
    """Run `n_trials` trials of the study (stored already) in this process."""
    optuna = import_optuna()
    n_startup = max(1, min(5, (n_done + n_trials) // 2))
    # a fresh sampler seed per resume and worker: a restarted TPE must not repeat the random trials it began with
    sampler_seed = int(np.random.SeedSequence([settings.seed, n_done, worker]).generate_state(1)[0])
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=n_startup)
    if pruner is None:  # no pruning before a third of the run, nor before two (up to five) trials have finished
        pruner = optuna.pruners.MedianPruner(n_startup_trials=max(2, n_startup), n_warmup_steps=settings.steps // 3)
    study = open_study(settings, sampler, pruner)
    study.optimize(lambda trial: objective(trial, settings), n_trials=n_trials, catch=(NonFiniteError,),
                   callbacks=[lambda s, t: echo(_trial_line(t), flush=True)], gc_after_trial=True)


def _ray_worker(settings: dict[str, Any], n_trials: int, worker: int, n_done: int, pruner) -> int:
    """Body of a Ray task: `n_trials` trials of the shared study in this worker process."""
    run_trials(TuneSettings.from_dict(settings), n_trials, worker, n_done, pruner)
    return n_trials


def run_ray(settings: TuneSettings, n_trials: int, workers: int, n_done: int, address: str | None, pruner,
            echo=print) -> list[str]:
    """Share `n_trials` among `workers` Ray tasks (num_cpus=1 each); the errors of failed tasks."""
    with ray_started(workers, address) as (ray, started):
        if started:
            echo(f"ray: {started}; {n_trials} trial(s) shared by {min(workers, n_trials)} worker(s)", flush=True)
        task = ray.remote(num_cpus=1, max_calls=1, max_retries=0)(_ray_worker)
        shares = [n_trials // workers + (i < n_trials % workers) for i in range(workers)]
        refs = [task.remote(settings.to_dict(), n, i, n_done, pruner) for i, n in enumerate(shares) if n]
        errors = []
        for i, ref in enumerate(refs):
            try:
                echo(f"ray worker {i}: {ray.get(ref)} trial(s) done", flush=True)
            except Exception as e:  # noqa: BLE001  (a crashed worker: its trials are missing, a rerun adds them)
                cause = getattr(e, "cause", None) or e
                errors.append(f"worker {i}: {type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[-1]}")
        return errors


# -- the study's report -------------------------------------------------------------------------
def importances(study) -> tuple[dict[str, float], str]:
    """Parameter importances (PED-ANOVA, which needs no scikit-learn) over the complete trials, or a reason."""
    optuna = import_optuna()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return {}, f"{len(complete)} complete trial(s): importances need at least 2"
    try:
        return dict(optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())), ""
    except (ValueError, RuntimeError, ZeroDivisionError) as e:
        return {}, f"not computed: {e}"


def _python(v: Any) -> str:
    """A value as Python source for zoo.py, floats to 3 significant digits."""
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, float):
        return repr(float(f"{v:.3g}"))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_python(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_python(x)}" for k, x in v.items()) + "}"
    return json.dumps(v) if isinstance(v, str) else repr(v)


def zoo_snippet(algo: str, env_id: str, entry: dict[str, Any], comment: str) -> str:
    return f"    # {comment}\n    ({json.dumps(algo)}, {json.dumps(env_id)}): {_python(entry)},"


def plot_history(study, path: Path, title: str) -> Path:
    """Left: objective per trial (pruned: last evaluation) and the best so far. Right: every trial's evaluations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    ax.plot([t.number for t in complete], [t.value for t in complete], "o", label="complete")
    ax.plot([t.number for t in pruned], [t.intermediate_values[t.last_step] for t in pruned], "x", color="grey",
            label="pruned (last evaluation)")
    if complete:
        best, xs, ys = -math.inf, [], []
        for t in complete:
            best = max(best, t.value)
            xs.append(t.number)
            ys.append(best)
        ax.step(xs, ys, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("final mean deterministic return")
    ax.set_title("optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    best_number = study.best_trial.number if complete else None
    for t in trials:
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        style = dict(color="C3", lw=2.0, label=f"best (trial {t.number})") if t.number == best_number else (
            dict(color="grey", lw=0.8, ls="--") if t.state == TrialState.PRUNED else dict(lw=1.0, alpha=0.7))
        bx.plot(steps, [t.intermediate_values[s] for s in steps], marker=".", **style)
    bx.set_xlabel("environment steps")
    bx.set_ylabel("mean deterministic return")
    bx.set_title("evaluations per trial (dashed: pruned)")
    bx.grid(alpha=0.3)
    if best_number is not None:
        bx.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(settings: TuneSettings) -> dict[str, Any]:
    """best.json, summary.md, report.json and history.png in the study folder; returns report.json's content."""
    from optuna.trial import TrialState

    study = open_study(settings)
    out = Path(settings.study_dir)
    out.mkdir(parents=True, exist_ok=True)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    found, why = importances(study)
    objective_text = (f"final mean deterministic return over {settings.eval_episodes} evaluation episodes after "
                      f"{settings.steps} env steps (maximised); {settings.evals} evaluations per trial, every "
                      f"{settings.steps // settings.evals} steps, reported to the median pruner")
    report = {"study": settings.study_name, "storage": settings.storage_url, "objective": objective_text,
              "settings": settings.to_dict(), "counts": {k: v for k, v in counts.items() if v},
              "importances": found, "importances_note": why,
              "best": None if best is None else {"trial": best.number, "value": best.value,
                                                 "seed": best.user_attrs.get("seed"), "params": best.params,
                                                 "hyperparameters": best.user_attrs["hyperparameters"]},
              "trials": [{"number": t.number, "state": t.state.name.lower(), "value": t.value,
                          "seed": t.user_attrs.get("seed"), "params": t.params,
                          "evaluations": {str(k): v for k, v in sorted(t.intermediate_values.items())},
                          **({"failure": t.user_attrs[FAILURE]} if FAILURE in t.user_attrs else {})} for t in trials]}
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2, default=str))
    plot_history(study, out / HISTORY_PLOT,
                 f"{settings.algo.upper()} on {settings.env_id}: {len(finished_trials(study))} finished trials")
    lines = [f"# polyak tune: {settings.algo.upper()} on {settings.env_id}", "",
             f"Command: `{settings.command}`" if settings.command else "", "",
             f"Objective: {objective_text}. Trial k trains with seed {settings.seed} + k.", "",
             "Trials: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v) + f" (study {settings.storage_url})",
             "", "| trial | state | value | seed | parameters |", "|---|---|---|---|---|"]
    for t in trials:
        value = "" if t.value is None else f"{t.value:.4g}"
        if t.state == TrialState.PRUNED and t.intermediate_values:
            value = f"({t.intermediate_values[t.last_step]:.4g} at step {t.last_step})"
        note = f" — {t.user_attrs[FAILURE]}" if FAILURE in t.user_attrs else (
            " (interrupted: not counted)" if t.state == TrialState.FAIL else
            " (elsewhere, or its process was killed)" if t.state == TrialState.RUNNING else "")
        lines.append(f"| {t.number} | {t.state.name.lower()}{note} | {value} | {t.user_attrs.get('seed', '')} | "
                     + ", ".join(f"{k}={_short(v)}" for k, v in t.params.items()) + " |")
    lines += ["", f"## Parameter importances (PED-ANOVA over the {len(complete)} complete trials; rough when they "
              "are few)", ""]
    lines += [f"- {k}: {v:.3f}" for k, v in found.items()] if found else [f"- {why}"]
    paths = {"report": out / REPORT_FILE, "plot": out / HISTORY_PLOT, "summary": out / SUMMARY_FILE}
    if best is not None:
        entry = best.user_attrs["hyperparameters"]
        (out / BEST_FILE).write_text(json.dumps(entry, indent=2) + "\n")
        paths["best"] = out / BEST_FILE
        snippet = zoo_snippet(settings.algo, settings.env_id, entry,
                              f"polyak tune, {time.strftime('%Y-%m-%d')}: trial {best.number} of "
                              f"{len(finished_trials(study))}, "
                              f"{settings.steps} steps, eval return {best.value:.4g} (seed {best.user_attrs['seed']})")
        lines += ["", f"## Best: trial {best.number}, {best.value:.4g}", "",
                  f"Run folder: {trial_folder(settings, best.number)}; settings in {BEST_FILE}. For "
                  "polyak/runs/zoo.py's TUNED (floats to 3 significant digits; best.json has the exact values):",
                  "", "```python", snippet, "```"]
        report["snippet"] = snippet
    else:
        (out / BEST_FILE).unlink(missing_ok=True)
        lines += ["", "## Best", "", "No trial completed: no best.json."]
    (out / SUMMARY_FILE).write_text("\n".join(lines) + "\n")
    report["paths"] = {k: str(v) for k, v in paths.items()}
    return report


# -- the command --------------------------------------------------------------------------------
def tune(settings: TuneSettings, trials: int, backend: str = "local", workers: int | None = None,
         address: str | None = None, pruner=None, echo=print) -> dict[str, Any]:
    """Run the study up to `trials` finished trials, then write its report (see the module docstring)."""
    if settings.eval_episodes < MIN_EVAL_EPISODES:
        raise TuneError(f"--eval-episodes must be >= {MIN_EVAL_EPISODES} (the objective is their mean return), "
                        f"got {settings.eval_episodes}")
    if not 1 <= settings.evals <= settings.steps:
        raise TuneError(f"--evals must be in [1, --steps], got {settings.evals}")
    if backend not in ("local", "ray"):
        raise TuneError(f"--backend must be 'local' or 'ray', got {backend!r}")
    if address and backend != "ray":
        raise TuneError("--address is for --backend ray (the address of a running Ray cluster)")
    if not settings.space:
        raise TuneError("the search space is empty (every key fixed with --set?): nothing to tune")
    check_space(settings.algo, settings.space, settings.base, settings.n_envs)
    if backend == "ray":
        import_ray()
    study = open_study(settings, create=True)
    n_done = len(finished_trials(study))
    todo = max(0, trials - n_done)
    echo(f"study {settings.study_name} ({settings.storage_url}): {n_done} finished trial(s), {todo} to run; "
         f"searching {', '.join(settings.space) or 'nothing'}", flush=True)
    errors: list[str] = []
    if todo and backend == "local":
        run_trials(settings, todo, 0, n_done, pruner, echo)
    elif todo:
        k = max(1, min(todo, workers or os.cpu_count() or 1))
        errors = run_ray(settings, todo, k, n_done, address, pruner, echo)
    report = write_report(settings)
    report["errors"] = errors
    return report


def tune_command(args: argparse.Namespace) -> int:
    """`polyak tune ALGO --env ENV --trials N --steps S ...` (see polyak/cli.py for the options)."""
    command = "polyak " + " ".join(sys.argv[1:]) if "tune" in sys.argv[1:] else ""
    try:
        hp, n_envs, env_kwargs = training_settings(argparse.Namespace(
            algo=args.algo, env=args.env, no_tuned=args.no_tuned, set=args.set, n_envs=args.n_envs,
            env_kwarg=args.env_kwarg))
        fixed = set(parse_overrides(args.set)) - set(LOOP_KEYS)
        space = load_space(args.space) if args.space else search_space(args.algo, args.steps, n_envs)
        space = {k: v for k, v in space.items() if k not in fixed}
        study_dir = Path(args.study_dir) if args.study_dir else Path(args.runs_root) / "tune" / (
            f"{args.algo}-{env_safe(args.env)}")
        base = zoo_entry(args.algo, hp, 1, {})
        settings = TuneSettings(args.algo, args.env, args.steps, study_dir, space, base, n_envs, env_kwargs,
                                args.evals, args.eval_episodes, args.seed, args.storage, args.log_interval, command)
        report = tune(settings, args.trials, args.backend, args.workers, args.address)
    except (TuneError, ExperimentError) as e:
        raise SystemExit(f"polyak tune: {e}") from None
    print(f"\nwrote {', '.join(report['paths'].values())}")
    if report["best"] is not None:
        print(f"best: trial {report['best']['trial']}, {report['best']['value']:.4g}; for polyak/runs/zoo.py:")
        print(report["snippet"])
    for error in report["errors"]:
        print(f"FAILED {error}")
    return 1 if report["errors"] else 0
