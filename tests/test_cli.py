"""The command line: a short real training run writes a complete run folder; eval reads it back."""

import argparse
import json
import subprocess
import sys

import pytest

from polyak.cli import main
from polyak.runs.run import build_model, parse_overrides, training_settings
from polyak.runs.zoo import tuned_hyperparameters


@pytest.mark.gym029  # also under gymnasium 0.29.1 (ci/gym029.sh)
def test_train_writes_a_complete_run_folder_and_eval_reads_it(tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "td3", "--steps", "400", "--seed", "1", "--run-dir", str(run), "--no-progress",
               "--eval-episodes", "2", "--log-interval", "100", "--checkpoint-every", "200",
               "--set", "learning_starts=100", "--set", "net_arch=[32,32]", "--set", "action_noise=ou:0.2"])
    assert rc == 0
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.csv", "episodes.csv", "tensorboard", "learning_curve.png", "model.polyak",
            "eval.json", "checkpoints"} <= names
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tensorboard").iterdir())
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step000000200.polyak", "step000000400.polyak"]
    config = json.loads((run / "config.json").read_text())
    assert config["hyperparameters"]["learning_starts"] == 100
    assert config["hyperparameters"]["actor_hidden"] == [32, 32]
    assert config["hyperparameters"]["learning_rate"] == 1e-3  # the tuned Pendulum value (polyak/zoo.py)
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    for column in ("steps_per_s", "critic_loss", "actor_loss", "q_mean", "q_abs_max", "recent_return", "recent_length"):
        assert column in header
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 4
    result = json.loads((run / "eval.json").read_text())
    assert len(result["eval_returns"]) == 2 and result["steps"] == 400
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "2"]) == 0
    assert "2 episodes: return" in capsys.readouterr().out


def test_sac_metrics_include_temperature_and_entropy(tmp_path):
    run = tmp_path / "sac"
    main(["train", "sac", "--steps", "250", "--run-dir", str(run), "--no-progress", "--eval-episodes", "1",
          "--log-interval", "125", "--set", "learning_starts=100", "--set", "net_arch=[16]"])
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"alpha", "entropy", "alpha_loss"} <= set(header)


@pytest.mark.gym029  # also under gymnasium 0.29.1 (ci/gym029.sh)
def test_on_policy_train_on_a_gymnasium_vector_env(tmp_path):
    """CartPole ships Gymnasium's own vector env, which auto-resets on the NEXT step; `polyak train`
    must build SAME_STEP copies instead (every step a transition), and on-policy models have no
    action_noise to record."""
    from polyak.envs.gym_compat import AutoresetMode, autoreset_mode_of
    from polyak.runs.run import make_training_env

    assert autoreset_mode_of(make_training_env("CartPole-v1", 2)) == AutoresetMode.SAME_STEP
    run = tmp_path / "run"
    assert main(["train", "reinforce", "--env", "CartPole-v1", "--steps", "64", "--n-envs", "2", "--set", "n_steps=16",
                 "--eval-episodes", "1", "--run-dir", str(run), "--no-progress"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["n_envs"] == 2 and config["action_noise"] is None
    assert json.loads((run / "eval.json").read_text())["steps"] == 64


@pytest.mark.gym029  # also under gymnasium 0.29.1 (ci/gym029.sh)
def test_parse_overrides():
    assert parse_overrides(["a=1", "b=0.5", "c=auto", "d=[1,2]", "e=true"]) == {
        "a": 1, "b": 0.5, "c": "auto", "d": [1, 2], "e": True}
    with pytest.raises(SystemExit):
        parse_overrides(["novalue"])
    # a JSON string is that string (as shells and sweep files quote it); broken JSON still names the flag
    assert parse_overrides(['activation="tanh"', 'noise = "ou:0.2"']) == {"activation": "tanh", "noise": "ou:0.2"}
    for bad in ('activation="tanh', "net_arch=[64,64", "learning_rate=3e-4x", "a="):
        with pytest.raises(SystemExit, match=r"--set .* is not valid JSON"):
            parse_overrides([bad])


def test_a_users_net_arch_sizes_the_networks_a_tuned_entry_names():
    """CrossQ's Pendulum entry sets critic_hidden, which the config would take before a user's net_arch."""
    assert tuned_hyperparameters("crossq", "Pendulum-v1")["critic_hidden"] == [256, 256]

    def config(*overrides):
        hp, _, _ = training_settings(argparse.Namespace(algo="crossq", env="Pendulum-v1", no_tuned=False,
                                                        set=list(overrides), n_envs=None, env_kwarg=[]))
        return build_model("crossq", "Pendulum-v1", 0, hp).config

    assert config().critic_hidden == (256, 256)
    assert config("net_arch=[64,64]").actor_hidden == config("net_arch=[64,64]").critic_hidden == (64, 64)
    cfg = config("net_arch=[64,64]", "critic_hidden=[32]")  # the user's own field is still the more specific
    assert (cfg.actor_hidden, cfg.critic_hidden) == ((64, 64), (32,))


def test_set_verbose_reaches_the_model_and_set_seed_is_refused():
    """`--set verbose=1` turns on a model's own progress output (MOPO's model fit) instead of a TypeError."""
    assert build_model("sac", "Pendulum-v1", 0, {"verbose": 1}).verbose == 1
    assert build_model("sac", "Pendulum-v1", 0, {}).verbose == 0
    with pytest.raises(SystemExit, match="seed is not a hyperparameter; use --seed"):
        build_model("sac", "Pendulum-v1", 0, {"seed": 3})
    for bad in ("abc", 1.5, -1, True):  # what parse_overrides makes of --set verbose=abc / 1.5 / -1 / true
        with pytest.raises(SystemExit, match=r"--set verbose=.*: verbose must be an integer >= 0"):
            build_model("sac", "Pendulum-v1", 0, {"verbose": bad})


@pytest.mark.gym029  # also under gymnasium 0.29.1 (ci/gym029.sh)
def test_bad_hyperparameter_on_the_command_line_fails_before_training(tmp_path):
    with pytest.raises(SystemExit, match=r"polyak train: gamma must be in \(0, 1\], got 2.0"):
        main(["train", "sac", "--steps", "10", "--run-dir", str(tmp_path / "x"), "--set", "gamma=2"])
    assert not (tmp_path / "x").exists()  # an invalid run leaves no run folder


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["eval", "--help"], ["bench", "--help"]])
def test_help(args):
    out = subprocess.run([sys.executable, "-m", "polyak", *args], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: " in out.stdout and "--" in out.stdout
