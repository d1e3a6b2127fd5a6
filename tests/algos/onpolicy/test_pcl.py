"""PCL and Unified PCL: the d-step soft consistency error against a hand computation (segments cut by a
termination, a time limit and the rollout's end), the gradient split, Unified PCL's V and pi from Q, input
checks, bit-exact resume, and learning on the deterministic chain (jitted loop, vmapped seeds); CartPole
learning is marked long."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.algos.onpolicy.consistency import PCLConfig, Trajectories, consistency_errors
from polyak.algos.onpolicy.pcl import PCL, PCLAgent
from polyak.algos.onpolicy.unified_pcl import (
    UnifiedPCL,
    UnifiedPCLAgent,
    UnifiedPCLConfig,
    soft_value_and_log_policy,
)
from polyak.core.config import HyperparameterError
from polyak.envs.spaces import SpaceError
from polyak.runs.seeds import train_seeds
from polyak.runs.zoo import tuned_hyperparameters


def test_consistency_error_by_hand():
    """T = 5 rows, two envs, d = 3. Env 0 terminates at row 1; env 1 hits a time limit at row 2.
    Rows 3 and 4 are cut by the rollout's end (bootstrap from V(s'_4))."""
    g, a, d = 0.9, 0.1, 3
    r = np.array([[1.0, 0.5], [2.0, -1.0], [0.0, 3.0], [-1.0, 1.0], [4.0, 2.0]], np.float32)
    lp = np.array([[-0.1, -0.2], [-0.3, -0.4], [-0.5, -0.6], [-0.7, -0.8], [-0.9, -1.0]], np.float32)
    v = np.array([[5.0, 4.0], [3.0, 2.0], [1.0, 0.0], [-1.0, -2.0], [6.0, 7.0]], np.float32)
    v_next = np.array([[3.0, 2.0], [99.0, 0.0], [-1.0, 8.0], [6.0, 7.0], [9.0, 10.0]], np.float32)
    term = np.zeros((5, 2), np.float32)
    term[1, 0] = 1.0  # V(s'_1) of env 0 is terminal: its 99 must not appear
    end = term.copy()
    end[2, 1] = 1.0  # env 1: time limit at row 2, bootstrap from V(s'_2) = 8 (the true final observation)
    x = r - a * lp  # r - alpha log pi
    hand = np.array([
        # env 0
        [-v[0, 0] + x[0, 0] + g * x[1, 0],  # rows 0, 1; terminated: no bootstrap
         # env 1
         -v[0, 1] + x[0, 1] + g * x[1, 1] + g**2 * x[2, 1] + g**3 * v_next[2, 1]],  # rows 0-2, d = 3 steps
        [-v[1, 0] + x[1, 0],  # row 1 alone: the termination
         -v[1, 1] + x[1, 1] + g * x[2, 1] + g**2 * v_next[2, 1]],  # rows 1, 2: time limit after 2 steps
        [-v[2, 0] + x[2, 0] + g * x[3, 0] + g**2 * x[4, 0] + g**3 * v_next[4, 0],  # rows 2-4: the rollout's end
         -v[2, 1] + x[2, 1] + g * v_next[2, 1]],  # the truncated row alone
        [-v[3, 0] + x[3, 0] + g * x[4, 0] + g**2 * v_next[4, 0],  # cut by the rollout's end after 2 steps
         -v[3, 1] + x[3, 1] + g * x[4, 1] + g**2 * v_next[4, 1]],
        [-v[4, 0] + x[4, 0] + g * v_next[4, 0], -v[4, 1] + x[4, 1] + g * v_next[4, 1]],
    ])
    c = jax.jit(consistency_errors, static_argnums=(6, 7, 8))(*map(jnp.asarray, (lp, v, v_next, r, term, end)), d, g, a)
    np.testing.assert_allclose(c, hand, rtol=1e-5, atol=1e-5)
    # d = 1: the one-step soft TD error, -V(s) + r - alpha log pi + gamma (1 - terminated) V(s')
    arrays = map(jnp.asarray, (lp, v, v_next, r, term, end))
    c1 = jax.jit(consistency_errors, static_argnums=(6, 7, 8))(*arrays, 1, g, a)
    np.testing.assert_allclose(c1, -v + x + g * (1 - term) * v_next, rtol=1e-5, atol=1e-5)


def _trajectories(key, T=6, B=3, obs_dim=4, n_actions=2):
    ks = jax.random.split(key, 4)
    end = jnp.zeros((T, B)).at[2, 0].set(1.0).at[4, 1].set(1.0)
    return Trajectories(jax.random.normal(ks[0], (T, B, obs_dim)),
                        jax.random.randint(ks[1], (T, B, 1), 0, n_actions).astype(jnp.float32),
                        jax.random.normal(ks[2], (T, B)), jax.random.normal(ks[3], (T, B, obs_dim)),
                        jnp.zeros((T, B)).at[2, 0].set(1.0), end, jnp.ones((T, B)).at[5, 2].set(0.0))


def test_loss_is_half_mean_squared_error_and_its_gradient_splits():
    """The reported loss is 1/2 mean C^2 over weighted rows; with eta_v = eta_pi the surrogate's gradient is
    that of 1/2 mean C^2 (PCL always; Unified PCL, whose pi and V share Q); eta_v = 3 eta_pi triples the V part."""
    x = _trajectories(jax.random.PRNGKey(0))
    small = dict(policy_hidden=(8,), value_hidden=(8,), d=3, alpha=0.3, gamma=0.9, learning_rate=1e-3)
    for agent in (PCLAgent(PCLConfig.from_kwargs(small), 4, 1, 2),
                  UnifiedPCLAgent(UnifiedPCLConfig.from_kwargs(dict(small, value_learning_rate=1e-3)), 4, 1, 2)):
        params = agent.init(jax.random.PRNGKey(1)).params

        def plain(p, agent=agent):
            lp, v, nv = agent.log_pi_and_values(p, x.obs, x.action, x.next_obs)
            c = consistency_errors(lp, v, nv, x.reward, x.terminated, x.episode_end, 3, 0.9, 0.3)
            return 0.5 * jnp.sum(x.weight * c**2) / x.weight.sum()

        (surrogate, metrics), grads = jax.jit(jax.value_and_grad(agent.consistency_loss, has_aux=True))(params, x)
        np.testing.assert_allclose(metrics["consistency_loss"], jax.jit(plain)(params), rtol=1e-6)
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(jax.jit(jax.grad(plain))(params))):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)
    # Unified PCL, eta_v = 3 eta_pi: gradient = g(log pi part) + 3 g(V part), and g_pi + g_v = the plain gradient
    three = UnifiedPCLAgent(UnifiedPCLConfig.from_kwargs(dict(small, value_learning_rate=3e-3)), 4, 1, 2)
    one = UnifiedPCLAgent(UnifiedPCLConfig.from_kwargs(dict(small, value_learning_rate=1e-3)), 4, 1, 2)
    g3 = jax.jit(jax.grad(lambda p: three.consistency_loss(p, x)[0]))(params)
    g1 = jax.jit(jax.grad(lambda p: one.consistency_loss(p, x)[0]))(params)
    g_v = jax.tree.map(lambda a, b: (a - b) / 2, g3, g1)  # the V part
    for a, b, c in zip(jax.tree.leaves(g1), jax.tree.leaves(g_v), jax.tree.leaves(g3)):
        np.testing.assert_allclose(c, a - b + 3 * b, rtol=1e-4, atol=1e-6)
    assert max(float(jnp.abs(b).max()) for b in jax.tree.leaves(g_v)) > 1e-3  # the V part is not zero


def test_unified_pcl_value_and_policy_from_q():
    q = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, -1.0]], np.float32)
    for alpha in (0.5, 2.0):
        v, log_pi = soft_value_and_log_policy(jnp.asarray(q), alpha)
        v_hand = alpha * np.log(np.exp(q / alpha).sum(axis=1))
        np.testing.assert_allclose(v, v_hand, rtol=1e-6)
        np.testing.assert_allclose(np.exp(log_pi), np.exp((q - v_hand[:, None]) / alpha), rtol=1e-5)
        np.testing.assert_allclose(np.exp(log_pi).sum(axis=1), 1.0, rtol=1e-6)
    v, _ = soft_value_and_log_policy(jnp.asarray(q), 1e-3)  # alpha -> 0: the hard max
    np.testing.assert_allclose(v, [3.0, 0.0], atol=1e-2)
    # the agent acts with this pi and reports this V
    agent = UnifiedPCLAgent(UnifiedPCLConfig.from_kwargs(dict(policy_hidden=(8,), alpha=0.5)), 4, 1, 3)
    params = agent.init(jax.random.PRNGKey(0)).params
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 4))
    q_net = agent.q_net.apply(params["q"], obs)
    v, log_pi = soft_value_and_log_policy(q_net, 0.5)
    np.testing.assert_allclose(agent.value(params, obs), v, rtol=1e-5)
    np.testing.assert_allclose(jax.nn.log_softmax(agent.dist(params, obs)), log_pi, rtol=1e-5, atol=1e-6)


def test_bad_input_is_named():
    with pytest.raises(SpaceError, match="Discrete"):
        UnifiedPCL("MlpPolicy", "Pendulum-v1")
    for bad in ({"d": 0}, {"alpha": -0.1}, {"replay_batch": 0}, {"priority_temperature": -1.0}, {"ent_coef": 0.1},
                {"value_learning_rate": 0.0}):
        with pytest.raises(HyperparameterError, match=next(iter(bad))):
            PCLConfig.from_kwargs(bad)
    with pytest.raises(HyperparameterError, match="alpha"):
        UnifiedPCLConfig.from_kwargs({"alpha": 0.0})
    with pytest.raises(HyperparameterError, match="known"):
        PCLConfig.from_kwargs({"rollout": 5})
    import gymnasium as gym
    venv = gym.make_vec("polyak/Chain-v0", num_envs=4, vectorization_mode="vector_entry_point")
    with pytest.raises(HyperparameterError, match="replay_capacity"):
        PCL("MlpPolicy", venv, replay_capacity=2)


@pytest.mark.parametrize("config_cls", [PCLConfig, UnifiedPCLConfig])
def test_unused_on_policy_settings_are_refused_unless_left_at_their_defaults(config_cls):
    """gae_lambda, vf_coef and normalize_advantage have no place in C: a set value must fail, not go unused."""
    for name, value in (("gae_lambda", 0.9), ("vf_coef", 1.0), ("normalize_advantage", False)):
        with pytest.raises(HyperparameterError, match=f"{name} is not used by path consistency.*got {value}"):
            config_cls.from_kwargs({name: value})
    # the defaults (which every saved config holds) still load
    config_cls.from_kwargs({"gae_lambda": 0.95, "vf_coef": 0.5, "normalize_advantage": True})


def test_resume_is_bit_exact(tmp_path):
    """Save mid-rollout and mid-episode with episodes in the replay, load, continue: the same learner."""
    small = dict(policy_kwargs={"net_arch": [16]}, n_steps=8, d=4, replay_capacity=8, max_episode_len=40,
                 replay_batch=2, replay_start=1)
    k, total = 140, 300
    straight = PCL("MlpPolicy", "CartPole-v1", seed=3, **small).learn(total)
    first = PCL("MlpPolicy", "CartPole-v1", seed=3, **small).learn(k)
    assert int(first.learner.agent.replay.length.astype(bool).sum()) >= 2  # replay already in use at the save
    resumed = PCL.load(first.save(tmp_path / "k.polyak"), env="CartPole-v1")
    resumed.learn(total - k)
    assert resumed.num_timesteps == straight.num_timesteps == total
    assert int(straight.learner.agent.n_updates) > total // 8  # replay steps ran too
    for a, b in zip(jax.tree.leaves(resumed.learner), jax.tree.leaves(straight.learner)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _learn(algo, env_id, steps, seeds, tmp_path):
    hp = tuned_hyperparameters(algo, env_id)
    n_envs = int(hp.pop("n_envs", 1))
    dirs = train_seeds(algo, env_id, seeds, steps, hp, n_envs=n_envs, run_dir=tmp_path, chunk=512,
                       eval_episodes=10, progress_bar=False)
    returns = [json.loads((d / "eval.json").read_text())["eval_return_mean"] for d in dirs]
    print(f"\n{algo} {env_id} {steps} steps, per-seed eval returns: {returns}")
    return returns


@pytest.mark.slow
def test_pcl_solves_the_chain(tmp_path):
    """Greedy policy reaches the goal (return 1) for at least 2 of 3 seeds within 8192 steps (zoo settings)."""
    returns = _learn("pcl", "polyak/Chain-v0", 8192, [0, 1, 2], tmp_path)
    assert sum(r >= 1.0 for r in returns) >= 2, returns


@pytest.mark.long
@pytest.mark.parametrize("algo,steps", [("unified_pcl", 16384), ("pcl", 100_352), ("unified_pcl", 100_352)])
def test_learns_long(algo, steps, tmp_path):
    """Unified PCL on the chain; PCL and Unified PCL on CartPole (>= 475 for 2 of 3 seeds)."""
    env_id, threshold = ("polyak/Chain-v0", 1.0) if steps == 16384 else ("gymnax/CartPole-v1", 475.0)
    returns = _learn(algo, env_id, steps, [0, 1, 2], tmp_path)
    assert sum(r >= threshold for r in returns) >= 2, returns
