"""Many seeds in one command and resumable sweeps (polyak/experiments.py): naming, validation, resume,
the local and Ray backends with tiny real trainings, and the dispatch point for vmapped seeds."""

import json
import re
import sys
import time
from pathlib import Path

import pytest

from polyak.cli import main
from polyak.runs import experiments
from polyak.runs.experiments import (
    ExperimentError,
    SweepFileError,
    _vmappable,
    expand,
    format_value,
    import_ray,
    is_finished,
    load_sweep,
    parse_sweep,
    plan,
    run_name,
    variant_label,
)

TINY = ["--steps", "300", "--eval-episodes", "1", "--log-interval", "100",
        "--set", "learning_starts=100", "--set", "net_arch=[32,32]"]


def _sweep_dict(**changes):
    data = {"name": "t", "algorithms": ["sac", "td3"], "envs": ["Pendulum-v1"], "seeds": 2, "steps": 300,
            "grid": {"learning_rate": [3e-4, 1e-3], "batch_size": [64]}, "set": {"learning_starts": 100}}
    data.update(changes)
    return data


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _fake_finished(run_dir: Path, algo: str, variant: str | None, seed: int, score: float) -> None:
    run_dir.mkdir(parents=True)
    config = {"algorithm": algo, "env": "Pendulum-v1", "env_kwargs": {}, "seed": seed}
    if variant:
        config["variant"] = variant
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "eval.json").write_text(json.dumps({"eval_return_mean": score, "eval_returns": [score]}))
    (run_dir / "model.polyak").write_bytes(b"stand-in")


# -- pure: expansion, naming, validation ----------------------------------------------------
def test_sweep_expands_the_grid_into_deterministic_readable_run_names(tmp_path):
    sweep = parse_sweep(_sweep_dict(root=str(tmp_path / "root")))
    specs = expand(sweep)
    assert len(specs) == 2 * 1 * 2 * 2  # algorithms x envs x grid points x seeds
    names = [s.name for s in specs]
    assert names[:4] == ["sac-Pendulum-v1-batch_size=64,learning_rate=0.0003-s0",
                         "sac-Pendulum-v1-batch_size=64,learning_rate=0.0003-s1",
                         "sac-Pendulum-v1-batch_size=64,learning_rate=0.001-s0",
                         "sac-Pendulum-v1-batch_size=64,learning_rate=0.001-s1"]
    assert names == [s.name for s in expand(parse_sweep(_sweep_dict(root=str(tmp_path / "root"))))]
    assert len(set(names)) == len(names) and all(s.run_dir.parent == tmp_path / "root" for s in specs)
    first = specs[0]
    assert first.variant == "batch_size=64,learning_rate=0.0003" and first.seed == 0 and first.algo == "sac"
    argv = " ".join(first.argv)
    assert "--set learning_starts=100" in argv and "--set learning_rate=0.0003" in argv and "--set batch_size=64" in argv
    assert "--variant batch_size=64,learning_rate=0.0003" in argv and "--steps 300" in argv
    assert parse_sweep({"name": "x", "algorithms": "sac", "envs": ["Pendulum-v1"]}).root == Path("sweeps/x")
    # no grid: algorithms x envs x seeds, no variant label
    plain = expand(parse_sweep({"name": "x", "algorithms": ["ddpg"], "envs": ["polyak/Pendulum-v1"], "seeds": [3, 7]}))
    assert [s.name for s in plain] == ["ddpg-polyak_Pendulum-v1-s3", "ddpg-polyak_Pendulum-v1-s7"]
    assert plain[0].variant is None and "--variant" not in plain[0].argv


def test_folder_names_are_filesystem_safe_and_lossy_values_get_a_hash():
    assert format_value(3e-4) == ("0.0003", True) and format_value(1e-5) == ("1e-05", True)
    assert format_value(True) == ("true", True) and format_value([64, 64]) == ("64x64", True)
    assert format_value("auto_0.1") == ("auto_0.1", True)
    assert format_value("ou:0.2") == ("ou_0.2", False)
    label = variant_label({"action_noise": "ou:0.2"})
    assert label.startswith("action_noise=ou_0.2,") and len(label.split(",")[-1]) == 8
    assert label != variant_label({"action_noise": "ou/0.2"})  # same readable text, different hash
    name = run_name("td3", "polyak/Pendulum-v1", {"net_arch": {"pi": [64], "qf": [64, 64]}}, 0)
    assert "/" not in name and "{" not in name and " " not in name and name.endswith("-s0")
    assert len(variant_label({"k": "a" * 500})) < 140


@pytest.mark.parametrize("changes, message", [
    ({"algorithms": ["sac", "tqcc"]}, "unknown algorithm 'tqcc'"),
    ({"algorithms": []}, "'algorithms' is empty"),
    ({"envs": "Pendulum-v1", "algorithms": [1]}, "'algorithms' must be a list of strings"),
    ({"grid": {"learning_rate": []}}, "grid.learning_rate is an empty list"),
    ({"grid": {}}, "[grid] is empty"),
    ({"grid": {"learning_rate": 1e-3}}, "grid.learning_rate must be a list"),
    ({"grid": {"learning_rat": [1e-3]}}, "grid.learning_rat: unknown hyperparameter"),
    ({"grid": {"gamma": [0.9, 2.0]}}, "gamma=2.0: gamma must be in"),
    ({"set": {"learning_starts": 100, "batch_size": 64}}, "batch_size in both"),
    ({"steps": "300"}, "'steps' must be a positive integer, got a string"),
    ({"steps": 0}, "'steps' must be >= 1"),
    ({"seeds": []}, "'seeds' is an empty list"),
    ({"seeds": [0, 0]}, "more than once"),
    ({"seeds": True}, "'seeds' must be an integer"),
    ({"tuned": "yes"}, "'tuned' must be true or false"),
    ({"learning_rate": 1e-3}, "unknown key(s) 'learning_rate'"),
    ({"name": "a b"}, "'name' must be letters"),
    ({"set": {"action_noise": "pink:0.1"}}, "action_noise must be"),
])
def test_bad_sweep_files_fail_with_errors_that_name_the_key(changes, message):
    with pytest.raises(SweepFileError, match=re.escape(message)):
        parse_sweep(_sweep_dict(**changes), "s.toml")


def test_sweep_file_is_read_with_tomllib_and_cli_errors_name_the_file(tmp_path, capsys):
    good = _write(tmp_path / "good.toml", 'name = "g"\nalgorithms = ["td3"]\nenvs = ["Pendulum-v1"]\nseeds = 2\n'
                  'steps = 500\n[grid]\nlearning_rate = [3e-4, 1e-3]\n[set]\nbatch_size = 64\n'
                  '[env_kwargs]\ng = 9.81\n')
    sweep = load_sweep(good)
    assert sweep.grid == {"learning_rate": [3e-4, 1e-3]} and sweep.fixed == {"batch_size": 64}
    assert sweep.env_kwargs == {"Pendulum-v1": {"g": 9.81}} and sweep.seeds == [0, 1]
    assert "--env-kwarg g=9.81" in " ".join(expand(sweep)[0].argv)
    bad = _write(tmp_path / "bad.toml", 'name = "b"\nalgorithms = ["sac"\n')
    with pytest.raises(SystemExit, match="bad.toml: not valid TOML"):
        main(["sweep", str(bad)])
    with pytest.raises(SystemExit, match="no such file"):
        main(["sweep", str(tmp_path / "missing.toml")])


# -- resume ---------------------------------------------------------------------------------
def test_resume_skips_finished_runs_and_resumes_unfinished_ones(tmp_path, capsys):
    root = tmp_path / "root"
    file = _write(tmp_path / "s.toml", f'name = "r"\nroot = "{root}"\nalgorithms = ["sac"]\nenvs = ["Pendulum-v1"]\n'
                                       'seeds = 1\nsteps = 300\n[grid]\nlearning_rate = [3e-4, 1e-3, 3e-3]\n')
    specs = expand(load_sweep(file))
    _fake_finished(specs[0].run_dir, "sac", specs[0].variant, 0, -150.0)  # finished
    specs[1].run_dir.mkdir(parents=True)  # crashed: config.json and a partial log, no eval.json
    (specs[1].run_dir / "config.json").write_text("{}")
    todo, skip, redo = plan(load_sweep(file))
    assert [s.name for s in skip] == [specs[0].name]
    assert [s.name for s in redo] == [specs[1].name]
    assert [s.name for s in todo] == [specs[1].name, specs[2].name]
    assert is_finished(specs[0].run_dir) and not is_finished(specs[1].run_dir)
    capsys.readouterr()
    assert main(["sweep", str(file), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 runs" in out and "1 finished, 2 to run (1 unfinished" in out
    assert f"skip  {specs[0].name}" in out and f"resume  {specs[1].name}" in out
    assert f"run     {specs[2].name}" in out
    assert specs[1].run_dir.exists() and not (root / "sweep.json").exists()  # a dry run changes nothing


def test_sweep_runs_for_real_resumes_and_feeds_polyak_report(tmp_path, capsys):
    root = tmp_path / "root"
    text = (f'name = "real"\nroot = "{root}"\nalgorithms = ["td3"]\nenvs = ["Pendulum-v1"]\nseeds = [0]\n'
            'steps = 300\neval_episodes = 1\nlog_interval = 100\n[grid]\nlearning_rate = [1e-3, 3e-4]\n'
            '[set]\nlearning_starts = 100\nnet_arch = [32, 32]\n')
    file = _write(tmp_path / "s.toml", text)
    done, crashed = expand(load_sweep(file))
    _fake_finished(done.run_dir, "td3", done.variant, 0, -150.0)
    crashed.run_dir.mkdir(parents=True)
    (crashed.run_dir / "leftover.txt").write_text("not a file polyak writes")
    (crashed.run_dir / "metrics.csv").write_text("step,time_s\n999999,1.0\n")  # a crashed attempt, no checkpoint
    before = (done.run_dir / "eval.json").read_text()

    assert main(["sweep", str(file), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 finished, 1 to run (1 unfinished" in out and "mean" in out
    assert is_finished(crashed.run_dir) and (crashed.run_dir / "leftover.txt").exists()
    assert "999999" not in (crashed.run_dir / "metrics.csv").read_text()  # started over: no stale rows
    assert (done.run_dir / "eval.json").read_text() == before  # the finished run was not touched
    config = json.loads((crashed.run_dir / "config.json").read_text())
    assert config["variant"] == "learning_rate=0.0003" and config["hyperparameters"]["learning_rate"] == 3e-4
    assert config["hyperparameters"]["learning_starts"] == 100
    sweep_json = json.loads((root / "sweep.json").read_text())
    assert [r["name"] for r in sweep_json["runs"]] == [done.name, crashed.name]
    assert sweep_json["grid"] == {"learning_rate": [1e-3, 3e-4]}

    assert main(["sweep", str(file)]) == 0  # everything finished: nothing runs
    assert "2 finished, 0 to run" in capsys.readouterr().out

    assert main(["report", str(root), "--out", str(tmp_path / "report"), "--reps", "200"]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    groups = report["environments"]["Pendulum-v1"]["algorithms"]
    assert set(groups) == {"td3 [learning_rate=0.001]", "td3 [learning_rate=0.0003]"}  # variants stay apart

    _write(file, text.replace("steps = 300", "steps = 400"))
    with pytest.raises(SystemExit, match="other settings.*steps"):
        main(["sweep", str(file), "--dry-run"])


# -- polyak train --seeds N -----------------------------------------------------------------
def test_two_seeds_on_two_local_workers_write_two_complete_run_folders(tmp_path, capsys):
    out_dir = tmp_path / "seeds"
    t0 = time.perf_counter()
    assert main(["train", "td3", "--seeds", "2", "--workers", "2", "--run-dir", str(out_dir), *TINY]) == 0
    wall = time.perf_counter() - t0
    out = capsys.readouterr().out
    for seed in (0, 1):
        run = out_dir / f"seed{seed}"
        assert {"config.json", "metrics.csv", "episodes.csv", "tensorboard", "learning_curve.png", "model.polyak",
                "eval.json", "train.log"} <= {p.name for p in run.iterdir()}
        assert json.loads((run / "config.json").read_text())["seed"] == seed
        assert json.loads((run / "eval.json").read_text())["steps"] == 300
    assert "s0: " in out and "s1: " in out and "(std, ddof=1)" in out
    print(f"2 seeds x 300 steps on 2 workers: {wall:.1f} s")


def test_a_failing_seed_is_reported_and_the_others_still_run(tmp_path, capsys):
    out_dir = tmp_path / "bad"
    rc = main(["train", "sac", "--seeds", "2", "--seed", "5", "--workers", "1", "--run-dir", str(out_dir),
               "--steps", "10", "--set", "gamma=2"])
    assert rc == 1
    captured = capsys.readouterr()
    assert "seed 5 FAILED: " in captured.out and "seed 6 FAILED: " in captured.out
    assert "gamma must be in (0, 1]" in captured.out
    assert "2 of 2 runs failed" in captured.err
    for seed in (5, 6):  # the second seed ran although the first failed
        assert "polyak train: gamma must be in (0, 1], got 2.0" in (out_dir / f"seed{seed}" / "train.log").read_text()


def test_options_for_several_seeds_need_seeds(capsys):
    with pytest.raises(SystemExit, match="add --seeds N"):
        main(["train", "sac", "--workers", "2", "--steps", "10"])
    with pytest.raises(SystemExit):
        main(["train", "sac", "--seeds", "0"])
    assert "argument --seeds: must be >= 1, got 0" in capsys.readouterr().err


def test_jax_env_seeds_dispatch_to_the_vmapped_trainer(tmp_path, monkeypatch, capsys):
    from polyak.runs.zoo import tuned_hyperparameters

    assert _vmappable("sac", "polyak/Pendulum-v1") and _vmappable("dqn", "gymnax/CartPole-v1")
    assert not _vmappable("sac", "Pendulum-v1") and not _vmappable("sac", "polyak/Nope-v0")
    assert not _vmappable("a3c", "polyak/Pendulum-v1") and not _vmappable("qlearning", "polyak/Pendulum-v1")
    calls = []

    def train_seeds(algo, env_id, seeds, steps, hyperparameters, env_kwargs=None, n_envs=1, run_root="runs",
                    run_dir=None, chunk=1000, eval_episodes=10, progress_bar=True, command=""):
        calls.append(locals())
        dirs = []
        for s in seeds:  # a stand-in for polyak.runs.seeds.train_seeds: finished run folders
            d = Path(run_dir) / f"seed{s}"
            _fake_finished(d, algo, None, s, -100.0 - s)
            dirs.append(d)
        return dirs

    monkeypatch.setattr(experiments, "train_seeds", train_seeds)
    assert main(["train", "sac", "--env", "polyak/Pendulum-v1", "--seeds", "3", "--steps", "50", "--no-progress",
                 "--run-dir", str(tmp_path), "--set", "batch_size=32", "--eval-episodes", "2"]) == 0
    call, = calls
    assert (call["algo"], call["env_id"], call["seeds"], call["steps"]) == ("sac", "polyak/Pendulum-v1", [0, 1, 2], 50)
    assert call["run_dir"] == str(tmp_path) and call["eval_episodes"] == 2 and call["n_envs"] == 1
    assert call["hyperparameters"] == {**tuned_hyperparameters("sac", "polyak/Pendulum-v1"), "batch_size": 32}
    assert call["progress_bar"] is False
    out = capsys.readouterr().out
    assert "vmapped" in out and "s0: -100.00, s1: -101.00, s2: -102.00" in out


def test_missing_ray_gives_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ExperimentError, match=r'pip install "polyak\[ray\]"'):
        import_ray()
    with pytest.raises(SystemExit, match="ray.*pip install"):
        main(["train", "sac", "--seeds", "2", "--backend", "ray", "--run-dir", str(tmp_path), "--steps", "10"])


def test_two_seeds_through_a_local_ray_instance(tmp_path, capsys):
    ray = pytest.importorskip("ray")
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - t0
    try:
        out_dir = tmp_path / "ray"
        assert main(["train", "ddpg", "--seeds", "2", "--backend", "ray", "--run-dir", str(out_dir), *TINY]) == 0
        for seed in (0, 1):
            run = out_dir / f"seed{seed}"
            assert is_finished(run) and json.loads((run / "config.json").read_text())["seed"] == seed
        assert "DDPG on Pendulum-v1: s0: " in capsys.readouterr().out
    finally:
        ray.shutdown()
    print(f"ray.init(num_cpus=2): {startup:.1f} s")
