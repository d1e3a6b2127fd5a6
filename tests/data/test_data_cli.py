"""`polyak data collect | import | info` and `polyak train OFFLINE_ALGO --dataset ID`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyak.cli import main
from polyak.runs.run import RunFolder

DATASET = "test/Pendulum-v1/random-v0"


@pytest.fixture(autouse=True)
def datasets_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


def test_a_controller_logs_in_the_action_mode_it_was_written_for(capsys):
    """Nelder-Mead sets the magnets (action_mode='direct'): in the default delta env its settings would be clipped
    to step limits and logged as nonsense, so collect refuses; with --env-kwarg action_mode=direct it logs the
    settings it tried, inside the magnets' limits and mostly not at a bound."""
    args = ["data", "collect", "--env", "polyak/TransverseTuning-v0", "--policy", "nelder-mead", "--episodes", "2",
            "--id", "test/TransverseTuning-v0/nm-v0"]
    with pytest.raises(SystemExit, match="action_mode='direct'.*--env-kwarg action_mode=direct"):
        main(args)
    assert main(args + ["--env-kwarg", "action_mode=direct"]) == 0
    import minari

    episode = next(iter(minari.load_dataset("test/TransverseTuning-v0/nm-v0").iterate_episodes()))
    limits = np.array([5.30e-3, 5.30e-3, 30.0, 30.0, 30.0])
    assert np.all(np.abs(episode.actions) <= limits * (1 + 1e-6))
    assert np.mean(np.isclose(np.abs(episode.actions), limits)) < 0.5


def test_collect_info_import_and_errors(tmp_path, capsys):
    assert main(["data", "collect", "--env", "Pendulum-v1", "--policy", "random", "--episodes", "2",
                 "--noise", "0.1", "--id", DATASET]) == 0
    assert "2 episodes, 400 steps" in capsys.readouterr().out
    assert main(["data", "info", DATASET, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["episodes"], info["steps"], info["truncations"], info["env_id"]) == (2, 400, 2, "Pendulum-v1")
    with pytest.raises(SystemExit, match="already exists"):
        main(["data", "collect", "--env", "Pendulum-v1", "--policy", "random", "--episodes", "1", "--id", DATASET])
    with pytest.raises(SystemExit, match="unknown controller"):
        main(["data", "collect", "--env", "Pendulum-v1", "--policy", "nope", "--episodes", "1", "--id", DATASET])
    log = tmp_path / "log.npz"
    np.savez(log, obs=np.zeros((4, 3)), action=np.zeros((4, 1)), reward=np.ones(4), episode=[0, 0, 1, 1],
             next_obs=np.zeros((4, 3)))
    assert main(["data", "import", str(log), "--id", "test/Pendulum-v1/log-v0", "--env", "Pendulum-v1"]) == 0
    assert "2 episodes" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="polyak data: dataset test/Pendulum-v1/none-v0 not found"):
        main(["data", "info", "test/Pendulum-v1/none-v0"])


def test_train_offline_from_a_dataset(tmp_path, capsys):
    main(["data", "collect", "--env", "Pendulum-v1", "--policy", "random", "--episodes", "1", "--id", DATASET])
    with pytest.raises(SystemExit, match="learns from a dataset: add --dataset"):
        main(["train", "td3_bc"])
    with pytest.raises(SystemExit, match="--dataset is for the offline algorithms"):
        main(["train", "sac", "--dataset", DATASET])
    run_dir = tmp_path / "run"
    assert main(["train", "td3_bc", "--dataset", DATASET, "--steps", "4", "--log-interval", "2", "--eval-episodes",
                 "1", "--checkpoint-every", "2", "--run-dir", str(run_dir), "--no-progress", "--set",
                 "net_arch=[16,16]", "--set", "batch_size=16"]) == 0
    folder = RunFolder(run_dir)
    config = folder.read_config()
    assert config["env"] == "Pendulum-v1" and config["overrides"]["dataset"] == DATASET  # the dataset's env
    assert folder.is_finished() and [p.name for p in folder.checkpoints()] == ["step000000002.polyak",
                                                                                 "step000000004.polyak"]
    assert folder.read_eval()["steps"] == 4
    assert "deterministic evaluation over 1 episodes" in capsys.readouterr().out


def test_the_dataset_records_the_env_keywords_and_offline_training_uses_them(tmp_path, capsys):
    """A log taken in a non-default env (here Pendulum with g = 5) is evaluated in that env, not the default one:
    `data collect --env-kwarg` records the keywords in the dataset's env spec; `train --dataset` and the
    library's offline classes make the env with them; a later --env-kwarg still overrides."""
    import polyak

    gravity = "test/Pendulum-v1/moon-v0"
    assert main(["data", "collect", "--env", "Pendulum-v1", "--env-kwarg", "g=5.0", "--policy", "random",
                 "--episodes", "1", "--id", gravity]) == 0
    assert main(["data", "info", gravity]) == 0
    assert "env Pendulum-v1 (g=5.0)" in capsys.readouterr().out
    assert polyak.TD3BC("MlpPolicy", dataset=gravity, actor_hidden=[8], critic_hidden=[8]).env.unwrapped.g == 5.0
    small = ["--steps", "2", "--log-interval", "2", "--eval-episodes", "1", "--no-progress", "--set", "net_arch=[8]",
             "--set", "batch_size=8"]
    assert main(["train", "td3_bc", "--dataset", gravity, "--run-dir", str(tmp_path / "a"), *small]) == 0
    assert RunFolder(tmp_path / "a").read_config()["env_kwargs"] == {"g": 5.0}
    assert main(["train", "td3_bc", "--dataset", gravity, "--env-kwarg", "g=9.0", "--run-dir", str(tmp_path / "b"),
                 *small]) == 0
    assert RunFolder(tmp_path / "b").read_config()["env_kwargs"] == {"g": 9.0}
    main(["data", "collect", "--env", "Pendulum-v1", "--policy", "random", "--episodes", "1", "--id", DATASET])
    assert polyak.TD3BC("MlpPolicy", dataset=DATASET, actor_hidden=[8], critic_hidden=[8]).env.unwrapped.g == 10.0  # none recorded
