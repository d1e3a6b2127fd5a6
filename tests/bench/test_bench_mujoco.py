"""benchmarks.bench_mujoco's bookkeeping: --out rewritten after every run, --resume runs only what is missing."""

import json

import pytest

import benchmarks.bench_mujoco as bm


def _fake_worker(calls):
    def run_worker(cmd):
        task = cmd[cmd.index("--worker") + 1]
        calls.append(task)
        lib, algo, env_id, seed = task.split(":")
        if lib == "sbx" and seed == "1":  # one failed run: kept in the file, run again by --resume
            return {"status": "error", "error": "boom"}
        steps = int(cmd[cmd.index("--steps") + 1])
        return {"status": "ok", "steps_per_s": 100.0 + int(seed), "steady_steps_per_s": 90.0,
                "final_return": 10.0 * (int(seed) + 1), "evals": [[steps, 1.0, 10.0 * (int(seed) + 1)]]}
    return run_worker


def _argv(out, seeds):
    return ["--envs", "Hopper-v5", "--algos", "sac", "--libs", "polyak,sbx", "--seeds", str(seeds),
            "--steps", "300", "--learning-starts", "100", "--eval-every", "0", "--eval-episodes", "1",
            "--out", str(out)]


def test_resume_keeps_finished_runs_and_reruns_the_missing_and_failed(tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs.json"
    calls: list[str] = []
    monkeypatch.setattr(bm, "run_worker", _fake_worker(calls))
    assert bm.main(_argv(out, 2)) == 0
    assert calls == ["polyak:sac:Hopper-v5:0", "sbx:sac:Hopper-v5:0", "polyak:sac:Hopper-v5:1", "sbx:sac:Hopper-v5:1"]
    first = json.loads(out.read_text())
    assert [(r["lib"], r["seed"], r["status"]) for r in first["runs"]] == [
        ("polyak", 0, "ok"), ("sbx", 0, "ok"), ("polyak", 1, "ok"), ("sbx", 1, "error")]

    calls.clear()
    assert bm.main(_argv(out, 3) + ["--resume"]) == 0
    # seed 1 of sbx failed before: run again (and fails again in this fake); seed 2 is new
    assert calls == ["sbx:sac:Hopper-v5:1", "polyak:sac:Hopper-v5:2", "sbx:sac:Hopper-v5:2"]
    runs = json.loads(out.read_text())["runs"]
    assert sorted((r["lib"], r["seed"]) for r in runs) == [("polyak", 0), ("polyak", 1), ("polyak", 2),
                                                          ("sbx", 0), ("sbx", 1), ("sbx", 2)]
    summary = {r["lib"]: r for r in json.loads(out.read_text())["summary"]}
    assert summary["polyak"]["seeds"] == 3 and summary["sbx"]["seeds"] == 2  # the failed run is not averaged
    assert not (tmp_path / "runs.json.tmp").exists()


def test_resume_refuses_a_file_made_with_other_run_settings(tmp_path, monkeypatch):
    out = tmp_path / "runs.json"
    monkeypatch.setattr(bm, "run_worker", _fake_worker([]))
    bm.main(_argv(out, 1))
    argv = _argv(out, 1)
    argv[argv.index("--steps") + 1] = "400"
    with pytest.raises(SystemExit, match="steps 300 there, 400 now"):
        bm.main(argv + ["--resume"])
    with pytest.raises(SystemExit, match="--resume needs --out"):
        bm.main(argv[:argv.index("--out")] + ["--resume"])


def test_first_seed_and_report_join_the_files_of_separate_processes(tmp_path, monkeypatch, capsys):
    calls: list[str] = []
    monkeypatch.setattr(bm, "run_worker", _fake_worker(calls))
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    bm.main(_argv(a, 1)[:-2] + ["--out", str(a), "--libs", "polyak"])
    bm.main(_argv(b, 2)[:-2] + ["--out", str(b), "--libs", "polyak", "--first-seed", "1"])
    assert calls == ["polyak:sac:Hopper-v5:0", "polyak:sac:Hopper-v5:1", "polyak:sac:Hopper-v5:2"]
    capsys.readouterr()
    assert bm.main(["--report", str(a), str(b)]) == 0
    table = capsys.readouterr().out
    # seeds 0, 1, 2 together: final returns 10, 20, 30 -> mean 20 ± 8.16, median steps/s 101
    assert "| Hopper-v5 | sac | polyak | 3 | 101 | 90 | 20 ± 8 |" in table

    with pytest.raises(SystemExit, match="appear in more than one file"):
        bm.main(["--report", str(a), str(a)])
    c = tmp_path / "c.json"
    argv = _argv(c, 1)[:-2] + ["--out", str(c), "--libs", "polyak"]
    argv[argv.index("--steps") + 1] = "400"
    bm.main(argv)
    with pytest.raises(SystemExit, match="other run settings"):
        bm.main(["--report", str(a), str(c)])


@pytest.mark.parametrize("algo, env_id", [("sac", "HalfCheetah-v5"), ("td3", "HalfCheetah-v5"), ("sac", "Hopper-v5"),
                                          ("td3", "Hopper-v5"), ("tqc", "Hopper-v5")])
def test_the_zoo_records_the_compared_settings(algo, env_id):
    """`polyak train ALGO --env ENV` trains with the settings bench_mujoco measured against SBX (MujocoConfig)."""
    import polyak
    from polyak.runs.zoo import tuned_hyperparameters

    cfg = bm.MujocoConfig()
    config = polyak.ALGORITHMS[algo].config_cls(**tuned_hyperparameters(algo, env_id))
    assert (config.learning_rate, config.batch_size, config.tau, config.gamma, config.learning_starts) == (
        cfg.learning_rate, cfg.batch_size, cfg.tau, cfg.gamma, cfg.learning_starts)
    assert tuple(config.actor_hidden) == tuple(config.critic_hidden) == cfg.net_arch
    assert config.n_critics == cfg.n_critics and config.normalize_obs is False  # the peers have no normaliser
    if algo == "td3":
        assert (config.policy_delay, config.exploration_noise) == (cfg.policy_delay, cfg.exploration_sigma)
    if algo == "tqc":
        assert (config.n_quantiles, config.top_quantiles_to_drop_per_net) == (
            cfg.n_quantiles, cfg.top_quantiles_to_drop_per_net)
