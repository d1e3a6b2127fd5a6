"""AWR: the weight function on hand values, the replay ring (write order, overwrite, zero weight and no
influence of unfilled slots), TD(lambda) targets per stored rollout, and bit-exact save/resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.algos.onpolicy.awr import AWR, AWRAgent, AWRConfig, awr_weights, rescale_value_head, ring_write
from polyak.algos.onpolicy.learner import Rollout
from polyak.core.config import HyperparameterError
from polyak.core.returns import gae_advantages

T, N, OBS, ACT = 4, 2, 3, 1  # rollout steps, envs, obs dim, action dim


def small_agent(**kwargs) -> AWRAgent:
    cfg = AWRConfig.from_kwargs({**dict(n_steps=T, buffer_rollouts=3, batch_size=8, value_steps=5, policy_steps=5,
                                        policy_hidden=(8,), value_hidden=(8,)), **kwargs})
    return AWRAgent(cfg, OBS, ACT, 0, N)


def make_rollout(key, fill: float | None = None) -> Rollout:
    """A random rollout, or one whose every entry is `fill`; episodes end at row 1 (termination) and 3."""
    ks = jax.random.split(key, 5)
    if fill is not None:
        f = lambda *shape: jnp.full(shape, fill, jnp.float32)  # noqa: E731
        return Rollout(f(T, N, OBS), f(T, N, ACT), f(T, N), f(T, N), f(T, N, OBS), f(T, N), f(T, N), f(T, N))
    end = jnp.array([[0.0], [1.0], [0.0], [1.0]]) * jnp.ones((1, N))
    term = jnp.array([[0.0], [1.0], [0.0], [0.0]]) * jnp.ones((1, N))
    return Rollout(jax.random.normal(ks[0], (T, N, OBS)), jax.random.normal(ks[1], (T, N, ACT)),
                   jnp.zeros((T, N)), jax.random.normal(ks[2], (T, N)), jax.random.normal(ks[3], (T, N, OBS)),
                   term, end, jnp.zeros((T, N)))


def test_weights_by_hand():
    adv = jnp.array([0.0, 1.0, -2.0, 5.0, 100.0])
    valid = jnp.ones(5, bool)
    # beta = 1: exp(0) = 1, exp(1) = e, exp(-2), exp(5) = 148.4 -> clipped to 20, exp(100) = inf -> 20
    np.testing.assert_allclose(awr_weights(adv, valid, 1.0, 20.0), [1.0, np.e, np.exp(-2.0), 20.0, 20.0], rtol=1e-6)
    # beta = 0.5 doubles the exponent: exp(2) = 7.39 stays, exp(-4); w_max = 3 clips exp(2)
    np.testing.assert_allclose(awr_weights(adv[:3], valid[:3], 0.5, 20.0), [1.0, np.exp(2.0), np.exp(-4.0)], rtol=1e-6)
    np.testing.assert_allclose(awr_weights(adv[:3], valid[:3], 0.5, 3.0), [1.0, 3.0, np.exp(-4.0)], rtol=1e-6)
    # invalid rows: exactly 0, even where A is NaN or huge
    w = awr_weights(jnp.array([1.0, jnp.nan, 1e30]), jnp.array([True, False, False]), 1.0, 20.0)
    np.testing.assert_array_equal(np.asarray(w), [np.float32(np.e), 0.0, 0.0])


def test_ring_write_order_and_overwrite():
    agent = small_agent()
    state = agent.init(jax.random.PRNGKey(0))
    assert state.ring.obs.shape == (3, T, N, OBS) and state.ring.action.shape == (3, T, N, ACT)
    np.testing.assert_array_equal(state.filled, [0, 0, 0])
    for i in range(1, 5):  # rollouts filled with 1, 2, 3, 4: the fourth overwrites slot 0
        state = ring_write(state, make_rollout(jax.random.PRNGKey(i), fill=float(i)))
        if i == 1:
            np.testing.assert_array_equal(state.filled, [1, 0, 0])
            assert int(state.slot) == 1
    np.testing.assert_array_equal(state.filled, [1, 1, 1])
    assert int(state.slot) == 1
    for leaf in state.ring:  # slot 0: the newest rollout (4), slots 1 and 2: the two before it
        for slot, value in enumerate([4.0, 2.0, 3.0]):
            np.testing.assert_array_equal(np.asarray(leaf[slot]), value)


def test_targets_are_gae_per_stored_rollout():
    """R^lambda of each slot is GAE of that rollout alone with the current V (no leak between slots)."""
    agent = small_agent(gamma=0.9, gae_lambda=0.5)
    state = agent.init(jax.random.PRNGKey(0))
    rollouts = [make_rollout(jax.random.PRNGKey(i)) for i in range(2)]
    for r in rollouts:
        state = ring_write(state, r)
    adv, target, value = agent.lambda_returns(state.params, state.ring)
    for k, r in enumerate(rollouts):
        v, v_next = agent.value(state.params, r.obs), agent.value(state.params, r.next_obs)
        a, ret = gae_advantages(r.reward, v, v_next, r.terminated, r.episode_end, 0.9, 0.5)
        np.testing.assert_allclose(adv[k], a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(target[k], ret, rtol=1e-5, atol=1e-6)


def test_unfilled_slots_get_zero_weight_and_do_not_matter():
    agent = small_agent()
    state = agent.init(jax.random.PRNGKey(0))
    state = ring_write(state, make_rollout(jax.random.PRNGKey(1)))
    w, adv, valid = agent.weights(state.params, state)
    assert np.all(np.asarray(w[0]) > 0) and np.all(np.asarray(valid[0]))
    np.testing.assert_array_equal(np.asarray(w[1:]), 0.0)
    np.testing.assert_array_equal(np.asarray(valid[1:]), False)
    # normalised advantages: mean 0 and std 1 over the filled rows only
    np.testing.assert_allclose(float(adv[0].mean()), 0.0, atol=1e-5)
    np.testing.assert_allclose(float(adv[0].std()), 1.0, rtol=1e-3)
    # the update is the same whether the unfilled slots hold zeros or garbage (NaN, huge values)
    new, update = make_rollout(jax.random.PRNGKey(2)), jax.jit(agent.update)
    clean, _ = update(state, new, jax.random.PRNGKey(3))
    junk_ring = jax.tree.map(lambda r, j: r.at[1:].set(j), state.ring, make_rollout(jax.random.PRNGKey(9), jnp.nan))
    junk_ring = junk_ring._replace(reward=junk_ring.reward.at[2].set(1e30))
    dirty, _ = update(state._replace(ring=junk_ring), new, jax.random.PRNGKey(3))
    for a, b in zip(jax.tree.leaves(clean.params), jax.tree.leaves(dirty.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_update_raises_weighted_log_likelihood_and_fits_value():
    """One update moves the policy towards the high-weight actions and V towards the targets."""
    agent = small_agent(value_steps=200, policy_steps=200, learning_rate=1e-2, value_learning_rate=1e-2)
    state = agent.init(jax.random.PRNGKey(0))
    state = ring_write(state, make_rollout(jax.random.PRNGKey(1)))
    rollout = make_rollout(jax.random.PRNGKey(2))
    w_before, _, _ = agent.weights(state.params, ring_write(state, rollout))
    new, metrics = agent.update(state, rollout, jax.random.PRNGKey(3))
    ring = new.ring

    def weighted_log_lik(params):
        log_p = agent.distribution.log_prob(agent.dist(params, ring.obs), ring.action)
        return float((w_before * log_p).sum() / w_before.sum())

    assert weighted_log_lik(new.params) > weighted_log_lik(state.params) + 0.1
    _, target, _ = agent.lambda_returns(state.params, ring)
    value_error = lambda p: float(jnp.mean((agent.value(p, ring.obs[:2]) - target[:2]) ** 2))  # noqa: E731
    assert value_error(new.params) < 0.8 * value_error(state.params)  # measured 0.57; 1.0 without value steps
    assert float(metrics["replay_fill"]) == pytest.approx(2 / 3)


def test_fixed_std_stays_and_bad_hyperparameters_raise():
    agent = small_agent(learn_std=False, log_std_init=-1.0)
    state = ring_write(agent.init(jax.random.PRNGKey(0)), make_rollout(jax.random.PRNGKey(1)))
    new, _ = agent.update(state, make_rollout(jax.random.PRNGKey(2)), jax.random.PRNGKey(3))
    np.testing.assert_array_equal(np.asarray(new.params["log_std"]), [-1.0])
    for bad in ({"temperature": 0.0}, {"weight_clip": -1.0}, {"buffer_rollouts": 0}, {"value_learning_rate": 0.0}):
        with pytest.raises(HyperparameterError, match=next(iter(bad))):
            AWRConfig.from_kwargs(bad)


@pytest.mark.parametrize("env,kwargs", [
    ("Pendulum-v1", {"n_steps": 64, "buffer_rollouts": 2}),  # ring full at the save, overwritten after it
    ("CartPole-v1", {"n_steps": 32, "buffer_rollouts": 16}),  # discrete actions, ring still filling
])
def test_resume_is_bit_exact(tmp_path, env, kwargs):
    """Save mid-rollout and mid-episode, load, continue: the same parameters and ring as never stopping."""
    small = dict(policy_kwargs={"net_arch": [16]}, batch_size=16, value_steps=3, policy_steps=3, **kwargs)
    k, total = 150, 300
    straight = AWR("MlpPolicy", env, seed=5, **small).learn(total)
    first = AWR("MlpPolicy", env, seed=5, **small).learn(k)
    path = AWR.load(first.save(tmp_path / "k.polyak")).save(tmp_path / "k2.polyak")  # load+save keeps the point
    resumed = AWR.load(path, env=env)
    resumed.learn(total - k)
    assert resumed.num_timesteps == straight.num_timesteps == total
    assert int(straight.learner.agent.n_updates) == total // kwargs["n_steps"]
    for a, b in zip(jax.tree.leaves(resumed.learner), jax.tree.leaves(straight.learner)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    obs = np.zeros(resumed.agent.obs_dim, np.float32)
    assert np.array_equal(resumed.predict(obs)[0], straight.predict(obs)[0])


def test_value_target_standardisation_preserves_v_and_standardises_f():
    """Changing (mu, sigma) rescales the last layer so that V is unchanged; after an update f's targets
    are standardised: (mu, sigma) are the mean and std of the filled rows' TD(lambda) targets."""
    agent = small_agent(value_steps=0, policy_steps=0)
    state = ring_write(agent.init(jax.random.PRNGKey(0)), make_rollout(jax.random.PRNGKey(1)))
    obs = jax.random.normal(jax.random.PRNGKey(4), (5, OBS))
    old, new = {"mean": jnp.float32(0.0), "std": jnp.float32(1.0)}, {"mean": jnp.float32(-7.0), "std": jnp.float32(4.0)}
    params = dict(state.params, value=rescale_value_head(state.params["value"], old, new), value_norm=new)
    np.testing.assert_allclose(agent.value(params, obs), agent.value(state.params, obs), rtol=1e-5, atol=1e-5)
    reward_scale = 100.0  # large rewards: mu and sigma follow them
    state = state._replace(ring=state.ring._replace(reward=state.ring.reward * reward_scale))
    new_state, _ = agent.update(state, make_rollout(jax.random.PRNGKey(2))._replace(
        reward=make_rollout(jax.random.PRNGKey(2)).reward * reward_scale), jax.random.PRNGKey(3))
    _, target, _ = agent.lambda_returns(state.params, new_state.ring)  # with V before the update (no value steps)
    norm = new_state.params["value_norm"]
    np.testing.assert_allclose(float(norm["mean"]), float(target[:2].mean()), rtol=1e-4)
    np.testing.assert_allclose(float(norm["std"]), float(target[:2].std()), rtol=1e-4)
    np.testing.assert_allclose(agent.value(new_state.params, obs), agent.value(state.params, obs), rtol=1e-4, atol=1e-3)
