"""MOPO with the Koopman world model (`model="koopman"`): the disagreement penalty against a hand computation on
constant members, rollouts that stop where the uncertainty passes `max_uncertainty`, episodes recovered from the
dataset's rows, ||K||_2 <= 1 after fitting, fit + train + exact resume, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import polyak
from polyak.algos.offline.mopo import MOPOAgent, MOPOConfig, penalised_rollout
from polyak.core.config import HyperparameterError
from polyak.core.types import Transition
from polyak.core.world_model import KoopmanModel, split_episodes

TINY = dict(model="koopman", batch_size=16, actor_hidden=(16, 16), critic_hidden=(16, 16), model_members=3,
            koopman_hidden=(8,), koopman_latent_dim=4, koopman_horizon=4, model_train_steps=10, rollouts_per_step=4,
            rollout_length=2, model_retain_steps=10)


def constant_members(state, next_obs: np.ndarray, reward: float):
    """Every Koopman member predicts a constant: decoder and reward head with zero kernels, the last biases member
    i's next observation next_obs[i] and the reward; the world model's standardisers are (0, 1) (from `init`)."""
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.zeros_like(x) if "kernel" in jax.tree_util.keystr(path) else x, state.model.params)
    inner = dict(params["params"])
    for name, bias in (("decoder", next_obs), ("reward_head", np.full((len(next_obs), 1), reward))):
        mlp = dict(inner[name])
        last = sorted(k for k in mlp if k.startswith("Dense"))[-1]
        mlp[last] = {**mlp[last], "bias": jnp.asarray(bias, jnp.float32)}
        inner[name] = mlp
    return state._replace(model=state.model._replace(params={"params": inner}))


@pytest.mark.parametrize("penalty", ["disagreement", "epistemic"])
def test_penalty_matches_a_hand_computation_on_constant_members(penalty):
    cfg = MOPOConfig.from_kwargs({**TINY, "penalty": penalty, "penalty_coef": 0.7, "rollout_length": 1})
    agent = MOPOAgent(cfg, 2, 1)
    c = np.array([[0.1, -0.2], [0.9, 0.4], [-0.3, 0.5]])  # member i's next observation
    state = constant_members(agent.init(jax.random.PRNGKey(0)), c, -1.5)
    obs = jnp.asarray([[0.3, -0.1], [1.0, 2.0], [-1.0, 0.0]], jnp.float32)
    rows, valid, u = jax.jit(agent.rollout)(state, obs, jax.random.PRNGKey(1))

    expected_u = (np.linalg.norm(c - c.mean(0), axis=1).max() if penalty == "disagreement"  # max_i ||c_i - mean c||
                  else np.linalg.norm(c.std(axis=0)))  # ||std_i c_i||
    np.testing.assert_allclose(np.asarray(u), expected_u, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(rows.reward), -1.5 - 0.7 * expected_u, rtol=1e-5)  # r~ = r^ - lambda u
    # each row's next state is one member's prediction
    dist = np.linalg.norm(np.asarray(rows.next_obs[0])[:, None] - c[None], axis=-1)
    np.testing.assert_allclose(dist.min(axis=1), 0.0, atol=1e-6)
    assert bool(valid.all()) and penalty == MOPOConfig.from_kwargs({**TINY, "penalty": penalty}).penalty_kind
    assert MOPOConfig.from_kwargs(TINY).penalty_kind == "disagreement"  # the default for the Koopman model

    if penalty == "disagreement":  # max_uncertainty just below u: no model row is kept, SAC learns from real rows
        agent = MOPOAgent(MOPOConfig.from_kwargs({**TINY, "penalty": penalty, "max_uncertainty": 0.999 * expected_u}),
                          2, 1)
        batch = Transition(jnp.ones((16, 2)), jnp.zeros((16, 1)), jnp.zeros(16), jnp.ones((16, 2)), jnp.zeros(16))
        state = state._replace(model_mse=jnp.zeros(3), model_ready=jnp.int32(1))  # as after a fit
        new, metrics, _ = jax.jit(agent.update)(state, batch, jax.random.PRNGKey(1))
        assert int(new.model_buffer.size) == 0 and float(metrics["rollout_length_mean"]) == 0.0
        assert int(new.sac.n_updates) == 1 and all(np.isfinite(v) for v in jax.device_get(metrics).values())


def test_rollouts_end_before_the_first_too_uncertain_step():
    # s' = s + 1, r^ = 0, u = s' (grows along the rollout); stop above 2.5; never terminal
    _, valid, u = penalised_rollout(
        policy=lambda s, k: jnp.zeros((s.shape[0], 1)), model_step=lambda s, a, k: (s + 1.0, jnp.zeros(s.shape[0]),
                                                                                    s[:, 0] + 1.0),
        terminal=lambda s, a, s_next: jnp.zeros(s.shape[0], bool), obs=jnp.asarray([[0.0], [1.0], [3.0]]),
        key=jax.random.PRNGKey(0), horizon=3, penalty_coef=1.0, max_uncertainty=2.5)
    np.testing.assert_array_equal(np.asarray(u).T, [[1, 2, 3], [2, 3, 4], [4, 5, 6]])
    np.testing.assert_array_equal(np.asarray(valid).T, [[1, 1, 0], [1, 0, 0], [0, 0, 0]])


def test_episodes_are_recovered_from_the_rows():
    # rows of three episodes: [0, 1, 2] truncated (then a reset), [3, 4] terminated, [5]
    obs = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [20.0]])
    next_obs = np.array([[1.0], [2.0], [3.0], [11.0], [12.0], [21.0]])
    next_obs[4] = 5.0  # a terminal row may end anywhere; the next row's obs does not matter
    obs[5] = 5.0  # ... even where it continues the chain exactly
    terminated = np.array([0, 0, 0, 0, 1, 0])
    rows = Transition(obs, np.arange(6.0)[:, None], -np.arange(6.0), next_obs, terminated)
    episodes = split_episodes(rows)
    assert [len(e["actions"]) for e in episodes] == [3, 2, 1]
    np.testing.assert_array_equal(episodes[0]["observations"][:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(episodes[1]["observations"][:, 0], [10, 11, 5])
    np.testing.assert_array_equal(episodes[2]["rewards"], [-5.0])


def test_episode_ids_cut_where_the_rows_alone_cannot_tell():
    # episode 0 is truncated at obs 2 -> 3, and episode 1 happens to reset at 3: the chain of rows looks unbroken
    obs = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    next_obs = obs + 1.0
    rows = Transition(obs, np.zeros((5, 1)), np.zeros(5), next_obs, np.zeros(5))
    assert [len(e["actions"]) for e in split_episodes(rows)] == [5]  # inferred: one episode
    episodes = split_episodes(rows, episode=np.array([0, 0, 0, 1, 1]))
    assert [len(e["actions"]) for e in episodes] == [3, 2]
    np.testing.assert_array_equal(episodes[0]["observations"][:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(episodes[1]["observations"][:, 0], [3, 4, 5])
    with pytest.raises(ValueError, match="one entry per row"):
        split_episodes(rows, episode=np.zeros(4))


def test_fit_train_and_resume_bit_exactly(dataset, tmp_path):
    straight = polyak.MOPO("MlpPolicy", dataset=dataset.dataset_id, seed=2, eval_episodes=0, **TINY)
    straight.learn(4, log_interval=2)
    agent, world = straight.learner.agent, straight.agent.world_model
    assert isinstance(world, KoopmanModel) and int(agent.model_ready) == 1
    assert np.all(np.isfinite(np.asarray(agent.model_mse))) and agent.model_mse.shape == (3,)
    # fitted on the data: its observation statistics are the dataset's
    np.testing.assert_allclose(np.asarray(agent.model.obs.mean), dataset.obs.mean(0), rtol=1e-4, atol=1e-4)
    # ||K||_2 <= 1 for every member after fitting, and the bound holds however large W grows
    norms = lambda state: np.linalg.norm(np.asarray(world.koopman.k_matrices(state)), ord=2, axis=(1, 2))  # noqa: E731
    assert np.all(norms(agent.model) <= 1.0 + 1e-5)
    inner = agent.model.params["params"]
    w_big = 10.0 * inner["W"] / np.linalg.norm(np.asarray(inner["W"]), ord=2, axis=(1, 2))[:, None, None]  # ||W|| = 10
    blown = agent.model._replace(params={"params": {**inner, "W": w_big}})
    np.testing.assert_allclose(norms(blown), 1.0, rtol=1e-4)
    assert int(agent.model_buffer.size) == 4 * TINY["rollouts_per_step"] * TINY["rollout_length"]

    halves = polyak.MOPO("MlpPolicy", dataset=dataset.dataset_id, seed=2, eval_episodes=0, **TINY)
    halves.learn(2, log_interval=2)
    resumed = polyak.load(halves.save(tmp_path / "half.polyak"), env="Pendulum-v1")
    assert resumed.config.model == "koopman"
    resumed.learn(2, log_interval=2)  # the model is not refitted: it is in the checkpoint
    for a, b in zip(jax.tree.leaves(jax.device_get(straight.learner)), jax.tree.leaves(jax.device_get(resumed.learner)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    metrics = jax.device_get(straight.learner.monitor.metrics)
    assert all(np.isfinite(v) for v in metrics.values()) and float(metrics["penalty_mean"]) > 0


@pytest.mark.parametrize("settings, message", [
    ({"model": "gru"}, "model must be 'mlp' or 'koopman'"),
    ({"model": "koopman", "penalty": "aleatoric"}, "Koopman members are deterministic"),
    ({"penalty": "max"}, "penalty must be 'auto', 'aleatoric', 'epistemic' or 'disagreement'"),
    ({"model": "koopman", "koopman_horizon": 0}, "koopman_horizon must be >= 1"),
    ({"model": "koopman", "koopman_hidden": []}, "koopman_hidden must be one or more widths"),
    ({"model": "koopman", "koopman_latent_dim": 0}, "koopman_latent_dim must be >= 1"),
    ({"max_uncertainty": 0.0}, "max_uncertainty must be > 0"),
    ({"model": "koopman", "koopman_latent": 8}, "unknown hyperparameter.*koopman_latent_dim"),
])
def test_bad_settings_name_the_problem(settings, message):
    with pytest.raises(HyperparameterError, match=message):
        MOPOConfig.from_kwargs(settings)
