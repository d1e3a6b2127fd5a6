"""The Cheetah-tracked TransverseTuning env in the challenge's conventions, and the twin's policies acting in it."""

import json

import gymnasium as gym
import jax
import numpy as np
import pytest

pytest.importorskip("cheetah")

from polyak.accel.cheetah_env import (  # noqa: E402
    CHALLENGE_MAX_DELTA,
    CheetahTransverseTuning,
    challenge_wrappers,
)
from polyak.accel.controllers import DoNothing  # noqa: E402
from polyak.accel.evaluation import evaluate  # noqa: E402
from polyak.accel.transfer import ChallengeTwinMap, TwinPolicyAdapter, TwinView  # noqa: E402
from polyak.cli import main  # noqa: E402
from polyak.envs.protocol import GymnasiumAdapter  # noqa: E402
from polyak.envs.transverse_tuning import (  # noqa: E402
    INCOMING_HIGH,
    INCOMING_LOW,
    MAGNET_LIMITS,
    MAX_DELTA,
    SCREEN_SCALE,
    TransverseTuning,
    TransverseTuningParams,
)
from tests.transverse_tuning_setup import screen_beam  # noqa: E402

CENTRED = (0.0, 0.0, 0.0, 0.0)


def twin_adapter(observation="with_log_errors", **params):
    return GymnasiumAdapter(TransverseTuning(observation=observation), TransverseTuningParams(**params))


def test_cheetah_tracks_the_twin_beam_for_random_settings():
    """Cheetah (float64) and the twin's optics (float64) agree on the screen beam to float64 rounding."""
    env = CheetahTransverseTuning()
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        for _ in range(4):
            incoming = rng.uniform(INCOMING_LOW, INCOMING_HIGH)
            misalignments = rng.uniform(-5e-4, 5e-4, (4, 2))
            env.set_trial(incoming, misalignments)
            for magnets in rng.uniform(-1, 1, (3, 5)) * MAGNET_LIMITS:
                ours = screen_beam(magnets, misalignments, incoming)
                np.testing.assert_allclose(env.screen_beam(magnets), np.asarray(ours), rtol=1e-9, atol=1e-15)


def test_a_seed_is_the_same_trial_and_the_same_noise_in_both_envs():
    """reset(seed) draws the twin's incoming beam, misalignments, target and magnets; readings carry the twin's noise."""
    noise = 1e-4
    twin = twin_adapter(observation="challenge", reading_noise=noise)
    cheetah = CheetahTransverseTuning(reading_noise=noise)
    rng = np.random.default_rng(1)
    for seed in (0, 7):
        twin_obs, _ = twin.reset(seed=seed)
        obs, info = cheetah.reset(seed=seed)
        state = twin._state
        incoming, misalignments = cheetah._trial
        np.testing.assert_array_equal(incoming, np.asarray(state.incoming, np.float64))
        np.testing.assert_array_equal(misalignments, np.asarray(state.misalignments, np.float64))
        np.testing.assert_array_equal(info["target"], np.asarray(state.target, np.float64))
        np.testing.assert_array_equal(info["magnets"], np.asarray(state.magnets, np.float64))
        # the twin's observation is reading / screen half-size: the same reading, noise included (float32)
        np.testing.assert_allclose(obs["beam"] / SCREEN_SCALE, twin_obs[:4], rtol=1e-5, atol=1e-7)
        for _ in range(3):
            action = rng.uniform(-1, 1, 5) * MAX_DELTA * 0.99
            twin_obs, twin_reward, *_, twin_info = twin.step(action.astype(np.float32))
            obs, reward, terminated, truncated, info = cheetah.step(action)
            np.testing.assert_allclose(info["beam"], twin_info["beam"], rtol=2e-5)
            np.testing.assert_allclose(obs["beam"] / SCREEN_SCALE, twin_obs[:4], rtol=1e-5, atol=1e-7)
            assert reward == pytest.approx(float(twin_reward), rel=1e-5)
            assert not terminated and not truncated


def test_spaces_and_the_challenge_wrapping():
    env = CheetahTransverseTuning(target=CENTRED)
    spaces = env.observation_space.spaces
    assert list(spaces) == ["beam", "magnets", "target"]
    assert np.all(np.isinf(spaces["beam"].high)) and np.all(np.isinf(spaces["beam"].low))
    np.testing.assert_allclose(spaces["magnets"].high, [5.3e-3, 5.3e-3, 30, 30, 30], rtol=1e-6)
    np.testing.assert_allclose(spaces["target"].low, [-2e-3, 0, -2e-3, 0], rtol=1e-6)
    np.testing.assert_allclose(spaces["target"].high, [2e-3] * 4, rtol=1e-6)
    np.testing.assert_allclose(env.action_space.high, [6.1782e-4, 6.1782e-4, 2, 2, 2], rtol=1e-6)

    wrapped = gym.make("polyak/CheetahTransverseTuning-v0", time_limit=3, target=CENTRED, reading_noise=5e-5)
    assert str(wrapped).count("TimeLimit") == 1  # the challenge's, innermost
    assert wrapped.observation_space.shape == (13,) and wrapped.action_space.shape == (5,)
    np.testing.assert_array_equal(wrapped.action_space.high, np.ones(5))
    flat, _ = wrapped.reset(seed=3)
    raw = wrapped.unwrapped
    reading = flat[:4] * np.array([2e-3, 1e-3, 2e-3, 1e-3]) + np.array([0, 1e-3, 0, 1e-3])
    assert np.abs(reading - raw.state_info()["beam"]).max() < 5e-4  # the reading: beam + 50 um noise
    magnets = raw.state_info()["magnets"]
    # by hand: the beam with the target's bounds, magnets / limits, the target (0, 0, 0, 0) -> (0, -1, 0, -1)
    np.testing.assert_allclose(flat[4:9], magnets / MAGNET_LIMITS, rtol=1e-6)
    np.testing.assert_allclose(flat[9:], [0, -1, 0, -1], atol=1e-7)
    # a full step of -1 / +1 moves every magnet by the challenge's bound; magnets stay within their limits
    flat, _, _, truncated, info = wrapped.step(np.array([1, -1, 1, -1, 1], np.float32))
    np.testing.assert_allclose(info["magnets"] - magnets, [1, -1, 1, -1, 1] * CHALLENGE_MAX_DELTA, rtol=1e-6)
    assert not truncated
    for _ in range(2):
        *_, truncated, info = wrapped.step(np.ones(5, np.float32))
    assert truncated  # TimeLimit after max_episode_steps
    assert info["magnets"][2] == pytest.approx(16.0)  # 10 + 3 * 2

    with pytest.raises(ValueError, match="unknown keyword.*reading_nois"):
        CheetahTransverseTuning(reading_nois=1e-5)


@pytest.mark.parametrize("observation", ["with_log_errors", "challenge", "with_history"])
def test_the_adapter_maps_the_challenge_observation_to_the_twins(observation):
    """Challenge observation -> the twin's (log errors computed from the readings) and twin action -> [-1, 1]."""
    twin = twin_adapter(observation=observation, reading_noise=2e-5)
    env = TwinView(challenge_wrappers(CheetahTransverseTuning(reading_noise=2e-5)), observation=observation)
    assert env.observation_space == twin.observation_space and env.action_space == twin.action_space
    rng = np.random.default_rng(2)
    for seed in (0, 5):
        np.testing.assert_allclose(env.reset(seed=seed)[0], twin.reset(seed=seed)[0], atol=3e-6)
        for _ in range(3):
            action = (rng.uniform(-1, 1, 5) * MAX_DELTA).astype(np.float32)
            np.testing.assert_allclose(env.step(action)[0], twin.step(action)[0], atol=3e-6)
    # actions: the twin's physical step, expressed in the challenge's [-1, 1], is the same physical step
    mapping = ChallengeTwinMap(observation)
    deltas = rng.uniform(-1, 1, (8, 5)) * CHALLENGE_MAX_DELTA
    np.testing.assert_allclose(mapping.challenge_action(deltas) * CHALLENGE_MAX_DELTA, deltas, rtol=1e-6)
    np.testing.assert_array_equal(mapping.challenge_action(MAX_DELTA), np.ones(5))  # 6.18e-4 > 6.1782e-4: clipped


def test_a_twin_model_acts_in_the_cheetah_env_through_the_adapter():
    import polyak

    model = polyak.SAC("MlpPolicy", "polyak/TransverseTuning-v0", seed=0)  # untrained: any deterministic policy
    env = challenge_wrappers(CheetahTransverseTuning(target=CENTRED), max_episode_steps=6)
    adapter = TwinPolicyAdapter(model, env)
    twin = twin_adapter(target=CENTRED)
    obs, _ = env.reset(seed=4)
    twin_obs, _ = twin.reset(seed=4)
    for _ in range(6):
        action, _ = adapter.predict(obs, deterministic=True)
        twin_action, _ = model.predict(twin_obs, deterministic=True)
        np.testing.assert_allclose(action, np.clip(twin_action / CHALLENGE_MAX_DELTA, -1, 1), atol=1e-4)
        obs, _, _, _, info = env.step(action)
        twin_obs, _, _, _, twin_info = twin.step(twin_action)
    np.testing.assert_allclose(info["beam"], twin_info["beam"], rtol=1e-3)
    batch = np.stack([obs, obs])  # a batch of observations gives a batch of actions
    np.testing.assert_allclose(adapter.predict(batch)[0], np.stack([adapter.predict(obs)[0]] * 2), atol=1e-6)
    direct = challenge_wrappers(CheetahTransverseTuning(action_mode="direct"))
    with pytest.raises(ValueError, match="delta mode and the env acts in direct mode"):
        TwinPolicyAdapter(model, direct)


def test_a_history_model_acts_through_the_adapter_step_by_step_and_restarts_with_episode_start():
    import polyak

    model = polyak.SAC("MlpPolicy", twin_adapter(observation="with_history"), seed=0)  # untrained
    env = challenge_wrappers(CheetahTransverseTuning(target=CENTRED), max_episode_steps=10)
    adapter = TwinPolicyAdapter(model, env)
    assert adapter.map.observation == "with_history"
    twin = twin_adapter(observation="with_history", target=CENTRED)
    for seed in (4, 6):  # two episodes: the second starts with episode_start=True, the history is not carried over
        obs, _ = env.reset(seed=seed)
        twin_obs, _ = twin.reset(seed=seed)
        for step in range(4):
            action, _ = adapter.predict(obs, episode_start=np.array([step == 0]), deterministic=True)
            twin_action, _ = model.predict(twin_obs, deterministic=True)
            np.testing.assert_allclose(action, np.clip(twin_action / CHALLENGE_MAX_DELTA, -1, 1), atol=1e-4)
            obs, _, _, _, info = env.step(action)
            twin_obs, _, _, _, twin_info = twin.step(twin_action)
        np.testing.assert_allclose(info["beam"], twin_info["beam"], rtol=1e-3)
    # without episode_start the adapter takes the call before as the previous step; reset() forgets it
    fresh = TwinPolicyAdapter(model, env).predict(obs)[0]
    np.testing.assert_array_equal(adapter.predict(obs, episode_start=np.array([True]))[0], fresh)
    adapter.reset()
    np.testing.assert_array_equal(adapter.predict(obs)[0], fresh)


def test_do_nothing_meets_the_same_trials_on_the_twin_and_in_cheetah(tmp_path):
    twin = evaluate(DoNothing(), "transverse", trials=4, steps=3)
    out = tmp_path / "eval"
    assert main(["accel", "evaluate", "do-nothing", "--task", "cheetah", "--trials", "4", "--steps", "3",
                 "--no-oracle", "--out", str(out)]) == 0
    cheetah = json.loads((out / "results.json").read_text())[0]
    assert cheetah["task"] == "cheetah" and len(cheetah["trials"]) == 4
    for a, b in zip(twin.trials, cheetah["trials"]):
        assert b["initial_mae"] == pytest.approx(a["initial_mae"], rel=1e-5)
        assert b["final_mae"] == pytest.approx(b["initial_mae"], rel=1e-12)
    assert len({t["initial_mae"] for t in cheetah["trials"]}) == 4
