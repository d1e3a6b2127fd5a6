"""The gradient phase on its own: `update_phase` over a fixed replay buffer, as an offline loop runs it."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import polyak
from polyak.algos.offpolicy.learner import init_learner, train_step, update_phase
from polyak.core.monitor import observe_rewards
from polyak.core.types import Transition
from polyak.data.buffer import buffer_add
from tests.fake_envs import CountingEnv

N_ROWS, N_GRAD = 40, 3


def fixed_rows(obs_dim: int, act_dim: int) -> Transition:
    """Deterministic transitions (no environment): what a dataset would hold."""
    t = np.arange(N_ROWS, dtype=np.float32)
    obs = np.stack([np.sin(t * (i + 1)) for i in range(obs_dim)], axis=1)
    next_obs = np.stack([np.sin((t + 1) * (i + 1)) for i in range(obs_dim)], axis=1)
    action = np.tile(np.cos(t)[:, None], (1, act_dim)) * 0.9
    return Transition(jnp.asarray(obs), jnp.asarray(action), jnp.asarray(-np.abs(np.sin(t))),
                      jnp.asarray(next_obs), jnp.asarray((t % 10 == 9).astype(np.float32)))


def learner_on_a_fixed_buffer(spec):
    learner = init_learner(spec, jax.random.PRNGKey(7), with_buffer=True)
    rows = fixed_rows(spec.obs_dim, spec.act_dim)
    buffer = buffer_add(learner.buffer, rows, jnp.ones(N_ROWS, bool))
    return learner._replace(buffer=buffer, monitor=observe_rewards(learner.monitor, rows.reward))


def copy(tree):
    return jax.tree.map(jnp.array, tree)  # the jitted phases donate their learner


def assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_update_phase_trains_on_a_fixed_buffer_as_train_step_does(algo):
    model = polyak.ALGORITHMS[algo]("MlpPolicy", CountingEnv(), seed=0, buffer_size=64, batch_size=8,
                                    normalize_obs=False, policy_kwargs=dict(net_arch=[16]))
    spec = model.spec
    start = learner_on_a_fixed_buffer(spec)

    phase = jax.jit(functools.partial(update_phase, spec, N_GRAD), donate_argnums=0)
    after = phase(copy(start))
    # the parameters moved, the buffer did not
    moved = [not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(start.agent.critic_params),
                                                         jax.tree.leaves(after.agent.critic_params))]
    assert all(moved)
    assert not np.array_equal(jax.tree.leaves(start.agent.actor_params)[0], jax.tree.leaves(after.agent.actor_params)[0])
    assert_trees_equal(after.buffer, start.buffer)
    assert int(after.agent.n_updates) == N_GRAD and int(after.step) == int(start.step)
    # the monitor recorded the phase: finite metrics, the largest |Q|, no divergence on bounded rewards
    mon = jax.device_get(after.monitor)
    assert int(mon.nonfinite_step) == -1 and int(mon.q_exceed_step) == -1
    assert float(mon.metrics["critic_loss"]) > 0 and all(np.isfinite(v) for v in mon.metrics.values())
    assert float(mon.q_abs_max) == float(mon.metrics["q_abs_max"]) > 0
    assert float(mon.reward_abs_max) == pytest.approx(float(np.abs(fixed_rows(2, 1).reward).max()))

    # train_step on the same buffer and key, with a step that brings no transition (valid = 0), runs
    # the same phase: identical parameters, optimiser states and monitor, leaf by leaf
    packed = spec.columns.pack({name: 0.0 for name, _ in spec.columns.shapes}, spec.n_envs)
    train = jax.jit(functools.partial(train_step, spec, N_GRAD), donate_argnums=0)
    trained, _, nonfinite_step = train(copy(start), packed)
    assert int(nonfinite_step) == -1
    assert_trees_equal(trained.agent, after.agent)
    assert_trees_equal(trained.monitor, after.monitor)
    assert_trees_equal(trained.buffer, after.buffer)

