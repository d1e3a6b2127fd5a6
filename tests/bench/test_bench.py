"""The speed benchmark runs end to end (polyak only; the peers are optional and reported as skipped)."""

import json

import pytest

from benchmarks.bench import main


def test_bench_runs_polyak_and_reports_missing_peers(tmp_path, capsys):
    out = tmp_path / "bench.json"
    main(["--libs", "polyak,sb3", "--algos", "sac", "--steps", "1100", "--no-flops", "--out", str(out)])
    data = json.loads(out.read_text())
    runs = [r for r in data["runs"] if r["lib"] == "polyak"]
    assert len(runs) == 1 and runs[0]["status"] == "ok" and runs[0]["steps"] == 1100
    assert runs[0]["steps_per_s"] > 0
    assert data["hyperparameters"]["batch_size"] == 256
    text = capsys.readouterr().out
    assert "polyak" in text and "steps/s" in text


def test_on_policy_runs_round_up_to_whole_rollouts():
    from benchmarks.bench import halfway_step, run_steps

    assert run_steps("ppo", 20_000) == 20_480 and run_steps("ppo", 2048) == 2048  # 10 rollouts of 2048
    assert run_steps("a2c", 20_001) == 20_005 and run_steps("sac", 20_001) == 20_001
    # the steady window starts right after the 5th of 10 updates, so both halves hold 5 updates
    assert halfway_step("ppo", 20_480) == 5 * 2048 + 1 and halfway_step("sac", 6000) == 3000


def test_polyak_on_policy_models_get_sb3_defaults():
    from benchmarks.bench import build_polyak

    ppo = build_polyak("ppo", None, seed=0).config
    assert (ppo.n_steps, ppo.batch_size, ppo.n_epochs, ppo.learning_rate, ppo.clip_range) == (2048, 64, 10, 3e-4, 0.2)
    assert ppo.policy_hidden == ppo.value_hidden == (64, 64) and ppo.activation == "tanh" and ppo.ortho_init
    assert ppo.normalize_obs is False and ppo.optimizer == "adam" and ppo.max_grad_norm == 0.5
    a2c = build_polyak("a2c", None, seed=0).config
    assert (a2c.n_steps, a2c.learning_rate, a2c.optimizer, a2c.gae_lambda) == (5, 7e-4, "rmsprop", 1.0)
    assert a2c.normalize_obs is False and a2c.normalize_advantage is False


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_sb3_on_policy_models_equal_sb3_defaults(algo):
    """The explicit hyperparameters given to SB3 are SB3's own defaults (skipped without SB3)."""
    sb3 = pytest.importorskip("stable_baselines3")
    from benchmarks.bench import ENV_ID, build_sb3

    ours, default = build_sb3(algo, None, seed=0), getattr(sb3, algo.upper())("MlpPolicy", ENV_ID, device="cpu")
    names = ["n_steps", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm", "normalize_advantage",
             "learning_rate"] + (["batch_size", "n_epochs"] if algo == "ppo" else [])
    for name in names:
        assert getattr(ours, name) == getattr(default, name), name
    assert str(ours.policy) == str(default.policy)  # same layers, activations and optimiser
    assert type(ours.policy.optimizer) is type(default.policy.optimizer)


def test_bench_runs_ppo_and_a2c(tmp_path, capsys):
    out = tmp_path / "bench.json"
    main(["--libs", "polyak", "--algos", "ppo,a2c", "--steps", "100", "--out", str(out)])
    data = json.loads(out.read_text())
    runs = {r["algo"]: r for r in data["runs"]}
    assert runs["ppo"]["status"] == "ok" and runs["ppo"]["steps"] == 2048  # one whole rollout and its update
    assert runs["a2c"]["status"] == "ok" and runs["a2c"]["steps"] == 100  # 20 rollouts of 5
    assert data["flops"] is None  # the FLOP measurement is of SAC's update: not run without sac
    assert data["on_policy_hyperparameters"]["ppo"]["n_steps"] == 2048
    text = capsys.readouterr().out
    assert "PPO" in text and "A2C" in text and "normalize_obs=False" in text


@pytest.mark.parametrize("layout", ["polyak/bench.py", "benchmarks/bench.py"])
def test_baseline_worker_runs_the_trees_own_module(tmp_path, layout):
    """--baseline-tree: the polyak@base worker is the tree's own bench module (old or new layout), run from
    the tree with the tree first on PYTHONPATH, with the same worker arguments; nothing is run."""
    import os
    import sys

    from benchmarks.bench import BASELINE, BenchConfig, baseline_worker_command, with_baseline, worker_command

    (tmp_path / layout).parent.mkdir()
    (tmp_path / layout).write_text("")
    module = layout.removesuffix(".py").replace("/", ".")
    cmd = baseline_worker_command(tmp_path, "polyak:sac", ["--steps", "10"], environ={"PYTHONPATH": "/x", "A": "1"})
    assert cmd.argv == [sys.executable, "-m", module, "--worker", "polyak:sac", "--steps", "10"]
    assert cmd.cwd == str(tmp_path.resolve()) and cmd.env["A"] == "1"
    assert cmd.env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path.resolve()), "/x"]
    # the parent's task 'polyak@base:ALGO' becomes the tree's 'polyak:ALGO'; other tasks stay in this checkout
    cmd = worker_command(f"{BASELINE}:td3", 100, 3, BenchConfig(buffer_size=500), baseline_tree=tmp_path)
    assert cmd.argv == [sys.executable, "-m", module, "--worker", "polyak:td3", "--steps", "100", "--seed", "3",
                        "--buffer-size", "500"]
    assert cmd.cwd == str(tmp_path.resolve()) and cmd.env["PYTHONPATH"].startswith(str(tmp_path.resolve()))
    own = worker_command("polyak:td3", 100, 3, BenchConfig(), baseline_tree=tmp_path)
    assert own.argv[1:5] == ["-m", "benchmarks.bench", "--worker", "polyak:td3"] and own.cwd is None and own.env is None
    assert with_baseline(["sb3", "polyak", "sbx"]) == ["sb3", "polyak", BASELINE, "sbx"]


def test_baseline_tree_without_a_benchmark_is_refused(tmp_path):
    from benchmarks.bench import baseline_worker_command

    with pytest.raises(SystemExit, match="neither benchmarks/bench.py nor polyak/bench.py"):
        baseline_worker_command(tmp_path, "polyak:sac", [])


def test_baseline_ratio_columns():
    from benchmarks.bench import BASELINE, repeat_ratio_table, speed_table

    runs = [{"repeat": 0, "algo": "sac", "lib": lib, "status": "ok", "steps_per_s": rate}
            for lib, rate in (("polyak", 300.0), (BASELINE, 200.0))]
    summary = {"sac": {lib: {"n": 1, "steps_per_s": rate, "steady_steps_per_s": None}
                       for lib, rate in (("polyak", 300.0), (BASELINE, 200.0))}}
    table = speed_table(summary, ["sac"], ["polyak", BASELINE], markdown=True)
    assert f"| polyak/{BASELINE} |" in table and "| 1.50x |" in table
    assert "SAC polyak/polyak@base" in repeat_ratio_table(runs, ["sac"], ["polyak", BASELINE], markdown=True)


def test_ratio_columns_cover_both_polyak_variants():
    from benchmarks.bench import ratio_pairs

    assert ratio_pairs(["polyak", "sb3", "sbx"]) == [("polyak", "sb3"), ("polyak", "sbx")]
    assert ratio_pairs(["polyak", "polyak-overlap", "sbx"]) == [
        ("polyak", "sbx"), ("polyak-overlap", "sbx"), ("polyak-overlap", "polyak")]
    assert ratio_pairs(["sbx"]) == []


def test_bench_runs_the_overlap_variant(tmp_path, capsys):
    out = tmp_path / "bench.json"
    main(["--libs", "polyak-overlap", "--algos", "td3", "--steps", "1050", "--no-flops", "--out", str(out)])
    run, = json.loads(out.read_text())["runs"]
    assert run["lib"] == "polyak-overlap" and run["status"] == "ok" and run["steps"] == 1050
    assert "act_before_update=True" in capsys.readouterr().out
