"""On-policy machinery: GAE and reward-to-go on hand-computed rollouts, the rollout the host loop
records (truncation vs termination), PPO's clip cases, REINFORCE's baselines, save/resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.algos.onpolicy.a2c import A2C
from polyak.algos.onpolicy.ppo import PPO, clipped_surrogate
from polyak.algos.onpolicy.reinforce import REINFORCE, baseline_values
from polyak.core.config import HyperparameterError
from polyak.core.returns import complete_episodes, gae_advantages, reward_to_go
from polyak.envs.spaces import SpaceError
from tests.fake_envs import CountingEnv, DiscreteActionEnv

# Rows 0-1: an episode that terminates at row 1; rows 2-3: one cut by a time limit at row 3.
R = jnp.array([[1.0], [2.0], [3.0], [4.0]])
V = jnp.array([[0.5], [1.0], [1.5], [2.0]])
V_NEXT = jnp.array([[1.0], [9.0], [2.0], [7.0]])  # 9.0: V of a terminal state, must be ignored
TERM = jnp.array([[0.0], [1.0], [0.0], [0.0]])
END = jnp.array([[0.0], [1.0], [0.0], [1.0]])


def test_gae_matches_hand_computation():
    adv, ret = gae_advantages(R, V, V_NEXT, TERM, END, gamma=0.9, lam=0.5)
    # delta = r + 0.9 (1 - term) V' - V = [1.4, 1.0, 3.3, 8.3]; A_t = delta_t + 0.45 (1 - end_t) A_{t+1}
    np.testing.assert_allclose(adv[:, 0], [1.4 + 0.45 * 1.0, 1.0, 3.3 + 0.45 * 8.3, 8.3], rtol=1e-6)
    np.testing.assert_allclose(ret, adv + V, rtol=1e-6)
    # lambda = 1: Monte-Carlo returns bootstrapped at the time limit only; lambda = 0: one-step TD
    adv1, ret1 = gae_advantages(R, V, V_NEXT, TERM, END, gamma=0.9, lam=1.0)
    np.testing.assert_allclose(ret1[:, 0], [1 + 0.9 * 2, 2, 3 + 0.9 * (4 + 0.9 * 7), 4 + 0.9 * 7], rtol=1e-6)
    adv0, _ = gae_advantages(R, V, V_NEXT, TERM, END, gamma=0.9, lam=0.0)
    np.testing.assert_allclose(adv0[:, 0], [1.4, 1.0, 3.3, 8.3], rtol=1e-6)


def test_reward_to_go_and_complete_episodes():
    np.testing.assert_allclose(reward_to_go(R, TERM, END, 0.9)[:, 0], [2.8, 2.0, 6.6, 4.0], rtol=1e-6)
    np.testing.assert_allclose(reward_to_go(R, TERM, END, 0.9, V_NEXT)[:, 0], [2.8, 2.0, 12.27, 10.3], rtol=1e-6)
    open_end = jnp.array([[0.0], [1.0], [0.0], [0.0]])  # the second episode continues past the rollout
    np.testing.assert_allclose(reward_to_go(R, TERM, open_end, 0.9, V_NEXT)[:, 0], [2.8, 2.0, 12.27, 10.3], rtol=1e-6)
    np.testing.assert_allclose(reward_to_go(R, TERM, open_end, 0.9)[:, 0], [2.8, 2.0, 6.6, 4.0], rtol=1e-6)
    np.testing.assert_array_equal(complete_episodes(open_end)[:, 0], [True, True, False, False])
    np.testing.assert_array_equal(complete_episodes(END)[:, 0], [True, True, True, True])


@pytest.mark.parametrize("advantage,ratio,expected_grad", [
    (+1.0, 1.5, 0.0),   # A > 0, ratio above 1 + eps: clipped, no push further up
    (+1.0, 0.5, 1.0),   # A > 0, ratio below 1 - eps: unclipped term is the min, gradient A
    (-1.0, 0.5, 0.0),   # A < 0, ratio below 1 - eps: clipped, no push further down
    (-1.0, 1.5, -1.0),  # A < 0, ratio above 1 + eps: unclipped term is the min, gradient A
    (+1.0, 1.1, 1.0),   # inside the clip range: gradient A either way
    (-1.0, 0.9, -1.0),
])
def test_ppo_clip_cases(advantage, ratio, expected_grad):
    grad = jax.grad(lambda r: clipped_surrogate(r, jnp.float32(advantage), 0.2, 0.2))(jnp.float32(ratio))
    assert float(grad) == expected_grad


def test_asymmetric_clip_moves_only_the_upper_bound():
    surrogate = lambda r, a: clipped_surrogate(r, jnp.float32(a), 0.2, 0.28)  # noqa: E731  (DAPO's clip-higher)
    assert float(jax.grad(surrogate)(jnp.float32(1.25), 1.0)) == 1.0  # a symmetric 0.2 clip would stop here
    assert float(jax.grad(surrogate)(jnp.float32(1.30), 1.0)) == 0.0
    assert float(jax.grad(surrogate)(jnp.float32(0.75), -1.0)) == 0.0  # lower bound still 1 - 0.2


def test_reinforce_baselines_by_hand():
    returns = jnp.array([[4.0, 2.0], [3.0, 1.0], [2.0, 0.0]])
    weight = jnp.array([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # the last row of env 1 has no known return
    t = jnp.array([[0.0, 5.0], [1.0, 0.0], [2.0, 1.0]])
    v = jnp.full((3, 2), 7.0)
    np.testing.assert_allclose(baseline_values("none", returns, weight, t, v, 10), 0.0)
    # leave-one-out means over the weighted rows (sum 12, count 5): (12 - G) / 4, or 12 / 5 for a row of weight 0
    np.testing.assert_allclose(baseline_values("constant", returns, weight, t, v, 10),
                               [[2.0, 2.5], [2.25, 2.75], [2.5, 2.4]])
    # time 0: rows (0,0) G=4 and (1,1) G=1 -> each gets the other's return; time 1: only (1,0) [(2,1) has
    # weight 0 and gets (1,0)'s 3]; times 2 and 5: a single row, no other return -> 0
    np.testing.assert_allclose(baseline_values("time", returns, weight, t, v, 10),
                               [[1.0, 0.0], [0.0, 4.0], [0.0, 3.0]])
    np.testing.assert_allclose(baseline_values("state", returns, weight, t, v, 10), v)


@pytest.mark.parametrize("terminate", [True, False])
def test_rollout_records_true_final_observation(terminate):
    """Episodes of 3 steps: row 2 holds the final observation as s', the next row starts the new episode."""
    model = PPO("MlpPolicy", CountingEnv(length=3, terminate=terminate), seed=0, n_steps=8, batch_size=4,
                normalize_obs=False)
    model.learn(7)  # 7 of 8 rows filled: no update yet
    ro = jax.device_get(model.learner.rollout)
    np.testing.assert_array_equal(ro.obs[:7, 0], [[0, 100], [1, 100], [2, 100], [0, 101], [1, 101], [2, 101], [0, 102]])
    np.testing.assert_array_equal(ro.next_obs[:6, 0], [[1, 100], [2, 100], [3, 100], [1, 101], [2, 101], [3, 101]])
    np.testing.assert_array_equal(ro.episode_end[:7, 0], [0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(ro.terminated[:7, 0], [0, 0, float(terminate), 0, 0, float(terminate), 0])
    np.testing.assert_array_equal(ro.reward[:7, 0], [1, 2, 3, 1, 2, 3, 1])
    np.testing.assert_array_equal(ro.time_in_episode[:7, 0], [0, 1, 2, 0, 1, 2, 0])
    # the recorded log-probabilities are those of the stored (obs, action) under the current policy
    agent = model.agent
    logp = agent.distribution.log_prob(agent.dist(model.learner.agent.params, ro.obs[:7]), ro.action[:7])
    np.testing.assert_allclose(logp, ro.log_prob[:7], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("algo,env,kwargs", [
    (PPO, "CartPole-v1", {"n_steps": 64, "batch_size": 32, "n_epochs": 2}),
    (PPO, "Pendulum-v1", {"n_steps": 64, "batch_size": 32, "n_epochs": 2, "normalize_reward": True}),
    (A2C, "CartPole-v1", {}),
    (REINFORCE, "CartPole-v1", {"n_steps": 64, "baseline": "time"}),
])
def test_resume_is_bit_exact(tmp_path, algo, env, kwargs):
    """Save mid-rollout and mid-episode, load, continue: the same parameters as never stopping."""
    small = dict(policy_kwargs={"net_arch": [16]}, **kwargs)
    k, total = 150, 300
    straight = algo("MlpPolicy", env, seed=5, **small).learn(total)
    first = algo("MlpPolicy", env, seed=5, **small).learn(k)
    path = algo.load(first.save(tmp_path / "k.polyak")).save(tmp_path / "k2.polyak")  # load+save keeps the point
    resumed = algo.load(path, env=env)
    resumed.learn(total - k)
    assert resumed.num_timesteps == straight.num_timesteps == total
    for a, b in zip(jax.tree.leaves(resumed.learner), jax.tree.leaves(straight.learner)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    obs = np.zeros(resumed.agent.obs_dim, np.float32)
    assert np.array_equal(resumed.predict(obs)[0], straight.predict(obs)[0])


class StrictDiscreteEnv(DiscreteActionEnv):
    def step(self, action):
        assert isinstance(action, (int, np.integer)) and 0 <= action < 3, action
        self.t += 1
        return self._obs(), 1.0, self.t >= self.length, False, {}


def test_discrete_and_box_actions_reach_the_env():
    model = PPO("MlpPolicy", StrictDiscreteEnv(), seed=0, n_steps=4, batch_size=4)
    action, _ = model.predict(np.zeros(2, np.float32))
    assert action.dtype.kind == "i" and 0 <= int(action) < 3
    model.learn(8)  # DiscreteActionEnv asserts every action is in its space
    box = PPO("MlpPolicy", CountingEnv(), seed=0, n_steps=4, batch_size=4)
    box.learn(8)  # Gaussian samples are clipped into [-2, 2] by the adapter (CountingEnv asserts it)


def test_bad_input_is_named():
    with pytest.raises(HyperparameterError, match="baseline must be one of"):
        REINFORCE("MlpPolicy", "CartPole-v1", baseline="average")
    with pytest.raises(HyperparameterError, match="clip_range_low"):
        PPO("MlpPolicy", "CartPole-v1", clip_range_low=1.5)
    with pytest.raises(HyperparameterError, match="unknown hyperparameter"):
        A2C("MlpPolicy", "CartPole-v1", n_step=5)
    import gymnasium as gym

    with pytest.raises(SpaceError, match="Box or Discrete"):
        env = CountingEnv()
        env.action_space = gym.spaces.MultiBinary(3)
        PPO("MlpPolicy", env)
    with pytest.raises(ValueError, match="SAME_STEP"):
        PPO("MlpPolicy", gym.make_vec("CartPole-v1", 2, vectorization_mode="sync"))


def test_kl_penalty_coefficient_adapts():
    model = PPO("MlpPolicy", "CartPole-v1", seed=0, n_steps=64, batch_size=64, n_epochs=4, loss="kl_penalty",
                kl_target=1e-6, learning_rate=1e-2, policy_kwargs={"net_arch": [16]})
    model.learn(64)
    assert float(model.learner.metrics["approx_kl"]) > 1.5e-6
    assert float(model.learner.agent.kl_coef) == 2.0  # KL above 1.5 x target: beta doubled


def test_host_collect_call_equals_collect_step():
    """The host loop's collect call leaves the agent state and metrics out of the call (fewer arrays to
    dispatch): it must compute exactly collect_step. learn() compiles the update in a background thread
    and joins it before returning."""
    import threading

    model = PPO("MlpPolicy", CountingEnv(length=3), seed=0, n_steps=4, batch_size=4, n_epochs=1,
                normalize_reward=True, policy_kwargs={"net_arch": [8]})
    model.learn(6)  # one update, then two rows into the next rollout
    assert not any(t.name == "polyak-compile-ahead" for t in threading.enumerate())
    packed = np.linspace(-1.0, 1.0, model.spec.columns.width, dtype=np.float32)[None]
    packed[0, model.spec.columns.slices["episode_start"]] = 0.0
    copy = lambda: jax.tree.map(jnp.copy, model.learner)  # noqa: E731  (both calls donate their learner)
    full, a = model._fns["collect"](copy(), packed)
    learner = copy()
    light, b = model._fns["host_collect"](learner.agent.params, learner._replace(agent=None, metrics=None), packed)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert light.agent is None and light.metrics is None and int(light.row) == int(full.row) == 3
    for x, y in zip(jax.tree.leaves(full._replace(agent=None, metrics=None)), jax.tree.leaves(light)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
