"""Offline-to-online: `learn(n, online=True)` seeds the replay buffer with exactly the dataset's transitions, appends
online ones with their terminated/truncated semantics, updates with the algorithm's own update, and resumes
bit-exactly from a checkpoint that carries the buffer."""

from __future__ import annotations

import gymnasium as gym
import jax
import numpy as np
import pytest

import polyak
from polyak.algos import registry
from polyak.data import datasets as D
from polyak.evaluation import evaluate_policy
from tests.offline_data import random_pendulum
from test_learning_offline import swing_up  # the scripted controller behind the offline learning tests

DATASET = "test/Pendulum-v1/online-v0"
TINY = dict(policy_kwargs={"net_arch": [16, 16]}, batch_size=16, eval_episodes=0)
EXTRA = {"cql": {"cql_n_actions": 2}, "amortized_fqi": {"opt_states": 8}}
COVERED = ("td3_bc", "iql", "mopo")  # by the tests below (IQL, TD3+BC) and in test_mopo.py (MOPO, through online)


class TerminateEveryOtherEpisode(gym.Wrapper):
    """Even-numbered episodes terminate at their 4th step; the others end by the time limit (6 steps)."""

    def __init__(self, env):
        super().__init__(gym.wrappers.TimeLimit(env.unwrapped, 6))
        self.episode, self.t = -1, 0

    def reset(self, **kwargs):
        self.episode, self.t = self.episode + 1, 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        return obs, reward, terminated or (self.episode % 2 == 0 and self.t == 4), truncated, info


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    yield from random_pendulum(tmp_path_factory, DATASET, 3, 50)


def rows(buffer, start=0, stop=None):
    n = int(buffer.size)
    return jax.tree.map(lambda x: np.asarray(x)[start:n if stop is None else stop], buffer.data)


def test_buffer_is_the_dataset_then_the_online_transitions(dataset):
    model = polyak.IQL("MlpPolicy", TerminateEveryOtherEpisode(gym.make("Pendulum-v1")), dataset=DATASET, seed=0,
                       **TINY)
    offline = rows(model.learner.buffer)
    model.learn(3, log_interval=3)
    assert model.online_from is None and model.learner.buffer.capacity == len(dataset) == 150
    model.learn(20, online=True, log_interval=10)
    buffer, n = model.learner.buffer, len(dataset)
    assert model.online_from == 3 and model.num_timesteps == 23 and int(buffer.size) == n + 20
    for a, b in zip(rows(buffer, 0, n), offline, strict=True):  # the dataset's rows, untouched and first
        np.testing.assert_array_equal(a, b)
    online = rows(buffer, n)
    # episodes: 4 steps, terminated | 6 steps, time limit | 4, terminated | 6, time limit
    np.testing.assert_array_equal(online.terminated, [0, 0, 0, 1] + [0] * 6 + [0, 0, 0, 1] + [0] * 6)
    ends = {3, 9, 13, 19}
    for k in range(19):  # within an episode s'_k = s_{k+1}; at an end s' is the true final observation
        same = np.array_equal(online.next_obs[k], online.obs[k + 1])
        assert same == (k not in ends), k
    # actions are the agent's, in [-1, 1]; rewards are Pendulum's (<= 0)
    assert np.all(np.abs(online.action) <= 1.0) and np.all(online.reward <= 0.0)
    assert int(model.learner.step) == 23 and int(model.learner.agent.n_updates) == 23  # one update per env step


def test_online_fine_tuning_resumes_bit_exactly(dataset, tmp_path):
    cls = polyak.TD3BC  # online: mu(s) plus Gaussian noise, the delayed actor
    kwargs = dict(dataset=DATASET, seed=1, **TINY)
    straight = cls("MlpPolicy", "Pendulum-v1", **kwargs).learn(2, log_interval=2)
    before = jax.tree.leaves(jax.device_get(straight.learner.agent))
    straight.learn(12, online=True, log_interval=4)
    halves = cls("MlpPolicy", "Pendulum-v1", **kwargs).learn(2, log_interval=2).learn(5, online=True, log_interval=4)
    path = halves.save(tmp_path / "online.polyak", include_buffer=True)  # mid-episode: the episode is replayed
    resumed = polyak.load(path, env="Pendulum-v1")
    assert resumed.online_from == 2 and resumed.num_timesteps == 7 and int(resumed.learner.buffer.size) == 150 + 5
    resumed.learn(7, online=True, log_interval=4)
    assert resumed.num_timesteps == straight.num_timesteps == 14
    for a, b in zip(jax.tree.leaves(jax.device_get(straight.learner)), jax.tree.leaves(jax.device_get(resumed.learner)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    after = jax.tree.leaves(jax.device_get(straight.learner.agent))
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))  # the online updates ran


OTHERS = [n for n in registry.names() if registry.entry(n).family == "offline" and n not in COVERED]


@pytest.mark.parametrize("name", [n if n == "awac" else pytest.param(n, marks=pytest.mark.long) for n in OTHERS])
def test_every_offline_algorithm_goes_online(dataset, name):
    """AWAC in CI; the others' compilations cost minutes together on CI's CPUs (`pytest -m long`)."""
    model = registry.algorithm_class(name)("MlpPolicy", dataset=DATASET, seed=0, **TINY, **EXTRA.get(name, {}))
    model.learn(3, online=True, log_interval=3)
    assert int(model.learner.buffer.size) == len(dataset) + 3 and model.num_timesteps == 3


def test_online_errors_name_the_problem(dataset, tmp_path):
    model = polyak.TD3BC("MlpPolicy", dataset=DATASET, seed=0, **TINY)
    path = model.save(tmp_path / "m.polyak")
    with pytest.raises(ValueError, match="online fine-tuning needs an env"):
        polyak.load(path).learn(5, online=True)
    model.learn(2, online=True)
    model.save(tmp_path / "no_buffer.polyak")  # without the buffer, the online rows are lost on resume: a warning
    with pytest.warns(RuntimeWarning, match="online transitions are lost"):
        polyak.load(tmp_path / "no_buffer.polyak", env="Pendulum-v1").learn(1, online=True)


@pytest.mark.long
def test_iql_keeps_or_improves_its_return_online():
    """IQL from a noisy swing-up controller's data, then 3000 online steps: still far better than random (-1250)."""
    env = gym.make("Pendulum-v1")
    episodes = D.collect_episodes(env, swing_up, 10, seed=0, noise=0.5)
    data = D.flatten(episodes, env.observation_space, env.action_space, "Pendulum-v1")
    passed = 0
    for seed in range(3):
        model = polyak.IQL("MlpPolicy", dataset=data, seed=seed, eval_episodes=0, actor_lr_decay_steps=0)
        model.learn(1500, log_interval=500)
        model.learn(3000, online=True, log_interval=1000)
        passed += evaluate_policy(model, env, 5, seed=100)[0] > -1200.0 + 500.0
    assert passed >= 2
