"""Model files written by polyak 0.1.0 (commit 357b62c) still load and predict identically.

The fixtures in tests/fixtures/v0_1_357b62c/ were written by the OLD code (see the README there):
SAC, TD3, PPO (Pendulum and CartPole), DQN and tabular Q-learning, with the old code's outputs on
fixed probe inputs in expected.json. Only the public API is used here (`polyak.load`, `predict`,
`predict_q`, `predict_values`), so the test survives moving modules around. Same JAX on the same
machine: the outputs must match bit for bit.
"""

import hashlib
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import polyak

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_357b62c"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
MODELS = {m["file"]: m for m in EXPECTED["models"]}


def as_array(rec: dict) -> np.ndarray:
    return np.asarray(rec["values"], dtype=rec["dtype"]).reshape(rec["shape"])


def assert_same(actual, rec: dict, what: str) -> None:
    actual = np.asarray(actual)
    expected = as_array(rec)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    np.testing.assert_array_equal(actual, expected, err_msg=what)


def check_outputs(model, entry: dict) -> None:
    name = entry["file"]
    obs = as_array(entry["observations"])
    assert_same(model.predict(obs, deterministic=True)[0], entry["predict_deterministic"], f"{name} predict")
    single = entry["predict_deterministic_single"]
    assert_same(model.predict(obs[single["observation_index"]], deterministic=True)[0], single,
                f"{name} predict (one observation)")
    for i, probe in enumerate(entry.get("predict_q", [])):
        assert_same(model.predict_q(obs, as_array(probe["actions"])), probe["q"], f"{name} predict_q #{i}")
    if "predict_q_single" in entry:
        probe = entry["predict_q_single"]
        assert_same(model.predict_q(obs[probe["observation_index"]], as_array(probe["actions"])), probe["q"],
                    f"{name} predict_q (one pair)")
    if "predict_values" in entry:
        assert_same(model.predict_values(obs), entry["predict_values"], f"{name} predict_values")


def test_fixtures_are_the_ones_written_by_357b62c():
    assert EXPECTED["written_by"]["commit"].startswith("357b62c")
    assert set(MODELS) == {"sac_pendulum.polyak", "td3_pendulum.polyak", "ppo_pendulum.polyak",
                           "ppo_cartpole.polyak", "dqn_cartpole.polyak", "qlearning_frozenlake.polyak"}
    for name, entry in MODELS.items():
        data = (FIXTURES / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["file_sha256"], f"{name} was modified or regenerated"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_legacy_file_loads_and_predicts_identically(name):
    entry = MODELS[name]
    model = polyak.load(FIXTURES / name)
    assert type(model).__name__ == entry["algorithm"]
    assert model.num_timesteps == entry["num_timesteps"]
    if entry.get("action_noise") is not None:
        assert type(model.action_noise).__name__ == entry["action_noise"]
    check_outputs(model, entry)


def test_legacy_file_loads_with_an_env_and_resumes_training():
    entry = MODELS["sac_pendulum.polyak"]
    model = polyak.load(FIXTURES / "sac_pendulum.polyak", env=gym.make(entry["env_id"]))
    assert type(model).__name__ == "SAC"
    check_outputs(model, entry)  # attaching the env changes nothing in the policy
    model.learn(20)  # the saved episode is resumed and training goes on from step 300
    assert model.num_timesteps == entry["num_timesteps"] + 20
    action, _ = model.predict(as_array(entry["observations"])[0], deterministic=True)
    assert action.shape == (1,) and np.all(np.abs(action) <= 2.0)
