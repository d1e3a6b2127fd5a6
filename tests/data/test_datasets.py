"""Offline datasets (polyak/data/datasets.py): Minari round trip, validation errors that name the problem,
imports from .npz / CSV / HDF5, collection, the replay buffer they fill."""

from __future__ import annotations

import h5py
import gymnasium as gym
import numpy as np
import pytest

from polyak.data import datasets as D

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


@pytest.fixture(autouse=True)
def datasets_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def episode(t: int, terminated: bool = False, seed: int = 0) -> D.Episode:
    rng = np.random.default_rng(seed)
    flags = np.zeros(t, bool)
    term, trunc = flags.copy(), flags.copy()
    (term if terminated else trunc)[-1] = True
    return D.Episode(rng.normal(size=(t + 1, 3)).astype(np.float32), rng.uniform(-2, 2, (t, 1)).astype(np.float32),
                     rng.normal(size=t), term, trunc)


def test_round_trip_keeps_flags_apart_and_final_observations(datasets_root):
    episodes = [episode(5, terminated=True, seed=1), episode(3, seed=2)]
    path = D.write_dataset("test/Pendulum-v1/tiny-v0", episodes, OBS, ACT, env_id="Pendulum-v1")
    assert path == datasets_root / "test/Pendulum-v1/tiny-v0" and (path / "data" / "main_data.hdf5").is_file()
    data = D.load_dataset("test/Pendulum-v1/tiny-v0")
    assert (len(data), data.n_episodes, data.env_id) == (8, 2, "Pendulum-v1")
    np.testing.assert_array_equal(data.terminated, [0, 0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(data.truncated, [0, 0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(data.episode, [0] * 5 + [1] * 3)
    np.testing.assert_array_equal(data.obs[:5], episodes[0].observations[:-1])
    np.testing.assert_array_equal(data.next_obs[4], episodes[0].observations[-1])  # terminal observation
    np.testing.assert_array_equal(data.next_obs[7], episodes[1].observations[-1])  # truncation: the true final one
    np.testing.assert_allclose(data.episode_returns(), [e.rewards.sum() for e in episodes], rtol=1e-6)
    info = D.dataset_info("test/Pendulum-v1/tiny-v0")
    assert (info["episodes"], info["steps"], info["terminations"], info["truncations"]) == (2, 8, 1, 1)
    assert info["size_bytes"] > 0 and info["return_max"] >= info["return_mean"] >= info["return_min"]
    with pytest.raises(D.DatasetError, match="already exists"):
        D.write_dataset("test/Pendulum-v1/tiny-v0", episodes, OBS, ACT, env_id="Pendulum-v1")


@pytest.mark.parametrize("change, message", [
    (dict(observations=np.zeros((5, 3))), r"episode 0: observations has shape \(5, 3\), expected \(6, 3\)"),
    (dict(actions=np.zeros((5, 2))), r"actions has shape \(5, 2\), expected \(5, 1\)"),
    (dict(actions=np.full((5, 1), 2.5)), r"action at step 0 \(\[2.5\]\) is outside the action space"),
    (dict(rewards=np.array([0, 0, np.nan, 0, 0.0])), "rewards at step 2 is not finite"),
    (dict(terminations=np.array([0, 1, 0, 0, 0])), "terminations is True at step 1 of 5"),
    (dict(truncations=np.zeros(5, bool)), r"last step \(step 4\) is neither terminated nor truncated"),
    (dict(truncations=np.array([0, 0, 0, 0, 2])), "truncations must be booleans"),
    (dict(observations=np.array([["a"] * 3] * 6)), "observations must be numbers"),
])
def test_validation_names_the_problem(change, message):
    bad = D.Episode(**{**episode(5).__dict__, **change})
    with pytest.raises(D.DatasetError, match=message):
        D.write_dataset("test/Pendulum-v1/bad-v0", [bad], OBS, ACT)


def test_loading_validates_a_damaged_file():
    D.write_dataset("test/Pendulum-v1/damaged-v0", [episode(4), episode(4, seed=3)], OBS, ACT)
    path = D.dataset_path("test/Pendulum-v1/damaged-v0") / "data" / "main_data.hdf5"
    with h5py.File(path, "r+") as f:
        del f["episode_1/terminations"]
        f["episode_1/terminations"] = np.array([False, True, False, False])
    with pytest.raises(D.DatasetError, match="episode 1: terminations is True at step 1 of 4"):
        D.load_dataset("test/Pendulum-v1/damaged-v0")
    with h5py.File(path, "r+") as f:
        del f["episode_1/terminations"], f["episode_0/actions"]
        f["episode_1/terminations"] = np.zeros(4, bool)
        f["episode_0/actions"] = np.zeros((3, 1), np.float32)
    with pytest.raises(D.DatasetError, match=r"episode 0: actions has shape \(3, 1\), expected \(4, 1\)"):
        D.load_dataset("test/Pendulum-v1/damaged-v0")


def test_unknown_dataset_and_bad_ids_are_named():
    with pytest.raises(D.DatasetError, match="nope/Pendulum-v1/x-v0 not found .*MINARI_DATASETS_PATH"):
        D.load_dataset("nope/Pendulum-v1/x-v0")
    with pytest.raises(D.DatasetError, match="must look like NAMESPACE/ENV/NAME-v0"):
        D.write_dataset("no-version", [episode(2)], OBS, ACT)


def test_collect_keeps_terminations_truncations_and_noise_inside_bounds():
    env = gym.make("Pendulum-v1", max_episode_steps=7)
    episodes = D.collect_episodes(env, lambda obs, info: np.array([1.9], np.float32), 2, seed=4, noise=1.0)
    assert [len(e) for e in episodes] == [7, 7]
    assert all(e.truncations[-1] and not e.terminations.any() for e in episodes)
    assert all(np.all(np.abs(e.actions) <= 2.0) for e in episodes) and np.ptp(episodes[0].actions) > 0
    again = D.collect_episodes(env, lambda obs, info: np.array([1.9], np.float32), 2, seed=4, noise=1.0)
    np.testing.assert_array_equal(episodes[1].observations, again[1].observations)  # seeded
    recorder = D.EpisodeRecorder(gym.make("Pendulum-v1", max_episode_steps=4))
    recorder.reset(seed=0)
    for _ in range(6):
        *_, terminated, truncated, _ = recorder.step(np.array([0.5], np.float32))
        if terminated or truncated:
            recorder.reset()
    assert len(recorder.episodes) == 1 and len(recorder.episodes[0]) == 4  # the running episode is not added yet


def logged_columns() -> dict[str, np.ndarray]:
    """Two episodes of 3 steps: the first terminated, the second cut by a time limit."""
    obs = np.arange(24, dtype=np.float32).reshape(8, 3)  # rows 0-3: episode 0 (s_0..s_3), rows 4-7: episode 1
    rows = [0, 1, 2, 4, 5, 6]
    return {"obs": obs[rows], "next_obs": obs[[r + 1 for r in rows]], "action": np.linspace(-1, 1, 6)[:, None],
            "reward": np.arange(6.0), "terminated": np.array([0, 0, 1, 0, 0, 0]),
            "truncated": np.array([0, 0, 0, 0, 0, 1])}


@pytest.mark.parametrize("kind", ["npz", "csv", "hdf5"])
def test_import_logged_columns(tmp_path, kind):
    cols = logged_columns()
    path = tmp_path / f"log.{kind}"
    if kind == "npz":
        np.savez(path, **cols)
    elif kind == "hdf5":
        with h5py.File(path, "w") as f:
            for k, v in cols.items():
                f[k] = v
    else:
        header = [f"obs_{i}" for i in range(3)] + [f"next_obs_{i}" for i in range(3)] + [
            "action", "reward", "terminated", "truncated"]
        table = np.column_stack([cols["obs"], cols["next_obs"], cols["action"], cols["reward"], cols["terminated"],
                                 cols["truncated"]])
        np.savetxt(path, table, delimiter=",", header=",".join(header), comments="")
    _, n = D.import_columns(path, "test/Pendulum-v1/imported-v0", env_id="Pendulum-v1")
    data = D.load_dataset("test/Pendulum-v1/imported-v0")
    assert n == 2 and data.n_episodes == 2
    np.testing.assert_array_equal(data.terminated, [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(data.truncated, [0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(data.next_obs, cols["next_obs"])


def test_import_with_episode_ids_and_without_next_obs():
    cols = logged_columns()
    del cols["next_obs"], cols["truncated"]
    cols["episode"] = np.array([7, 7, 7, 9, 9, 9])
    episodes = D.episodes_from_columns(cols)
    # episode 7 terminated: its final observation is a stand-in (never bootstrapped from); episode 9 was cut,
    # and without next_obs its last step has no final observation, so it is dropped
    assert [len(e) for e in episodes] == [3, 2]
    assert episodes[0].terminations[-1] and episodes[1].truncations[-1]
    np.testing.assert_array_equal(episodes[1].observations[-1], cols["obs"][5])
    bad = logged_columns()
    bad["next_obs"][0] += 1
    with pytest.raises(D.DatasetError, match="next_obs of row 0 differs from obs of row 1"):
        D.episodes_from_columns(bad)
    with pytest.raises(D.DatasetError, match="missing column"):
        D.episodes_from_columns({"obs": cols["obs"], "action": cols["action"]})


def test_replay_buffer_is_full_and_exact():
    data = D.flatten([episode(5, terminated=True), episode(3)], OBS, ACT)
    buf = D.replay_buffer(D.Transition(data.obs, data.action, data.reward, data.next_obs, data.terminated))
    assert int(buf.size) == buf.capacity == 8
    np.testing.assert_array_equal(np.asarray(buf.data.terminated), data.terminated.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(buf.data.next_obs), data.next_obs)
