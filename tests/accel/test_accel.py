"""Classical controllers, the challenge metrics and `polyak accel evaluate`."""

import json

import jax

import numpy as np
import pytest

from polyak.accel.controllers import DoNothing, NelderMead, SVDController, make_controller
from polyak.accel.evaluation import challenge_score, evaluate, steps_to_convergence
from polyak.cli import main
from polyak.envs.transverse_tuning import CHALLENGE_START


def test_steps_to_convergence_follows_the_challenge_definition():
    um = 1e-6
    # improves, then stays within a 40 um band from step 3 on
    assert steps_to_convergence(np.array([900, 500, 200, 60, 50, 80, 70]) * um) == 3
    # a late jump out of the band moves the convergence point after it
    assert steps_to_convergence(np.array([900, 100, 90, 200, 95, 96]) * um) == 4
    # no improvement: the whole episode
    assert steps_to_convergence(np.array([100, 50, 120]) * um) == 2
    # the last step alone is always within the band
    assert steps_to_convergence(np.array([900, 500, 100]) * um) == 2


def test_challenge_score_formula():
    final = np.array([40e-6, 60e-6, 50e-6])
    conv = np.array([60, 80, 70])
    change = np.array([10.0, 30.0, 20.0])
    assert challenge_score(final, conv, change) == pytest.approx(750 * 50e-6 + 0.5 * 70 / 150 + 0.5 * 20 / 750)


def test_do_nothing_keeps_the_magnets_and_the_mae():
    ev = evaluate(DoNothing(), "transverse", trials=3, steps=20)
    for records, metrics in zip(ev.records, ev.trials):
        magnets = np.array([r["magnets"] for r in records])
        np.testing.assert_allclose(magnets, np.tile(CHALLENGE_START, (21, 1)), rtol=1e-6)
        assert metrics["magnet_change"] == 0.0 and metrics["final_mae"] == pytest.approx(metrics["initial_mae"])
        assert metrics["steps_to_convergence"] == 20


def test_trials_are_the_same_for_every_controller():
    a = evaluate(DoNothing(), "transverse", trials=4, steps=3)
    b = evaluate(NelderMead(budget=3), "transverse", trials=4, steps=3)
    assert [t["initial_mae"] for t in a.trials] == [t["initial_mae"] for t in b.trials]
    assert len({t["initial_mae"] for t in a.trials}) == 4


def test_nelder_mead_uses_its_budget_improves_and_ends_on_the_best_setting():
    controller = NelderMead(budget=60)
    ev = evaluate(controller, "transverse", trials=4, steps=60)
    for records, metrics in zip(ev.records, ev.trials):
        assert metrics["steps"] == 60
        assert metrics["final_mae"] < 0.2 * metrics["initial_mae"]
        # the last step returns to the best setting seen (the objective is noise-free here)
        assert metrics["final_mae"] == pytest.approx(metrics["best_mae"], rel=1e-5)
    assert controller._thread is None  # the optimiser thread is closed after the last trial


def test_nelder_mead_reads_only_the_observation_under_noise():
    quiet = evaluate(NelderMead(budget=40), "transverse", trials=2, steps=40)
    noisy = evaluate(NelderMead(budget=40), "transverse", trials=2, steps=40, reading_noise=30e-6)
    assert [t["final_mae"] for t in quiet.trials] != [t["final_mae"] for t in noisy.trials]


def test_nelder_mead_refuses_delta_mode_and_bad_settings():
    from polyak.accel.evaluation import TASKS

    adapter = TASKS["transverse"].make(DoNothing(), 10, 0.0)  # a delta-mode env
    obs, _ = adapter.reset(seed=0)
    with pytest.raises(ValueError, match="direct"):
        NelderMead().reset(adapter, obs, {})
    with pytest.raises(ValueError, match="initial_step"):
        NelderMead(initial_step=0.0)


def test_svd_controller_solves_orbit_steering():
    ev = evaluate(SVDController(), "orbit", trials=20)
    assert ev.summary["success_rate"] == 1.0
    assert ev.summary["mean_rms_reduction"] > 0.6
    nothing = evaluate(DoNothing(), "orbit", trials=5)
    assert nothing.summary["success_rate"] == 0.0 and abs(nothing.summary["mean_rms_reduction"]) < 1e-6


def test_unknown_controller_names_the_choices():
    with pytest.raises(ValueError, match="nelder-mead"):
        make_controller("gradient-descent")


def test_cli_accel_evaluate_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["accel", "evaluate", "do-nothing", "nelder-mead@20", "--trials", "3", "--steps", "30",
                 "--out", str(out)]) == 0
    table = (out / "results.md").read_text()
    assert "nelder-mead" in table and "do-nothing" in table and "score" in table
    results = json.loads((out / "results.json").read_text())
    assert [r["controller"] for r in results] == ["do-nothing", "nelder-mead"]
    assert len(results[1]["trials"]) == 3 and results[1]["summary"]["steps_per_trial"] == 20  # CONTROLLER@N
    assert results[0]["summary"]["steps_per_trial"] == 30
    assert (out / "trial0.png").stat().st_size > 10_000
    # the oracle: each trial's best reachable MAE, below what any controller reached in it
    assert "median final MAE / oracle" in table
    for result in results:
        for trial in result["trials"]:
            assert 0 < trial["oracle_mae"] <= min(trial["best_mae"], trial["initial_mae"])
            assert trial["ratio_to_oracle"] == pytest.approx(trial["final_mae"] / trial["oracle_mae"])
    assert results[1]["summary"]["median_ratio_to_oracle"] > 1.0


def test_oracle_floor_is_reached_by_the_magnets_it_returns():
    from polyak.accel.oracle import trial_floor, trial_states
    from polyak.envs.transverse_tuning import MAGNET_LIMITS, TransverseTuning

    state = trial_states([7])[0]
    floor, magnets = trial_floor(state.incoming, state.misalignments, state.target, jax.random.PRNGKey(0),
                                 restarts=8, steps=100)
    assert np.all(np.abs(np.asarray(magnets)) <= MAGNET_LIMITS * (1 + 1e-6))
    beam = np.asarray(TransverseTuning.screen_beam(state, magnets))
    assert float(floor) == pytest.approx(np.mean(np.abs(beam - np.asarray(state.target))), rel=1e-4)
    start_mae = np.mean(np.abs(np.asarray(TransverseTuning.screen_beam(state, state.magnets)) - np.asarray(state.target)))
    assert float(floor) < 0.1 * start_mae  # from ~mm to tens of um


def test_a_trained_agent_is_a_controller(tmp_path):
    import polyak

    model = polyak.SAC("MlpPolicy", "polyak/TransverseTuning-v0", learning_starts=100, seed=0)
    model.learn(200)
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.polyak")
    (run / "config.json").write_text(json.dumps({"env": "polyak/TransverseTuning-v0", "env_kwargs": {}}))
    ev = evaluate(make_controller(str(run)), "transverse", trials=2, steps=10)
    assert ev.controller.startswith("sac") and all(t["steps"] == 10 for t in ev.trials)
    with pytest.raises(ValueError, match="observations"):  # trained on the 17-entry observation
        run_cfg = {"env": "polyak/TransverseTuning-v0", "env_kwargs": {"observation": "challenge"}}
        (run / "config.json").write_text(json.dumps(run_cfg))
        evaluate(make_controller(str(run)), "transverse", trials=1, steps=2)
