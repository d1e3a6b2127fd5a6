"""Termination vs truncation: stored masks, true final observations and bootstrap targets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.algos.offpolicy.td3 import TD3
from polyak.core.losses import bootstrap_target
from polyak.envs.gym_compat import GYMNASIUM_1, sync_vector_env
from tests.fake_envs import CountingEnv

pytestmark = pytest.mark.gym029  # the whole file also runs under gymnasium 0.29.1 (ci/gym029.sh)


def stored_rows(model):
    buf = jax.device_get(model.learner.buffer)
    n = int(buf.size)
    return {k: np.asarray(v)[:n] for k, v in buf.data._asdict().items()}


def collect(env, steps, algo=TD3):
    # learning_starts > steps: only collection, no gradient step
    model = algo("MlpPolicy", env, seed=0, learning_starts=10_000, buffer_size=1000, batch_size=8,
                 policy_kwargs=dict(net_arch=[8]), normalize_obs=False)
    model.learn(steps)
    return model, stored_rows(model)


@pytest.mark.parametrize("terminate", [True, False])
def test_single_env_stores_true_final_observation_and_mask(terminate):
    model, rows = collect(CountingEnv(length=5, terminate=terminate), 12)
    assert model.num_timesteps == 12 and len(rows["reward"]) == 12
    # obs t -> next_obs t+1 within an episode; the 5th step's next_obs is the final obs [5, ep], not a reset obs
    np.testing.assert_array_equal(rows["obs"][:, 0], [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
    np.testing.assert_array_equal(rows["next_obs"][:, 0], [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2])
    np.testing.assert_array_equal(rows["next_obs"][4], [5, 100])  # episode 0's final observation
    np.testing.assert_array_equal(rows["obs"][5], [0, 101])  # the reset observation starts episode 1
    end = np.array([0, 0, 0, 0, 1] * 2 + [0, 0], np.float32)
    np.testing.assert_array_equal(rows["terminated"], end if terminate else np.zeros(12))
    np.testing.assert_array_equal(rows["reward"], [1, 2, 3, 4, 5] * 2 + [1, 2])


@pytest.mark.parametrize("mode", ["SameStep", pytest.param("NextStep", marks=pytest.mark.skipif(
    not GYMNASIUM_1, reason="gymnasium 0.29's vector envs have no NEXT_STEP mode"))])
@pytest.mark.parametrize("terminate", [True, False])
def test_vector_env_boundaries(mode, terminate):
    env = sync_vector_env([lambda: CountingEnv(5, terminate)] * 2, same_step=mode == "SameStep")
    model, rows = collect(env, 24)
    # two envs in lockstep: rows alternate env 0, env 1; 12 real transitions each
    for i in range(2):
        r = {k: v[i::2] for k, v in rows.items()}
        np.testing.assert_array_equal(r["obs"][:, 0], [0, 1, 2, 3, 4] * 2 + [0, 1])
        np.testing.assert_array_equal(r["next_obs"][:, 0], [1, 2, 3, 4, 5] * 2 + [1, 2])
        end = np.array([0, 0, 0, 0, 1] * 2 + [0, 0], np.float32)
        np.testing.assert_array_equal(r["terminated"], end if terminate else np.zeros(12))
    assert model.num_timesteps == 24  # reset steps of NEXT_STEP mode are not counted as transitions


def test_bootstrap_target_stops_only_at_termination():
    reward, next_value = jnp.array([1.0, 1.0]), jnp.array([10.0, 10.0])
    y = bootstrap_target(reward, jnp.array([1.0, 0.0]), 0.9, next_value)
    np.testing.assert_allclose(y, [1.0, 1.0 + 0.9 * 10.0])


@pytest.mark.parametrize("terminate", [True, False])
def test_td3_target_on_the_final_transition(terminate):
    """The update's target on the stored last transition: r (terminated) vs r + gamma Q'(s_T, a') (truncated)."""
    model, rows = collect(CountingEnv(length=5, terminate=terminate), 5)
    agent, state = model.agent, model.learner.agent
    last = jax.tree.map(lambda x: jnp.asarray(x[4:5]), rows)
    from polyak.core.types import Transition

    batch = Transition(last["obs"], last["action"], last["reward"], last["next_obs"], last["terminated"])
    next_action = agent.actor.apply(state.target_actor_params, batch.next_obs)  # noise off below
    next_q = agent.critic.apply(state.target_critic_params, batch.next_obs, next_action).min(0)
    cfg0 = model.config.__class__(**{**model.config.__dict__, "target_policy_noise": 0.0})
    agent0 = agent.__class__(cfg0, agent.obs_dim, agent.act_dim)
    # critic loss with a single row = 1/2 sum_j (Q_j - y)^2 -> recover y's effect through the loss
    q = agent.critic.apply(state.critic_params, batch.obs, batch.action)
    _, metrics, _ = agent0.update(state, batch, jax.random.PRNGKey(0))
    y = 5.0 if terminate else 5.0 + model.config.gamma * float(next_q[0])
    np.testing.assert_allclose(metrics["critic_loss"], 0.5 * float(((q - y) ** 2).sum()), rtol=1e-5)
    assert float(next_q[0]) != 0.0
