"""The d3rlpy side-by-side benchmark's pure helpers: the same transitions for d3rlpy, the settings table, the
D4RL score, the run order and the verdict (d3rlpy itself is not needed)."""

import dataclasses

import numpy as np
import pytest

import polyak
from benchmarks.d3rlpy_side_by_side import (ALGOS, d3rlpy_arrays, d3rlpy_settings, d4rl_score, interleaved_tasks,
                                            polyak_hyperparameters, verdict)


def test_d3rlpy_arrays_append_the_final_observation_of_truncated_episodes():
    # episode 0: s0 -a0-> s1 -a1-> s2 (truncated); episode 1: s3 -a2-> s4 (terminated)
    obs = np.array([[0.0], [1.0], [3.0]], np.float32)
    next_obs = np.array([[1.0], [2.0], [4.0]], np.float32)
    action = np.array([[0.1], [0.2], [0.3]], np.float32)
    reward = np.array([1.0, 2.0, 3.0], np.float32)
    terminated, truncated = np.array([False, False, True]), np.array([False, True, False])
    out = d3rlpy_arrays(obs, action, reward, next_obs, terminated, truncated, np.array([0, 0, 1]))
    np.testing.assert_array_equal(out["observations"][:, 0], [0.0, 1.0, 2.0, 3.0])  # s2 appended after episode 0
    np.testing.assert_array_equal(out["actions"][:, 0], np.float32([0.1, 0.2, 0.0, 0.3]))
    np.testing.assert_array_equal(out["rewards"], [1.0, 2.0, 0.0, 3.0])
    np.testing.assert_array_equal(out["terminals"], [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(out["timeouts"], [0.0, 0.0, 1.0, 0.0])  # the flag moves to the appended row


def test_d3rlpy_arrays_reject_rows_that_are_not_consecutive_transitions():
    obs, act, rew = np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32), np.zeros(2, np.float32)
    flags = np.array([False, True])
    with pytest.raises(ValueError, match="next_obs"):
        d3rlpy_arrays(obs, act, rew, np.ones((2, 1), np.float32), flags, ~np.array([True, True]), np.array([0, 0]))
    with pytest.raises(ValueError, match="end with"):
        d3rlpy_arrays(obs, act, rew, obs, np.array([False, False]), np.array([False, False]), np.array([0, 0]))


@pytest.mark.parametrize("algo", ALGOS)
def test_every_polyak_field_has_a_row_in_the_settings_table(algo):
    fields = {f.name for f in dataclasses.fields(polyak.ALGORITHMS[algo].config_cls)}
    assert set(polyak_hyperparameters(algo)) == fields
    settings = d3rlpy_settings(algo, polyak_hyperparameters(algo))  # raises on a field without a row
    assert settings["batch_size"] == 256 and settings["observation_scaler"] == ("standard",)


def test_settings_carry_polyak_values_to_d3rlpy_names():
    td3 = d3rlpy_settings("td3_bc", polyak_hyperparameters("td3_bc"))
    assert (td3["alpha"], td3["update_actor_interval"], td3["target_smoothing_sigma"]) == (2.5, 2, 0.2)
    cql_hp = polyak_hyperparameters("cql")
    cql = d3rlpy_settings("cql", cql_hp)
    assert cql["conservative_weight"] == 10.0 and cql["alpha_learning_rate"] == 0.0 and cql["initial_alpha"] == 1.0
    assert cql["temp_learning_rate"] == cql_hp["actor_learning_rate"]
    assert cql["actor_encoder_factory"] == ("encoder", (256, 256, 256))
    lagrange = d3rlpy_settings("cql", {**cql_hp, "cql_lagrange": True, "alpha_prime_init": 2.0})
    assert lagrange["alpha_learning_rate"] == cql_hp["learning_rate"] and lagrange["initial_alpha"] == 2.0
    with pytest.raises(ValueError, match="temperature 1"):
        d3rlpy_settings("cql", {**cql_hp, "cql_temperature": 2.0})
    iql = d3rlpy_settings("iql", polyak_hyperparameters("iql"))
    assert iql["weight_temp"] == 3.0 and iql["actor_optim_factory"] == ("adam", 0)
    assert iql["value_encoder_factory"] == iql["critic_encoder_factory"]
    with pytest.raises(ValueError, match="no row"):
        d3rlpy_settings("awac", {**polyak_hyperparameters("awac"), "new_field": 1})


def test_d4rl_score_uses_the_reference_returns():
    assert d4rl_score("HalfCheetah-v5", -280.178953) == pytest.approx(0.0)
    assert d4rl_score("HalfCheetah-v5", 12135.0) == pytest.approx(100.0)
    assert d4rl_score("polyak/TransverseTuning-v0", 1.0) is None


def test_runs_are_interleaved_with_alternating_library_order():
    assert interleaved_tasks(["td3_bc", "cql"], ["polyak", "d3rlpy"], 2) == [
        (0, "td3_bc", "polyak"), (0, "td3_bc", "d3rlpy"), (0, "cql", "d3rlpy"), (0, "cql", "polyak"),
        (1, "td3_bc", "polyak"), (1, "td3_bc", "d3rlpy"), (1, "cql", "d3rlpy"), (1, "cql", "polyak")]


def test_verdict_needs_the_speed_ratio_and_a_score_not_clearly_worse():
    def run(rate, score):
        return {"steps_per_s": rate, "steady_steps_per_s": rate, "steady_steps_per_cpu_s": rate, "score": score}

    fast_equal = verdict([run(300, 9.0), run(300, 11.0)], [run(100, 10.0), run(100, 12.0)])
    assert fast_equal["steady_steps_per_cpu_s"] == pytest.approx(3.0)
    assert fast_equal["score"] == "equal" and fast_equal["target_met"]
    assert not verdict([run(200, 20.0)], [run(100, 10.0)])["target_met"]  # 2x only
    worse = verdict([run(400, 0.0), run(400, 0.0)], [run(100, 10.0), run(100, 10.0)])
    assert worse["score"] == "worse" and not worse["target_met"]
