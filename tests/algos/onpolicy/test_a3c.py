"""A3C: the workers' gradient is A2C's, a push is exactly one RMSprop step on the shared state, a stale
gradient is applied to newer parameters (and counted), threaded runs count steps exactly, save/load."""

import math

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import polyak
from polyak.algos.algorithm import NonFiniteError
from polyak.algos.onpolicy.a2c import A2CAgent
from polyak.algos.onpolicy.a3c import A3C, A3CAgent, A3CConfig, _Run
from polyak.algos.onpolicy.actor_critic import A2CConfig, actor_critic_loss
from polyak.algos.onpolicy.learner import Rollout
from polyak.core.config import HyperparameterError
from polyak.core.returns import gae_advantages
from polyak.envs.spaces import SpaceError
from tests.fake_envs import CountingEnv

SMALL = dict(policy_kwargs={"net_arch": [16]}, n_steps=5, n_workers=2)  # one compiled set of functions for all tests


class NaNRewardAt3(gym.Wrapper):
    """CartPole whose third step returns a NaN reward."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.t = 0

    def step(self, action):
        self.t += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, math.nan if self.t == 3 else reward, terminated, truncated, info


def random_rollout(key, t=6, n=1, obs_dim=4):
    """A CartPole-shaped rollout: an episode that terminates at row 1, one cut by a time limit at row 3."""
    k = jax.random.split(key, 4)
    obs = jax.random.normal(k[0], (t, n, obs_dim))
    next_obs = jax.random.normal(k[3], (t, n, obs_dim)).at[0].set(obs[1])  # s'_0 = s_1 (same episode)
    return Rollout(obs=obs, action=jax.random.bernoulli(k[1], 0.5, (t, n, 1)).astype(jnp.float32),
                   log_prob=jnp.zeros((t, n)), reward=jax.random.normal(k[2], (t, n)), next_obs=next_obs,
                   terminated=jnp.zeros((t, n)).at[1].set(1.0),
                   episode_end=jnp.zeros((t, n)).at[1].set(1.0).at[3].set(1.0), time_in_episode=jnp.zeros((t, n)))


def test_worker_gradient_is_a2c_gradient():
    """Same rollout, same parameters: A3C's gradient is grad of A2C's loss with A2C's n-step advantages,
    and gradient + push is A2C's update."""
    cfg = dict(gamma=0.9, ent_coef=0.01, policy_hidden=(8,), value_hidden=(8,))
    a3c, a2c = A3CAgent(A3CConfig(**cfg), 4, 1, 2), A2CAgent(A2CConfig(**cfg), 4, 1, 2)
    state = a2c.init(jax.random.PRNGKey(0))
    rollout = random_rollout(jax.random.PRNGKey(1))

    grads, metrics = jax.jit(a3c.gradient)(state.params, rollout)

    @jax.jit
    def a2c_gradient(params, rollout):  # A2C's update, step 1 and the loss, written out
        value, next_value = a2c.rollout_values(params, rollout)
        adv, target = gae_advantages(rollout.reward, value, next_value, rollout.terminated, rollout.episode_end,
                                     0.9, 1.0)
        loss = lambda p: actor_critic_loss(a2c, p, rollout.obs, rollout.action, adv, target)[0]  # noqa: E731
        return jax.grad(loss)(params), target

    expected, target = a2c_gradient(state.params, rollout)
    for g, e in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)
    # the n-step target of row 0 stops at the termination in row 1: R_0 = r_0 + 0.9 r_1
    np.testing.assert_allclose(target[0, 0], rollout.reward[0, 0] + 0.9 * rollout.reward[1, 0], rtol=1e-5)

    a2c_state, a2c_metrics = jax.jit(a2c.update)(state, rollout, jax.random.PRNGKey(2))
    a3c_state = jax.jit(a3c.apply_gradient)(state, grads)
    for p, q in zip(jax.tree.leaves(a3c_state), jax.tree.leaves(a2c_state)):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-7)
    for k in a2c_metrics:
        np.testing.assert_allclose(metrics[k], a2c_metrics[k], rtol=1e-5)


def test_push_is_exactly_one_rmsprop_step_on_the_shared_state():
    model = A3C("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    lr = model.config.learning_rate
    push = model._fns["push"]
    p0 = jax.device_get(model.learner.agent.params)
    g1 = jax.tree.map(lambda p: 1e-4 * np.random.default_rng(0).standard_normal(p.shape).astype(np.float32), p0)
    g2 = jax.tree.map(lambda p: 10.0 * np.random.default_rng(1).standard_normal(p.shape).astype(np.float32), p0)
    obs = np.arange(20, dtype=np.float32).reshape(5, 4)
    learner = push(push(model.learner, g1, obs), g2, obs + 1.0)

    # by hand: RMSprop (decay 0.99, eps 1e-5 inside the sqrt) after clipping the global norm to 0.5
    leaves1, leaves2 = (np.concatenate([np.ravel(x) for x in jax.tree.leaves(g)]).astype(np.float64) for g in (g1, g2))
    assert np.linalg.norm(leaves1) < 0.5 < np.linalg.norm(leaves2)
    scale2 = 0.5 / np.linalg.norm(leaves2)

    def by_hand(p, a, b):
        nu1 = 0.01 * a.astype(np.float64) ** 2
        p1 = p - lr * a / np.sqrt(nu1 + 1e-5)
        b = b * scale2
        nu2 = 0.99 * nu1 + 0.01 * b**2
        return p1 - lr * b / np.sqrt(nu2 + 1e-5)

    expected = jax.tree.map(by_hand, p0, g1, g2)
    for got, want in zip(jax.tree.leaves(learner.agent.params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert int(learner.agent.n_updates) == 2
    # the shared normaliser merged both pushed batches (10 observations; its prior count is 1e-4)
    both = np.concatenate([obs, obs + 1.0])
    np.testing.assert_allclose(learner.obs_rms.mean, both.mean(0) * 10 / (10 + 1e-4), rtol=1e-5)
    np.testing.assert_allclose(learner.obs_rms.count, 10 + 1e-4, rtol=1e-6)


def test_stale_gradient_is_applied_to_newer_parameters_and_counted():
    """Scripted interleaving of two workers (n_steps=5): A and B sync at theta_0; B pushes first;
    A's gradient, taken at theta_0, is then applied to theta_1 (staleness 1)."""
    model = A3C("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    a, b = model._ensure_workers()
    model._compile()
    run = _Run(target=10)
    start = model.learner
    rollouts = {}
    for w in [a] * 4 + [b] * 5 + [a]:
        assert model._claim_step(run)
        model._worker_step(w, run)
        if w.row == 0:
            rollouts[w.index] = Rollout(**w.rollout)
    assert not model._claim_step(run)  # the budget of 10 steps is used up
    f = model._fns
    g_b, *_ = f["gradient"](start.agent.params, start.obs_rms, rollouts[1])
    g_a, *_ = f["gradient"](start.agent.params, start.obs_rms, rollouts[0])  # at theta_0, not theta_1
    after_b = f["push"](start, g_b, rollouts[1].obs[:, 0])
    expected = f["push"](after_b, g_a, rollouts[0].obs[:, 0])
    for got, want in zip(jax.tree.leaves(model.learner), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    fresh_a, *_ = f["gradient"](after_b.agent.params, start.obs_rms, rollouts[0])  # what a synchronous A would push
    not_stale = f["push"](after_b, fresh_a, rollouts[0].obs[:, 0])
    assert not np.allclose(jax.tree.leaves(not_stale.agent.params)[0], jax.tree.leaves(model.learner.agent.params)[0])
    assert model._staleness == [1, 1]  # sum and max: B's push was 0 pushes old, A's 1
    assert model.num_timesteps == 10 and int(model.learner.agent.n_updates) == 2


def test_threaded_run_counts_steps_and_updates(tmp_path):
    model = A3C("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    before = jax.device_get(model.learner.agent.params)
    model.learn(403, log_interval=100, run_dir=tmp_path)
    steps = [w.steps for w in model.workers]
    assert model.num_timesteps == sum(steps) == 403
    assert min(steps) > 0  # both threads stepped their envs
    assert int(model.learner.agent.n_updates) == sum(s // 5 for s in steps)  # one push per full rollout
    assert not np.allclose(jax.tree.leaves(before)[0], jax.tree.leaves(model.learner.agent.params)[0])
    assert float(model.learner.obs_rms.count) > 300  # the shared normaliser saw the pushed rollouts
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"staleness_mean", "staleness_max", "updates", "policy_loss"} <= set(header)
    model.learn(10)  # a second call continues the same workers
    assert model.num_timesteps == sum(w.steps for w in model.workers) == 413


def test_save_load_round_trip_and_continue(tmp_path):
    model = A3C("MlpPolicy", "CartPole-v1", seed=3, **SMALL).learn(100)
    path = model.save(tmp_path / "a3c.polyak")
    loaded = polyak.load(path, env="CartPole-v1")
    assert isinstance(loaded, A3C) and loaded.num_timesteps == 100
    for x, y in zip(jax.tree.leaves(loaded.learner), jax.tree.leaves(model.learner)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # each worker restarts on a new episode: next index = running episode + 1
    assert list(np.asarray(loaded.learner.worker_episodes)) == [w.stepper.episode + 1 for w in model.workers]
    obs = np.array([0.01, -0.2, 0.03, 0.1], np.float32)
    assert loaded.predict(obs)[0] == model.predict(obs)[0] == model.predict(obs)[0]  # deterministic
    frozen = A3C.load(path)  # no env: predict only
    assert frozen.predict(obs)[0] == model.predict(obs)[0]
    with pytest.raises(ValueError, match="no env"):
        frozen.learn(10)
    loaded.learn(50)  # training continues from the loaded state
    assert loaded.num_timesteps == 150
    assert int(loaded.learner.agent.n_updates) > int(model.learner.agent.n_updates)


def test_errors_name_the_problem():
    with pytest.raises(HyperparameterError, match="n_workers must be >= 1"):
        A3C("MlpPolicy", "CartPole-v1", n_workers=0)
    with pytest.raises(HyperparameterError, match="normalize_reward"):
        A3C("MlpPolicy", "CartPole-v1", normalize_reward=True)
    with pytest.raises(HyperparameterError, match="unknown hyperparameter"):
        A3C("MlpPolicy", "CartPole-v1", n_envs=2)
    with pytest.raises(ValueError, match="n_workers"):
        A3C("MlpPolicy", gym.make_vec("CartPole-v1", 2, vectorization_mode="sync"))
    with pytest.raises(ValueError, match="no spec"):
        A3C("MlpPolicy", CountingEnv(), n_workers=2)

    def multibinary():
        env = CountingEnv()
        env.action_space = gym.spaces.MultiBinary(3)
        return env

    with pytest.raises(SpaceError, match="Box or Discrete"):
        A3C("MlpPolicy", multibinary)
    model = A3C("MlpPolicy", NaNRewardAt3, **SMALL)
    with pytest.raises(NonFiniteError, match="non-finite observation or reward"):
        model.learn(50)  # raised in a worker thread, re-raised here
    with pytest.raises(HyperparameterError, match="total_timesteps"):
        model.learn(-1)


def test_cli_offers_a3c():
    from polyak.cli import make_parser

    assert make_parser().parse_args(["train", "a3c", "--env", "CartPole-v1"]).algo == "a3c"
    assert polyak.ALGORITHMS["a3c"] is A3C
