"""MOPO: the penalised reward against a hand computation on a tiny ensemble, rollouts that stop at termination, the
real/model mix of each batch, the termination classifier, exact resume, errors; a long learning test."""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import polyak
from polyak.algos.offline.mopo import MOPOAgent, MOPOConfig, mixed_batch, penalised_rollout
from polyak.core.config import HyperparameterError
from polyak.core.dynamics import Standardizer
from polyak.core.types import Transition
from polyak.data import datasets as D
from polyak.data.buffer import buffer_add, buffer_init
from polyak.evaluation import evaluate_policy
from test_learning_offline import swing_up  # the scripted controller behind the offline learning tests

TINY = dict(batch_size=16, actor_hidden=(16, 16), critic_hidden=(16, 16), model_members=3, model_elites=2,
            model_hidden=(8,), model_train_steps=20, rollouts_per_step=4, rollout_length=3, model_retain_steps=10,
            termination_steps=20)


def softplus(x):
    return np.logaddexp(0.0, x)


def constant_ensemble(agent: MOPOAgent, state, means: np.ndarray, raw_log_vars: np.ndarray, elites):
    """The model's members output constants: every kernel zero, the output layer's bias [mean, raw log var] per
    member, the lower log-variance bound -40; inputs standardised by (0, 1)."""
    inner = dict(state.model.params["params"]["VmapGaussianHead_0"])
    inner["min_log_var"] = jnp.full_like(inner["min_log_var"], -40.0)
    mlp = inner["MLP_0"]
    last = sorted(k for k in mlp if k.startswith("Dense"))[-1]
    mlp = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.zeros_like(x) if "kernel" in jax.tree_util.keystr(path) else x, mlp)
    mlp[last]["bias"] = jnp.asarray(np.concatenate([means, raw_log_vars], axis=1), jnp.float32)
    params = {"params": {"VmapGaussianHead_0": {**inner, "MLP_0": mlp}}}
    d = agent.obs_dim + agent.act_dim
    model = state.model._replace(params=params, inputs=Standardizer(jnp.zeros(d), jnp.ones(d)),
                                 elites=jnp.asarray(elites, jnp.int32))
    return state._replace(model=model)


def clamped_log_var(raw, max_log_var=0.5, min_log_var=-40.0):
    """The Gaussian head's soft clamp into [min_log_var, max_log_var] (core.dynamics)."""
    lv = max_log_var - softplus(max_log_var - raw)
    return min_log_var + softplus(lv - min_log_var)


@pytest.mark.parametrize("penalty", ["aleatoric", "epistemic", "disagreement"])
def test_penalised_reward_matches_a_hand_computation(penalty):
    cfg = MOPOConfig.from_kwargs({**TINY, "penalty": penalty, "penalty_coef": 0.7, "rollout_length": 1})
    agent = MOPOAgent(cfg, 2, 1)
    # three members; the reward mean is the same for all (so the sampled member does not matter), the next-state
    # means and the variances differ; member 1 is no elite, and has the largest variance
    means = np.array([[0.1, -0.2, -1.5], [0.9, 0.4, -1.5], [-0.3, 0.5, -1.5]])
    raw = np.array([[-1.0, -2.0, -30.0], [1.0, 0.5, -30.0], [-0.5, -3.0, -30.0]])  # sigma_r ~ exp(-15)
    state = constant_ensemble(agent, agent.init(jax.random.PRNGKey(0)), means, raw, elites=[0, 2])
    obs = jnp.asarray([[0.3, -0.1], [1.0, 2.0]], jnp.float32)
    rows, valid, u = jax.jit(agent.rollout)(state, obs, jax.random.PRNGKey(1))

    std = np.exp(0.5 * clamped_log_var(raw))[[0, 2]]  # the elites'
    mu = means[[0, 2]]
    expected_u = {"aleatoric": np.linalg.norm(std, axis=1).max(),  # max_i ||sigma_i||
                  "epistemic": np.linalg.norm(mu.std(axis=0)),  # ||std_i mu_i|| over [s' - s, r]
                  "disagreement": np.linalg.norm(mu[:, :2] - mu[:, :2].mean(0), axis=1).max()}[penalty]  # over s'

    np.testing.assert_allclose(np.asarray(u), expected_u, rtol=1e-5)
    # r~ = r^ - lambda u, r^ = -1.5 + sigma_r eps
    np.testing.assert_allclose(np.asarray(rows.reward), -1.5 - 0.7 * expected_u, rtol=1e-5, atol=1e-5)
    assert bool(valid.all()) and not np.asarray(rows.terminated).any()
    np.testing.assert_array_equal(np.asarray(rows.obs[0]), np.asarray(obs))


def test_rollouts_stop_at_termination():
    # s' = s + 1, r^ = s, u = 0.5; d when s' >= 3
    rows, valid, u = penalised_rollout(
        policy=lambda s, k: jnp.zeros((s.shape[0], 1)), model_step=lambda s, a, k: (s + 1.0, s[:, 0], jnp.full(
            s.shape[0], 0.5)), terminal=lambda s, a, s_next: s_next[:, 0] >= 3.0,
        obs=jnp.asarray([[0.0], [1.0], [2.0], [5.0]]), key=jax.random.PRNGKey(0), horizon=4, penalty_coef=2.0)
    # a rollout keeps its steps up to and including the first terminal one
    np.testing.assert_array_equal(np.asarray(valid).T, [[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]])
    # from s = 0: s' = 1, 2, 3 (terminal), then 4 (terminal, but past the rollout's end)
    np.testing.assert_array_equal(np.asarray(rows.terminated)[:, 0], [0, 0, 1, 1])
    np.testing.assert_allclose(np.asarray(rows.reward)[:, 0], np.array([0, 1, 2, 3]) - 2.0 * 0.5)


def test_update_adds_only_the_rollout_steps_before_termination():
    cfg = MOPOConfig.from_kwargs(TINY)
    agent = MOPOAgent(cfg, 3, 1)
    state = agent.init(jax.random.PRNGKey(0))
    # a classifier that always says "terminal": when the data terminate, only each rollout's first step counts
    term = jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.full_like(x, 10.0) if "bias" in jax.tree_util.keystr(path) else jnp.zeros_like(x),
        state.termination)
    batch = Transition(jnp.ones((16, 3)), jnp.zeros((16, 1)), jnp.zeros(16), jnp.ones((16, 3)), jnp.zeros(16))
    update = jax.jit(agent.update)
    for terminates, per_rollout in ((0.0, cfg.rollout_length), (1.0, 1)):
        start = state._replace(termination=term, terminates=jnp.float32(terminates), model_ready=jnp.int32(1))
        new, metrics, _ = update(start, batch, jax.random.PRNGKey(1))
        assert int(new.model_buffer.size) == cfg.rollouts_per_step * per_rollout
        assert float(metrics["rollout_length_mean"]) == per_rollout
        assert int(new.sac.n_updates) == 1


def test_mixed_batch_takes_the_real_fraction():
    assert MOPOAgent(MOPOConfig(), 3, 1).n_real == 13  # round(0.05 * 256)
    real = Transition(jnp.zeros((256, 3)), jnp.zeros((256, 1)), jnp.ones(256), jnp.zeros((256, 3)), jnp.zeros(256))
    model_rows = Transition(jnp.zeros((50, 3)), jnp.zeros((50, 1)), -jnp.arange(1.0, 51.0), jnp.zeros((50, 3)),
                            jnp.zeros(50))
    buffer = buffer_add(buffer_init(100, 3, 1), model_rows)
    mixed = mixed_batch(real, buffer, jax.random.PRNGKey(0), 13)
    reward = np.asarray(mixed.reward)
    assert reward.shape == (256,) and np.all(reward[:13] == 1.0)
    assert np.all((reward[13:] <= -1) & (reward[13:] >= -50))  # only filled model rows


def test_termination_classifier_learns_a_threshold():
    cfg = MOPOConfig.from_kwargs({**TINY, "termination_steps": 300})
    agent = MOPOAgent(cfg, 1, 1)
    x = jax.random.uniform(jax.random.PRNGKey(0), (1000, 3), minval=-1, maxval=1)  # (s, a, s')
    done = (x[:, 2] > 0.5).astype(jnp.float32)  # terminal when s' > 0.5
    params = agent._fit_termination(agent.init(jax.random.PRNGKey(1)).termination, x, done, jax.random.PRNGKey(2))
    predicted = agent.termination_net.apply(params, x)[:, 0] > 0
    assert float((predicted == (done > 0)).mean()) > 0.95


def test_fit_once_then_online_and_resume_bit_exactly(dataset, tmp_path):
    straight = polyak.MOPO("MlpPolicy", dataset=dataset.dataset_id, seed=2, eval_episodes=0, **TINY)
    assert int(straight.learner.agent.model_ready) == 0
    straight.learn(2, log_interval=2).learn(3, online=True)
    agent = straight.learner.agent
    assert int(agent.model_ready) == 1 and np.all(np.isfinite(np.asarray(agent.model_mse)))
    # the elites are the members with the lowest held-out error
    np.testing.assert_array_equal(np.sort(np.asarray(agent.model.elites)), np.sort(np.argsort(agent.model_mse)[:2]))
    assert int(agent.model_buffer.size) == 5 * TINY["rollouts_per_step"] * TINY["rollout_length"]
    assert int(straight.learner.buffer.size) == len(dataset) + 3
    halves = polyak.MOPO("MlpPolicy", dataset=dataset.dataset_id, seed=2, eval_episodes=0, **TINY)
    halves.learn(2, log_interval=2)
    resumed = polyak.load(halves.save(tmp_path / "half.polyak"), env="Pendulum-v1")
    resumed.learn(3, online=True)  # the model is not refitted: it is in the checkpoint
    for a, b in zip(jax.tree.leaves(jax.device_get(straight.learner)), jax.tree.leaves(jax.device_get(resumed.learner)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    metrics = jax.device_get(straight.learner.monitor.metrics)
    assert {"penalty_mean", "model_mse", "rollout_length_mean"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())


def test_errors_name_the_problem(dataset):
    with pytest.raises(HyperparameterError, match="normalize_obs must be False"):
        polyak.MOPO("MlpPolicy", dataset=dataset.dataset_id, normalize_obs=True)
    with pytest.raises(HyperparameterError, match="penalty must be 'auto', 'aleatoric', 'epistemic' or 'disagreement'"):
        polyak.MOPO("MlpPolicy", dataset=dataset.dataset_id, penalty="max")
    with pytest.raises(HyperparameterError, match="rollouts_per_step must be in"):
        polyak.MOPO("MlpPolicy", dataset=dataset.dataset_id, batch_size=32, rollouts_per_step=50)
    with pytest.raises(HyperparameterError, match="unknown hyperparameter.*rollout_length"):
        polyak.MOPO("MlpPolicy", dataset=dataset.dataset_id, rollout_len=5)


@pytest.mark.long
def test_mopo_learns_from_noisy_swing_up_data():
    """From 2000 transitions of a noisy swing-up controller, MOPO beats the random policy (about -1250) by 500."""
    env = gym.make("Pendulum-v1")
    episodes = D.collect_episodes(env, swing_up, 10, seed=0, noise=0.5)
    data = D.flatten(episodes, env.observation_space, env.action_space, "Pendulum-v1")
    passed = 0
    for seed in range(3):
        model = polyak.MOPO("MlpPolicy", dataset=data, seed=seed, eval_episodes=0, model_hidden=(200, 200),
                            model_train_steps=2000)
        model.learn(3000, log_interval=1000)
        passed += evaluate_policy(model, env, 5, seed=100)[0] > -1200.0 + 500.0
    assert passed >= 2
