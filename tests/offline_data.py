"""A tiny offline dataset for tests: Pendulum-v1 under uniform random actions, written as a local Minari dataset in
a temporary folder; MINARI_DATASETS_PATH points there while the fixture that yields from it is alive."""

from __future__ import annotations

import gymnasium as gym
import pytest

from polyak.data import datasets as D


def random_pendulum(tmp_path_factory, dataset_id: str, episodes: int, max_episode_steps: int):
    """Yield the dataset as `OfflineData` (a generator body for a module-scoped fixture)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari")))
    env = gym.make("Pendulum-v1", max_episode_steps=max_episode_steps)
    rows = D.collect_episodes(env, lambda obs, info: env.action_space.sample(), episodes, seed=0)
    D.write_dataset(dataset_id, rows, env.observation_space, env.action_space, env_id="Pendulum-v1")
    yield D.load_dataset(dataset_id)
    mp.undo()
