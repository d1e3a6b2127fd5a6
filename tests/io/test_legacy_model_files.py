"""Model files written by polyak 0.1.0 (commit 357b62c) still load and predict identically.

The fixtures in tests/fixtures/v0_1_357b62c/ were written by the OLD code (see the README there):
SAC, TD3, PPO (Pendulum and CartPole), DQN and tabular Q-learning, with the old code's outputs on
fixed probe inputs in expected.json. Only the public API is used here (`polyak.load`, `predict`,
`predict_q`, `predict_values`), so the test survives moving modules around.

Same JAX on the same kind of CPU: the outputs must match bit for bit. XLA's CPU code rounds float32
differently on different processors (an AMD EPYC gives results 1-16 ulp off those of the Intel Xeon
that wrote the files), so expected.json holds the old code's outputs as recorded on each kind of
machine met so far ("models" on the Intel Xeon, "recordings" for the others, made by the old code
with `make_fixtures.py --record-outputs`). This machine must reproduce one recording in full, bit for
bit. Only on a processor with no recording are outputs compared to 1e-6 (a warning says so and how
to record it).
"""

import hashlib
import importlib.util
import json
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import polyak

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_357b62c"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
MODELS = {m["file"]: m for m in EXPECTED["models"]}


def _fixture_script():
    """make_fixtures.py as a module (only its helpers are used: it runs nothing on import)."""
    spec = importlib.util.spec_from_file_location("make_fixtures_357b62c", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cpu_identity = _fixture_script().cpu_identity  # the CPU as make_fixtures.py records it


def as_array(rec: dict) -> np.ndarray:
    return np.asarray(rec["values"], dtype=rec["dtype"]).reshape(rec["shape"])


def assert_same(actual, rec: dict, what: str, exact: bool = True) -> None:
    actual = np.asarray(actual)
    expected = as_array(rec)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if exact:
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6, err_msg=what)


def outputs_of_357b62c(entry: dict) -> dict:
    """The outputs the old code recorded on the machine that wrote the files, keyed like a recording's."""
    out = {k: entry[k] for k in ("predict_deterministic", "predict_deterministic_single", "predict_values")
           if k in entry}
    if "predict_q" in entry:
        out["predict_q"] = [probe["q"] for probe in entry["predict_q"]]
        out["predict_q_single"] = entry["predict_q_single"]["q"]
    return out


RECORDINGS = [{"machine": EXPECTED["written_by"]["machine"], "isa": EXPECTED["written_by"].get("isa"),
               "outputs": {name: outputs_of_357b62c(entry) for name, entry in MODELS.items()}},
              *EXPECTED.get("recordings", [])]


def check_outputs(model, entry: dict, recording: dict, exact: bool = True) -> None:
    name = entry["file"]
    expected = recording["outputs"][name]
    obs = as_array(entry["observations"])
    assert_same(model.predict(obs, deterministic=True)[0], expected["predict_deterministic"], f"{name} predict", exact)
    single = entry["predict_deterministic_single"]
    assert_same(model.predict(obs[single["observation_index"]], deterministic=True)[0],
                expected["predict_deterministic_single"], f"{name} predict (one observation)", exact)
    for i, probe in enumerate(entry.get("predict_q", [])):
        assert_same(model.predict_q(obs, as_array(probe["actions"])), expected["predict_q"][i],
                    f"{name} predict_q #{i}", exact)
    if "predict_q_single" in entry:
        probe = entry["predict_q_single"]
        assert_same(model.predict_q(obs[probe["observation_index"]], as_array(probe["actions"])),
                    expected["predict_q_single"], f"{name} predict_q (one pair)", exact)
    if "predict_values" in entry:
        assert_same(model.predict_values(obs), expected["predict_values"], f"{name} predict_values", exact)


def reproduces(recording: dict) -> bool:
    for name, entry in MODELS.items():
        try:
            check_outputs(polyak.load(FIXTURES / name), entry, recording)
        except AssertionError:
            return False
    return True


@pytest.fixture(scope="module")
def recording():
    """(the recording this machine reproduces bit for bit in full, True), or (the first, False) if none.

    A machine whose CPU (model name and ISA flags) was recorded must reproduce that recording.
    """
    for rec in RECORDINGS:
        if reproduces(rec):
            return rec, True
    cpu = cpu_identity()
    name, isa = cpu["machine"], cpu["isa"]
    for rec in RECORDINGS:
        if rec["machine"] == name and rec["isa"] in (None, isa):
            return rec, True  # recorded here: compared bit for bit, and the test shows where it differs
    recorded = ", ".join(f"{r['machine']} [{r['isa']}]" for r in RECORDINGS)
    warnings.warn(f"no recording of the old code's outputs reproduces bit for bit on this CPU ({name} [{isa}]; "
                  f"{recorded} recorded): comparing to 1e-6. Record this machine with "
                  f"tests/fixtures/v0_1_357b62c/make_fixtures.py --record-outputs (see the README there).")
    return RECORDINGS[0], False


def test_fixtures_are_the_ones_written_by_357b62c():
    assert EXPECTED["written_by"]["commit"].startswith("357b62c")
    assert set(MODELS) == {"sac_pendulum.polyak", "td3_pendulum.polyak", "ppo_pendulum.polyak",
                           "ppo_cartpole.polyak", "dqn_cartpole.polyak", "qlearning_frozenlake.polyak"}
    for name, entry in MODELS.items():
        data = (FIXTURES / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["file_sha256"], f"{name} was modified or regenerated"


def test_every_recording_is_of_these_files_and_probes_by_the_old_code():
    for rec in RECORDINGS[1:]:
        assert rec["written_by"]["commit"].startswith("357b62c")
        assert rec["written_by"]["jax"] == EXPECTED["written_by"]["jax"]
        assert set(rec["outputs"]) == set(MODELS)
        for name, out in rec["outputs"].items():
            ref = RECORDINGS[0]["outputs"][name]
            assert set(out) == set(ref), name
            # two machines, one set of files: the recordings differ by float rounding, not in substance
            np.testing.assert_allclose(as_array(out["predict_deterministic"]),
                                       as_array(ref["predict_deterministic"]), rtol=0, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_legacy_file_loads_and_predicts_identically(name, recording):
    entry = MODELS[name]
    model = polyak.load(FIXTURES / name)
    assert type(model).__name__ == entry["algorithm"]
    assert model.num_timesteps == entry["num_timesteps"]
    if entry.get("action_noise") is not None:
        assert type(model.action_noise).__name__ == entry["action_noise"]
    check_outputs(model, entry, *recording)


def test_legacy_file_loads_with_an_env_and_resumes_training(recording):
    entry = MODELS["sac_pendulum.polyak"]
    model = polyak.load(FIXTURES / "sac_pendulum.polyak", env=gym.make(entry["env_id"]))
    assert type(model).__name__ == "SAC"
    check_outputs(model, entry, *recording)  # attaching the env changes nothing in the policy
    model.learn(20)  # the saved episode is resumed and training goes on from step 300
    assert model.num_timesteps == entry["num_timesteps"] + 20
    action, _ = model.predict(as_array(entry["observations"])[0], deterministic=True)
    assert action.shape == (1,) and np.all(np.abs(action) <= 2.0)
