"""The offline family's model API: construction from a dataset id, the normaliser fitted on the data, checkpoints
that resume bit-exactly (the dataset read again by id and checked), vmapped seeds, errors, the registry."""

from __future__ import annotations

import gymnasium as gym
import jax
import numpy as np
import pytest

import polyak
from polyak.algos import registry
from polyak.algos.offline.learner import compiled
from polyak.core.config import HyperparameterError
from polyak.data import datasets as D
from polyak.envs.spaces import SpaceError

TINY = dict(policy_kwargs={"net_arch": [16, 16]}, batch_size=16, eval_episodes=0)
EXTRA = {"cql": {"cql_n_actions": 2}, "iql": {}, "awac": {}, "td3_bc": {}}


def leaves(learner):
    return jax.tree.leaves(jax.device_get(learner._replace(buffer=None)))


@pytest.mark.parametrize("name", ["td3_bc", "cql", "iql", "awac"])
def test_checkpoint_resumes_bit_exactly(dataset, tmp_path, name):
    cls = registry.algorithm_class(name)
    entry = registry.entry(name)
    assert entry.family == "offline" and entry.action_kinds == ("Box",) and polyak.ALGORITHMS[name] is cls
    straight = cls("MlpPolicy", dataset=dataset.dataset_id, seed=3, **TINY, **EXTRA[name])
    # the normaliser is the dataset's mean and std, the buffer the dataset with actions in [-1, 1]
    np.testing.assert_allclose(straight.learner.obs_rms.mean, dataset.obs.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(straight.learner.buffer.data.action), dataset.action / 2.0, rtol=1e-6)
    assert straight.env_id == "Pendulum-v1" and int(straight.learner.buffer.size) == len(dataset) == 200
    straight.learn(4, log_interval=2)
    halves = cls("MlpPolicy", dataset=dataset.dataset_id, seed=3, **TINY, **EXTRA[name]).learn(2, log_interval=2)
    path = halves.save(tmp_path / "half.polyak", include_buffer=True)  # the dataset itself is never copied
    resumed = polyak.load(path, env="Pendulum-v1")
    assert resumed.learner.buffer is None and resumed.num_timesteps == 2
    np.testing.assert_array_equal(resumed.learner.obs_rms.mean, halves.learner.obs_rms.mean)
    resumed.learn(2, log_interval=2)
    assert resumed.num_timesteps == straight.num_timesteps == 4
    for a, b in zip(leaves(straight.learner), leaves(resumed.learner), strict=True):
        np.testing.assert_array_equal(a, b)
    obs = dataset.obs[:3]
    np.testing.assert_array_equal(straight.predict(obs)[0], resumed.predict(obs)[0])
    assert straight.predict(obs[0])[0].shape == (1,) and np.all(np.abs(straight.predict(obs)[0]) <= 2.0)
    assert straight.predict_q(obs, dataset.action[:3]).shape == (3, 2)
    metrics = jax.device_get(straight.learner.monitor.metrics)
    assert all(np.isfinite(v) for v in metrics.values())


def test_vmapped_seeds_match_single_seeds(dataset):
    models = [polyak.TD3BC("MlpPolicy", dataset=dataset, env="Pendulum-v1", seed=s, **TINY) for s in (0, 1)]
    buffer = models[0].learner.buffer
    stacked = jax.tree.map(lambda *x: np.stack(x), *[m.learner._replace(buffer=None) for m in models])
    vmapped = compiled(models[0].spec)["chunk_seeds"](2)(stacked, buffer)
    for i, m in enumerate(models):
        m.learn(2, log_interval=2)
        for a, b in zip(leaves(m.learner), jax.tree.leaves(jax.tree.map(lambda x: x[i], vmapped)), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


def test_errors_name_the_problem(dataset, tmp_path, monkeypatch):
    with pytest.raises(HyperparameterError, match="learns from a dataset"):
        polyak.IQL("MlpPolicy", "Pendulum-v1")
    with pytest.raises(HyperparameterError, match="unknown hyperparameter.*expectile"):
        polyak.TD3BC("MlpPolicy", dataset=dataset, expectile=0.7)
    with pytest.raises(SpaceError, match=r"collected on Pendulum-v1: pass env='Pendulum-v1'"):
        polyak.TD3BC("MlpPolicy", "MountainCarContinuous-v0", dataset=dataset)
    with pytest.raises(D.DatasetError, match="not found"):
        polyak.TD3BC("MlpPolicy", dataset="test/Pendulum-v1/missing-v0")
    env = gym.make("Pendulum-v1", max_episode_steps=50)
    changing = "test/Pendulum-v1/changing-v0"
    for seed in (1, 2):  # a model trained on the first version of a dataset does not resume on the second
        episodes = D.collect_episodes(env, lambda obs, info: env.action_space.sample(), 2, seed=seed)
        D.write_dataset(changing, episodes, env.observation_space, env.action_space, "Pendulum-v1", overwrite=True)
        if seed == 1:
            path = polyak.TD3BC("MlpPolicy", dataset=changing, seed=0, **TINY).save(tmp_path / "m.polyak")
    with pytest.raises(ValueError, match="has changed since this model was trained"):
        polyak.load(path, env="Pendulum-v1").learn(2)
