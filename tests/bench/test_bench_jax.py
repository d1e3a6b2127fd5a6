"""The pure-JAX benchmark (polyak's jitted loop against rejax) runs end to end with tiny step counts.

The polyak side runs everywhere; the rejax side only where rejax (0.1.3, with gymnax 0.0.9) is installed.
"""

import importlib.util
import json
import math

import pytest

from benchmarks.bench_jax import (
    INSTALL_REJAX,
    JaxBenchConfig,
    PPOJaxBenchConfig,
    main,
    mismatches,
    polyak_kwargs,
    rejax_config,
)

TINY = ["--steps", "60", "--learning-starts", "50", "--buffer-size", "1000", "--eval-episodes", "1", "--repeats", "1"]


def test_hyperparameters_are_matched():
    cfg = JaxBenchConfig()
    p, r = polyak_kwargs(cfg, seed=3), rejax_config(cfg, steps=20_000)
    assert p["learning_rate"] == r["learning_rate"] == 1e-3
    assert p["buffer_size"] == r["buffer_size"] == 1_000_000
    assert p["batch_size"] == r["batch_size"] == 256
    assert p["gamma"] == r["gamma"] == 0.99
    assert math.isclose(1.0 - r["polyak"], p["tau"]) and p["tau"] == 0.005
    assert p["policy_kwargs"] == {"net_arch": [256, 256], "n_critics": 2}
    assert r["hidden_layer_sizes"] == (256, 256) and r["num_critics"] == 2
    assert p["gradient_steps"] == r["num_epochs"] == 1 and p["train_freq"] == 1 and r["num_envs"] == 1
    assert p["normalize_obs"] is r["normalize_observations"] is True and r["normalize_rewards"] is False
    # rejax trains once global_step > fill_buffer, polyak once step >= learning_starts
    assert r["fill_buffer"] == p["learning_starts"] - 1 == 999
    # no evaluation inside the timed run: none at the start, one "period" = the whole run
    assert r["skip_initial_evaluation"] is True and r["eval_freq"] == r["total_timesteps"] == 20_000
    assert any("O(buffer_size)" in line for line in mismatches(cfg, 20_000))


def test_polyak_side_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench_jax.json"
    assert main([*TINY, "--libs", "polyak", "--seeds", "2", "--markdown", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    runs = {(r["loop"], r["seeds"]): r for r in data["runs"]}
    assert set(runs) == {("host", 1), ("jitted", 2)}
    for r in runs.values():
        assert r["status"] == "ok" and r["lib"] == "polyak" and r["steps"] == 60
        assert r["steps_per_s_total"] > 0 and r["compile_s"] > 0
        assert len(r["final_returns"]) == r["seeds"] and all(math.isfinite(x) for x in r["final_returns"])
    jitted = runs[("jitted", 2)]
    assert math.isclose(jitted["steps_per_s_total"], 2 * jitted["steps_per_s_per_seed"])
    text = capsys.readouterr().out
    header = "| library | loop | seeds | env-steps/s per seed | total env-steps/s | compile s | final return mean |"
    assert header in text
    assert "command: `python3 -m benchmarks.bench_jax" in text and "nproc" in text and "jax 0.10.2" in text


@pytest.mark.skipif(importlib.util.find_spec("rejax") is not None, reason="rejax is installed")
def test_missing_rejax_gives_the_install_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main([*TINY, "--libs", "polyak", "rejax"])
    assert INSTALL_REJAX in str(exc.value) and "gymnax 1.x" in str(exc.value)


def test_against_rejax_end_to_end(tmp_path, capsys):
    pytest.importorskip("rejax")
    out = tmp_path / "bench_jax.json"
    assert main([*TINY, "--libs", "polyak", "rejax", "--seeds", "1", "2", "--no-host", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    runs = {(r["lib"], r["seeds"]): r for r in data["runs"]}
    assert set(runs) == {("polyak", 1), ("rejax", 1), ("polyak", 2), ("rejax", 2)}
    for (lib, seeds), r in runs.items():
        assert r["status"] == "ok" and r["steps"] == 60 and r["steps_per_s_total"] > 0, (lib, seeds)
        assert len(r["final_returns"]) == seeds and all(math.isfinite(x) for x in r["final_returns"])
    ratios = data["ratios"]["per_repeat"]
    assert set(ratios) == {"polyak/rejax, 1 seed", "polyak/rejax, 2 seeds"}
    assert all(cell.endswith("×") for cells in ratios.values() for cell in cells)
    text = capsys.readouterr().out
    assert "polyak/rejax, 2 seeds" in text
    assert sum(line.startswith("rejax") for line in text.splitlines()) == 2  # table rows for 1 and 2 seeds


def test_ppo_hyperparameters_are_matched():
    cfg = PPOJaxBenchConfig()
    p, r = polyak_kwargs(cfg, seed=3), rejax_config(cfg, steps=200_000)
    assert p["learning_rate"] == r["learning_rate"] == 3e-4 and p["gamma"] == r["gamma"] == 0.99
    assert p["n_steps"] == r["num_steps"] == 2048 and r["num_envs"] == 1 and p["n_epochs"] == r["num_epochs"] == 10
    assert r["num_minibatches"] * p["batch_size"] == 2048 and p["batch_size"] == 64  # 32 minibatches of 64
    assert p["gae_lambda"] == r["gae_lambda"] == 0.95 and p["ent_coef"] == r["ent_coef"] == 0.0
    # rejax clips the policy ratio and the value with clip_eps, and halves the value loss
    assert p["clip_range"] == p["clip_range_vf"] == r["clip_eps"] == 0.2 and r["vf_coef"] == 2 * p["vf_coef"] == 1.0
    assert p["max_grad_norm"] == r["max_grad_norm"] == 0.5
    assert p["policy_kwargs"] == {"net_arch": [64, 64], "activation_fn": "tanh"}
    assert r["agent_kwargs"] == {"activation": "tanh", "hidden_layer_sizes": (64, 64)}
    assert p["normalize_obs"] is r["normalize_observations"] is False and r["normalize_rewards"] is False
    # whole rollouts in both: 200000 -> 98 x 2048; one evaluation period = the whole run
    assert r["total_timesteps"] == r["eval_freq"] == cfg.run_steps(200_000) == 98 * 2048
    assert any("optax.clip" in line for line in mismatches(cfg, 200_000))


def test_options_of_another_algorithm_are_refused():
    with pytest.raises(SystemExit, match="--buffer-size"):
        main(["--algo", "ppo", "--buffer-size", "1000"])
    with pytest.raises(SystemExit, match="--n-steps"):
        main(["--algo", "sac", "--n-steps", "64"])
    with pytest.raises(SystemExit, match="multiple of batch_size"):
        main(["--algo", "ppo", "--n-steps", "100"])


def test_ppo_end_to_end(tmp_path, capsys):
    """polyak's host and jitted PPO loops (and rejax's PPO where installed) on one tiny rollout length."""
    libs = ["polyak", "rejax"] if importlib.util.find_spec("rejax") is not None else ["polyak"]
    out = tmp_path / "bench_jax.json"
    argv = ["--algo", "ppo", "--n-steps", "64", "--steps", "100", "--eval-episodes", "1", "--repeats", "1",
            "--seeds", "1", "--libs", *libs, "--out", str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["algo"] == "ppo" and data["steps_run"] == 128  # two whole rollouts of 64
    runs = {(r["lib"], r["loop"]): r for r in data["runs"]}
    assert set(runs) == {("polyak", "host"), ("polyak", "jitted")} | ({("rejax", "jitted")} if len(libs) > 1 else set())
    for r in runs.values():
        assert r["status"] == "ok" and r["algo"] == "ppo" and r["steps"] == 128 and r["steps_per_s_total"] > 0
        assert len(r["final_returns"]) == 1 and math.isfinite(r["final_returns"][0])
    text = capsys.readouterr().out
    assert "Pure-JAX PPO on Pendulum-v1" in text and "OnPolicyJittedLoop" in text
    if len(libs) > 1:
        assert "polyak/rejax, 1 seed" in text and "optax.clip" in text


@pytest.mark.parametrize("layout", ["polyak/bench_jax.py", "benchmarks/bench_jax.py"])
def test_baseline_worker_command(tmp_path, layout):
    """--baseline-tree: polyak@base tasks run the tree's own bench_jax worker (old or new layout) from the tree,
    with the tree first on PYTHONPATH and the same options; each repeat runs them right after polyak's."""
    import os
    import sys

    from benchmarks.bench_jax import BASELINE, make_parser, ratio_columns, tasks, with_baseline, worker_command

    (tmp_path / layout).parent.mkdir()
    (tmp_path / layout).write_text("")
    module = layout.removesuffix(".py").replace("/", ".")
    args = make_parser().parse_args(["--algo", "ppo", "--n-steps", "64", "--steps", "128", "--seeds", "1", "4",
                                     "--repeats", "2", "--libs", "polyak", "rejax", "--baseline-tree", str(tmp_path)])
    args.chunk, args.libs = 640, with_baseline(args.libs)
    cmd = worker_command(f"{BASELINE}:jitted:4", args)
    assert cmd.argv == [sys.executable, "-m", module, "--worker", "polyak:jitted:4", "--algo", "ppo", "--steps", "128",
                        "--seed", "0", "--eval-episodes", "10", "--chunk", "640", "--n-steps", "64"]
    assert cmd.cwd == str(tmp_path.resolve())
    assert cmd.env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path.resolve())
    own = worker_command("polyak:jitted:4", args)
    assert own.argv[1:5] == ["-m", "benchmarks.bench_jax", "--worker", "polyak:jitted:4"] and own.cwd is None
    assert own.argv[5:] == cmd.argv[5:]
    assert [t for r, t in tasks(args) if r == 0] == [
        "polyak:host:1", f"{BASELINE}:host:1", "polyak:jitted:1", f"{BASELINE}:jitted:1", "rejax:jitted:1",
        "polyak:jitted:4", f"{BASELINE}:jitted:4", "rejax:jitted:4"]
    labels = [label for label, _, _ in ratio_columns(args)]
    assert labels[:3] == [f"polyak/{BASELINE}, 1 seed", f"polyak/{BASELINE}, 4 seeds", f"polyak/{BASELINE} host, 1 seed"]
