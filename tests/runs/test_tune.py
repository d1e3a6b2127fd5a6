"""`polyak tune`: search spaces, the Optuna study (resume, pruning, failed trials) and its report."""

import dataclasses
import json
import math
import subprocess
import sys

import gymnasium as gym
import pytest

from polyak.algos import registry
from polyak.cli import main
from polyak.runs import tune as tune_module
from polyak.runs.run import build_model, make_training_env
from polyak.runs.tune import (Choice, TuneError, TuneSettings, Uniform, _arch, check_space, finished_trials,
                              load_space, open_study, search_space, tune)
from tests.fake_envs import CountingEnv

optuna = pytest.importorskip("optuna")

SHORT_PENDULUM = ["--env-kwarg", "max_episode_steps=50"]  # 5 evaluation episodes of 50 steps
TINY_SPACE = {"learning_rate": {"log_uniform": [1e-4, 3e-3]}, "gamma": {"choice": [0.9, 0.99]},
              "net_arch": {"choice": ["16x16", "32"]}, "train_freq": {"choice": [8, 16]}}
TINY_SAC = {"learning_starts": 50, "batch_size": 32}

if "polyak-test/NaNReward-v0" not in gym.registry:  # NaN rewards from the 20th env step on
    gym.register("polyak-test/NaNReward-v0", entry_point=lambda: CountingEnv(
        length=10, terminate=False, reward_fn=lambda step: math.nan if step >= 20 else 0.0), max_episode_steps=10)


def settings(tmp_path, env="Pendulum-v1", steps=300, evals=2, **kw) -> TuneSettings:
    space = {"learning_rate": Uniform(1e-4, 3e-3, log=True), "net_arch": Choice(("16x16",)),
             "train_freq": Choice((8, 16))}
    return TuneSettings("sac", env, steps, tmp_path / "study", space, dict(TINY_SAC), evals=evals, eval_episodes=5,
                        env_kwargs={"max_episode_steps": 50} if env == "Pendulum-v1" else {}, **kw)


@pytest.mark.parametrize("algo", sorted(set(registry.names()) & {
    "sac", "tqc", "crossq", "redq", "sac_n", "droq", "td3", "ddpg", "dqn", "double_dqn", "ppo", "a2c", "a3c",
    "reinforce", "cem", "cmaes", "nes"}))
def test_every_built_in_space_samples_only_valid_config_values(algo):
    space = search_space(algo, steps=5000)
    assert space
    check_space(algo, space, {})  # every key a config field or net_arch, every probe value accepted by from_kwargs
    fields = {f.name for f in dataclasses.fields(registry.algorithm_class(algo).config_cls)}
    assert set(space) - {"net_arch"} <= fields


def test_space_depends_on_the_budget():
    assert search_space("sac", 400)["learning_starts"].options == (0, 100)  # warm-up at most a quarter of the run
    assert max(search_space("ppo", 1000)["n_steps"].options) == 256  # two updates at least
    assert search_space("ppo", 1000, n_envs=4)["n_steps"].options == (64,)


def test_an_algorithm_without_a_space_names_those_with_one():
    with pytest.raises(TuneError, match=r"no search space for cql; algorithms with one: .*ppo.*sac"):
        search_space("cql", 1000)


def test_space_file_and_its_errors(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"learning_rate": {"log_uniform": [1e-4, 1e-2]}, "n_epochs": {"int": [1, 20]},
                                "policy_hidden": {"choice": [[64, 64], [32]]}}))
    space = load_space(path)
    assert space["policy_hidden"] == Choice(((64, 64), (32,)))
    check_space("ppo", space, {})
    with pytest.raises(TuneError, match="unknown hyperparameter 'n_epochs' in the search space of a2c; known: "):
        check_space("a2c", space, {})
    path.write_text(json.dumps({"gamma": {"uniform": [0.99, 0.9]}}))
    with pytest.raises(TuneError, match=r"gamma: 'uniform' needs \[low, high\] with low < high"):
        load_space(path)
    with pytest.raises(TuneError, match=r"gamma=1.5 is not valid: gamma must be in \(0, 1\]"):
        check_space("sac", {"gamma": Uniform(0.9, 1.5)}, {})


def test_import_polyak_and_the_cli_do_not_need_optuna():
    code = "import sys; sys.modules['optuna'] = None; import polyak, polyak.cli, polyak.runs.tune"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_missing_optuna_gives_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    with pytest.raises(SystemExit, match=r'polyak tune: .*pip install "polyak\[tune\]"'):
        main(["tune", "sac", "--trials", "1", "--steps", "100", "--study-dir", str(tmp_path)])


def test_tune_writes_the_study_best_json_and_the_report(tmp_path, capsys):
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps(TINY_SPACE))
    study_dir = tmp_path / "study"
    argv = ["tune", "sac", "--steps", "300", "--evals", "2", "--eval-episodes", "5", "--space", str(space_file),
            "--study-dir", str(study_dir), "--set", "learning_starts=50", "--set", "batch_size=32", *SHORT_PENDULUM]
    assert main([*argv, "--trials", "1"]) == 0
    out = capsys.readouterr().out
    assert '("sac", "Pendulum-v1"): {' in out  # the snippet for zoo.py
    assert (study_dir / "study.db").is_file() and (study_dir / "history.png").stat().st_size > 0
    report = json.loads((study_dir / "report.json").read_text())
    (trial,) = report["trials"]
    assert trial["state"] == "complete" and trial["seed"] == 0 and list(trial["evaluations"]) == ["150", "300"]
    run = study_dir / "trials" / "trial-0000"
    evaluation = json.loads((run / "eval.json").read_text())
    assert trial["value"] == evaluation["eval_return_mean"] == trial["evaluations"]["300"]  # the objective
    assert len(evaluation["eval_returns"]) == 5

    best = json.loads((study_dir / "best.json").read_text())
    assert best.pop("env_kwargs") == {"max_episode_steps": 50}  # the zoo entry carries the env's kwargs
    cls = registry.algorithm_class("sac")
    assert set(best) <= {f.name for f in dataclasses.fields(cls.config_cls)}  # config fields only
    assert best["batch_size"] == 32 and best["gradient_steps"] == best["train_freq"]
    assert best["actor_hidden"] == best["critic_hidden"] == _arch(trial["params"]["net_arch"])
    model = build_model("sac", make_training_env("Pendulum-v1"), 0, best)
    assert model.config.to_dict() == cls.config_cls.from_kwargs(best).to_dict()
    assert json.loads((run / "config.json").read_text())["hyperparameters"] == model.config.to_dict()
    summary = (study_dir / "summary.md").read_text()
    assert "final mean deterministic return over 5 evaluation episodes" in summary and "importances" in summary

    # the trial is a `polyak train` run: its seed and best.json give the same policy (evaluations do not perturb it)
    sets = [f"--set={k}={json.dumps(v)}" for k, v in best.items()]
    assert main(["train", "sac", "--steps", "300", "--seed", "0", "--eval-episodes", "5", "--run-dir",
                 str(tmp_path / "again"), "--no-progress", *SHORT_PENDULUM, *sets]) == 0
    assert json.loads((tmp_path / "again" / "eval.json").read_text())["eval_returns"] == evaluation["eval_returns"]

    assert main([*argv, "--trials", "1"]) == 0  # the same command again: nothing to run, the report is rewritten
    assert "1 finished trial(s), 0 to run" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="made with other settings .*steps: study 300, command 400"):
        main([*argv, "--trials", "2", "--steps", "400"])


def _quick(trial, settings):
    """A stand-in objective (no training) for the study logic."""
    trial.set_user_attr("seed", settings.seed + trial.number)
    x = trial.suggest_float("learning_rate", 1e-4, 1e-3, log=True)
    trial.suggest_categorical("net_arch", ["16", "32"])
    trial.report(-1.0, 1)
    trial.set_user_attr("hyperparameters", {"learning_rate": x})
    return -abs(math.log10(x) + 3.5)


def test_a_rerun_adds_trials_instead_of_restarting(tmp_path, monkeypatch):
    monkeypatch.setattr(tune_module, "objective", _quick)
    s = settings(tmp_path)
    first = tune(s, trials=2, echo=lambda *a, **k: None)["trials"]
    report = tune(s, trials=4, echo=lambda *a, **k: None)
    assert [t["number"] for t in report["trials"]] == [0, 1, 2, 3]
    assert report["trials"][:2] == first  # kept, not rerun
    assert len({t["params"]["learning_rate"] for t in report["trials"]}) == 4  # a resumed sampler does not repeat
    assert set(report["importances"]) == {"learning_rate", "net_arch"}
    best = max(report["trials"], key=lambda t: t["value"])
    assert report["best"]["trial"] == best["number"]
    best_json = json.loads((tmp_path / "study" / "best.json").read_text())
    assert best_json == {"learning_rate": best["params"]["learning_rate"]}
    assert (tmp_path / "study" / "history.png").stat().st_size > 0


def test_a_pruner_that_must_prune_stops_the_trial_at_its_first_evaluation(tmp_path):
    s = settings(tmp_path)
    report = tune(s, trials=1, pruner=optuna.pruners.ThresholdPruner(lower=math.inf), echo=lambda *a, **k: None)
    (trial,) = report["trials"]
    assert trial["state"] == "pruned" and list(trial["evaluations"]) == ["150"]
    folder = tmp_path / "study" / "trials" / "trial-0000"
    assert not (folder / "eval.json").exists()  # stopped before the end
    assert report["best"] is None and not (tmp_path / "study" / "best.json").exists()


def test_a_nonfinite_trial_is_recorded_as_failed_and_the_study_goes_on(tmp_path):
    s = settings(tmp_path, env="polyak-test/NaNReward-v0", steps=100)
    s.space = {"learning_rate": Choice((1e-3,))}  # nothing sampled: the second trial reuses the first's compilations
    lines = []
    report = tune(s, trials=2, echo=lambda line, **k: lines.append(line))
    assert [t["state"] for t in report["trials"]] == ["fail", "fail"]
    assert all("reward" in t["failure"] for t in report["trials"])
    assert "No trial completed" in (tmp_path / "study" / "summary.md").read_text()
    assert any("FAILED" in line for line in lines)
    assert tune(s, trials=2, echo=lambda *a, **k: None)["counts"] == {"fail": 2}  # failed trials count as done


def test_an_interrupted_trial_does_not_count(tmp_path, monkeypatch):
    s = settings(tmp_path)

    def interrupted(trial, settings):
        raise KeyboardInterrupt

    monkeypatch.setattr(tune_module, "objective", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune(s, trials=1, echo=lambda *a, **k: None)
    assert finished_trials(open_study(s)) == []
    monkeypatch.setattr(tune_module, "objective", _quick)
    report = tune(s, trials=2, echo=lambda *a, **k: None)
    assert report["counts"] == {"complete": 2, "fail": 1}  # the interrupted trial 0 is replaced
    assert [t["number"] for t in report["trials"] if t["state"] == "complete"] == [1, 2]


@pytest.mark.long  # Ray's start and two worker processes that import JAX: beyond CI's budget
def test_two_ray_workers_share_one_study(tmp_path):
    pytest.importorskip("ray")
    s = settings(tmp_path, steps=200)
    s.space = {"learning_rate": Choice((1e-3, 3e-4)), "net_arch": Choice(("16x16",)), "train_freq": Choice((16,))}
    report = tune(s, trials=2, backend="ray", workers=2, echo=lambda *a, **k: None)
    assert report["errors"] == []
    assert sorted(t["number"] for t in report["trials"]) == [0, 1]
    assert {t["state"] for t in report["trials"]} == {"complete"}
    assert all((tmp_path / "study" / "trials" / f"trial-000{i}" / "eval.json").is_file() for i in (0, 1))


def test_help_names_the_objective(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "final mean deterministic return over --eval-episodes episodes" in out and "study.db" in out
