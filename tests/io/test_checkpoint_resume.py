"""Checkpoints: atomic, code-free, validated, and exact on resume."""

import json
import os

import jax
import numpy as np
import pytest

import polyak
from polyak.algos.offpolicy.sac import SAC
from polyak.algos.offpolicy.td3 import TD3
from polyak.core.noise import OrnsteinUhlenbeckActionNoise
from polyak.io.checkpoint import MAGIC, CheckpointError, read_checkpoint, write_checkpoint

SMALL = dict(learning_starts=60, buffer_size=2000, batch_size=32, policy_kwargs=dict(net_arch=[32, 32]),
             learning_rate=1e-3)


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def assert_trees_equal(a, b):
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


def test_roundtrip_arrays_and_metadata(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array(7, np.int32),
              "k": np.array([1, 2], np.uint32), "empty": np.zeros((0, 2), np.float32)}
    write_checkpoint(tmp_path / "x.polyak", arrays, {"hello": [1, "two"]})
    got, meta = read_checkpoint(tmp_path / "x.polyak")
    assert meta == {"hello": [1, "two"]}
    for k in arrays:
        np.testing.assert_array_equal(got[k], arrays[k])
        assert got[k].dtype == arrays[k].dtype
    assert [p.name for p in tmp_path.iterdir()] == ["x.polyak"]  # no temporary file left behind


def test_truncated_and_corrupted_files_are_rejected(tmp_path):
    path = tmp_path / "m.polyak"
    write_checkpoint(path, {"w": np.ones(100, np.float32)}, {})
    raw = path.read_bytes()
    (tmp_path / "trunc.polyak").write_bytes(raw[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(tmp_path / "trunc.polyak")
    (tmp_path / "trunc_header.polyak").write_bytes(raw[:30])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(tmp_path / "trunc_header.polyak")
    flipped = bytearray(raw)
    flipped[-5] ^= 0xFF
    (tmp_path / "flip.polyak").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="SHA-256"):
        read_checkpoint(tmp_path / "flip.polyak")
    (tmp_path / "other.bin").write_bytes(b"\x80\x04\x95 pickle-looking bytes")
    with pytest.raises(CheckpointError, match="not a polyak checkpoint"):
        read_checkpoint(tmp_path / "other.bin")
    with pytest.raises(CheckpointError, match="no such"):
        read_checkpoint(tmp_path / "missing.polyak")


def test_header_is_plain_json(tmp_path):
    model = SAC("MlpPolicy", "Pendulum-v1", seed=0, **SMALL)
    path = model.save(tmp_path / "m.polyak")
    raw = path.read_bytes()
    assert raw[:8] == MAGIC
    n = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[16:16 + n])
    meta = header["metadata"]
    assert meta["algorithm"] == "sac" and meta["library_version"] == polyak.__version__
    assert meta["config"]["learning_rate"] == 1e-3 and meta["includes_buffer"] is False
    names = set(header["arrays"])
    assert any("obs_rms" in k for k in names) and any("actor_opt" in k for k in names)
    assert any(k.startswith("learner.key") for k in names)


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.polyak"
    write_checkpoint(path, {"w": np.ones(3, np.float32)}, {"v": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        write_checkpoint(path, {"w": np.zeros(3, np.float32)}, {"v": 2})
    monkeypatch.undo()
    assert read_checkpoint(path)[1] == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.polyak"]


def test_load_restores_normaliser_and_predictions(tmp_path):
    model = SAC("MlpPolicy", "Pendulum-v1", seed=1, **SMALL)
    model.learn(150)
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    path = model.save(tmp_path / "m.polyak")
    loaded = SAC.load(path)
    np.testing.assert_array_equal(loaded.predict(obs)[0], model.predict(obs)[0])
    assert_trees_equal(loaded.learner.obs_rms, model.learner.obs_rms)
    assert float(loaded.learner.obs_rms.count) > 150  # the normaliser was trained and saved
    assert loaded.num_timesteps == 150
    assert polyak.load(path).name == "sac"
    with pytest.raises(CheckpointError, match="SAC model, not TD3"):
        TD3.load(path)


@pytest.mark.parametrize("algo,extra", [
    (SAC, {}),
    (TD3, {"action_noise": OrnsteinUhlenbeckActionNoise(0.0, 0.3)}),
    (SAC, {"act_before_update": True}),  # the pending action was chosen before the last update
])
def test_resume_is_bit_exact(tmp_path, algo, extra):
    """Save at step k (mid-episode), load, continue: same parameters as never stopping."""
    k, total = 170, 320  # Pendulum episodes are 200 steps: k is inside the first episode
    straight = algo("MlpPolicy", "Pendulum-v1", seed=3, **SMALL, **extra)
    straight.learn(total)

    first = algo("MlpPolicy", "Pendulum-v1", seed=3, **SMALL, **extra)
    first.learn(k)
    path = first.save(tmp_path / "k.polyak", include_buffer=True)
    del first
    # loading and saving again without training keeps the resume point
    path = algo.load(path).save(tmp_path / "k2.polyak", include_buffer=True)
    resumed = algo.load(path, env="Pendulum-v1")
    assert resumed.num_timesteps == k
    resumed.learn(total - k)

    assert resumed.num_timesteps == straight.num_timesteps == total
    assert_trees_equal(resumed.learner.agent, straight.learner.agent)
    assert_trees_equal(resumed.learner.obs_rms, straight.learner.obs_rms)
    assert_trees_equal(resumed.learner.buffer, straight.learner.buffer)


def test_resume_without_buffer_still_trains(tmp_path):
    model = SAC("MlpPolicy", "Pendulum-v1", seed=0, **SMALL)
    model.learn(100)
    resumed = SAC.load(model.save(tmp_path / "m.polyak"), env="Pendulum-v1")
    resumed.learn(100)
    assert resumed.num_timesteps == 200
