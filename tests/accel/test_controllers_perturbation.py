"""The random-perturbation tuner: its step rule, its trials, and its use by `polyak data collect` / `accel evaluate`."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from polyak.accel.controllers import RandomPerturbation, make_controller
from polyak.accel.evaluation import TASKS, evaluate
from polyak.cli import main
from polyak.envs.transverse_tuning import MAGNET_LIMITS, MAX_DELTA, SCREEN_SCALE

DELTA_ENV = SimpleNamespace(env=SimpleNamespace(action_mode="delta"))


def observation(magnets, reading, target=(0.0, 0.0, 0.0, 0.0)):
    """A 17-entry TransverseTuning observation (the log-error entries are not read by the tuner)."""
    return np.concatenate([np.asarray(reading) / SCREEN_SCALE, np.asarray(magnets) / MAGNET_LIMITS,
                           np.asarray(target) / SCREEN_SCALE, np.zeros(4)]).astype(np.float32)


def test_step_rule_against_hand_computed_values():
    base = np.array([1e-3, -1e-3, 10.0, -10.0, 10.0])
    tuner = RandomPerturbation(seed=3, initial_scale=0.5, grow=1.5, shrink=0.9)
    rng = np.random.default_rng(3)  # the tuner's perturbation stream
    tuner.reset(DELTA_ENV, observation(base, [4e-4, 2e-4, 0.0, 2e-4]), {})  # MAE 200 um
    # step 1: a trial point around the base
    a1 = tuner.act(observation(base, [4e-4, 2e-4, 0.0, 2e-4]), {})
    np.testing.assert_allclose(a1, np.clip(0.5 * rng.standard_normal(5) * MAX_DELTA, -MAX_DELTA, MAX_DELTA), rtol=1e-5)
    # step 2: the trial reads worse (MAE 300 um): the step shrinks, and the move goes back to the base plus a new trial
    trial = base + a1
    a2 = tuner.act(observation(trial, [6e-4, 3e-4, 0.0, 3e-4]), {})
    assert tuner.scale == pytest.approx(0.45) and tuner.best_f == pytest.approx(2e-4)
    expected = np.clip(base + 0.45 * rng.standard_normal(5) * MAX_DELTA - trial, -MAX_DELTA, MAX_DELTA)
    np.testing.assert_allclose(a2, expected, rtol=1e-4, atol=1e-9)
    # step 3: this trial reads better (MAE 100 um): it becomes the base, the step grows
    trial2 = trial + a2
    a3 = tuner.act(observation(trial2, [2e-4, 1e-4, 0.0, 1e-4]), {})
    assert tuner.scale == pytest.approx(0.675) and tuner.best_f == pytest.approx(1e-4)
    np.testing.assert_allclose(tuner.base, trial2, rtol=1e-5)
    np.testing.assert_allclose(a3, np.clip(0.675 * rng.standard_normal(5) * MAX_DELTA, -MAX_DELTA, MAX_DELTA),
                               rtol=1e-4, atol=1e-9)


def test_tunes_the_challenge_trials_and_ends_on_the_best_setting():
    ev = evaluate(RandomPerturbation(budget=60), "transverse", trials=4, steps=60)
    for metrics in ev.trials:
        assert metrics["final_mae"] < 0.5 * metrics["initial_mae"]
        assert metrics["final_mae"] == pytest.approx(metrics["best_mae"], rel=1e-3)  # the last step returns to the base
    # without a budget its last setting is a trial point: not always the best one
    free = evaluate(RandomPerturbation(), "transverse", trials=4, steps=60)
    assert any(m["final_mae"] > m["best_mae"] * 1.001 for m in free.trials)


def test_refuses_direct_mode_and_bad_settings():
    adapter = TASKS["transverse"].make(make_controller("nelder-mead"), 5, 0.0)  # a direct-mode env
    obs, _ = adapter.reset(seed=0)
    with pytest.raises(ValueError, match="delta"):
        RandomPerturbation().reset(adapter, obs, {})
    with pytest.raises(ValueError, match="min_scale"):
        RandomPerturbation(initial_scale=0.01, min_scale=0.1)
    with pytest.raises(ValueError, match="grow"):
        RandomPerturbation(grow=0.9)


def test_collect_and_evaluate_by_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    import minari

    args = ["data", "collect", "--env", "polyak/TransverseTuning-v0", "--policy", "random-perturbation",
            "--episodes", "2", "--noise", "0.1", "--seed", "5"]
    with pytest.raises(SystemExit, match="action_mode='delta'"):
        main(args + ["--id", "test/TransverseTuning-v0/rp-direct-v0", "--env-kwarg", "action_mode=direct"])
    actions = []
    for name in ("a", "b"):  # seeded: the same command logs the same data
        assert main(args + ["--id", f"test/TransverseTuning-v0/rp-{name}-v0"]) == 0
        episodes = minari.load_dataset(f"test/TransverseTuning-v0/rp-{name}-v0").iterate_episodes()
        actions.append(np.concatenate([e.actions for e in episodes]))
    np.testing.assert_array_equal(actions[0], actions[1])
    assert np.all(np.abs(actions[0]) <= MAX_DELTA * (1 + 1e-6))
    assert np.mean(np.isclose(np.abs(actions[0]), MAX_DELTA)) < 0.5  # steps inside the limits, mostly not at them
    out = tmp_path / "eval"
    assert main(["accel", "evaluate", "random-perturbation@30", "--trials", "2", "--no-oracle", "--out", str(out)]) == 0
    trials = json.loads((out / "results.json").read_text())[0]["trials"]
    assert all(t["steps"] == 30 and t["final_mae"] == pytest.approx(t["best_mae"], rel=1e-3) for t in trials)
