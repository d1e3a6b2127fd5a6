"""`act_before_update`: the action is chosen before the step's gradient update (one update behind SB3's order)."""

import jax
import numpy as np
import pytest

from polyak.algos.algorithm import NonFiniteError
from polyak.algos.offpolicy.ddpg import DDPG
from polyak.algos.offpolicy.td3 import TD3
from tests.fake_envs import CountingEnv

# a deterministic actor updated at every gradient step: the action is the policy's, exactly
TINY = dict(learning_starts=20, buffer_size=500, batch_size=16, policy_kwargs=dict(net_arch=[16]),
            exploration_noise=0.0, policy_delay=1)


def policy(model, agent_state, obs):
    return np.asarray(model._fns["predict"](agent_state, model.learner.obs_rms, obs, jax.random.PRNGKey(0), True))


@pytest.mark.parametrize("act_before_update", [False, True])
def test_the_pending_action_comes_from_the_parameters_before_or_after_the_last_update(act_before_update):
    model = TD3("MlpPolicy", "Pendulum-v1", seed=0, act_before_update=act_before_update, **TINY)
    model.learn(60)
    before = jax.tree.map(np.array, model.learner.agent)  # a copy: the next step donates the learner
    model.learn(1)  # one env step, one gradient step
    after = model.learner.agent
    chosen_with_before = policy(model, before, model._obs)
    chosen_with_after = policy(model, after, model._obs)
    assert np.abs(chosen_with_before - chosen_with_after).max() > 1e-6  # the update moved the actor
    expected = chosen_with_before if act_before_update else chosen_with_after  # SB3's order: after
    np.testing.assert_allclose(model._pending_action, expected, rtol=1e-6, atol=1e-6)


def test_a_nonfinite_last_update_is_still_reported():
    # the loss overflows from the first update on; with act_before_update the step that ran it syncs
    # only the action chosen before it, so the check at the end of learn() must catch it
    env = CountingEnv(length=50, reward_fn=lambda step: 3e38)
    model = DDPG("MlpPolicy", env, seed=0, learning_starts=20, buffer_size=500, batch_size=16,
                 policy_kwargs=dict(net_arch=[16]), act_before_update=True)
    with pytest.raises(NonFiniteError, match=r"non-finite .*critic_loss.* at environment step 20"):
        model.learn(20)  # the first update is the last step's (num_timesteps reaches learning_starts)


def test_an_error_in_the_loop_is_raised_as_it_is_not_replaced_by_the_final_check():
    # the update at step 20 is non-finite and not yet checked when the env fails at step 21: the env's error is
    # the one the user must see (learn()'s final non-finite check must not replace it)
    def reward(step):
        if step > 20:
            raise RuntimeError("the beam position monitor stopped answering")
        return 3e38

    model = DDPG("MlpPolicy", CountingEnv(length=50, reward_fn=reward), seed=0, learning_starts=20, buffer_size=500,
                 batch_size=16, policy_kwargs=dict(net_arch=[16]), act_before_update=True)
    with pytest.raises(RuntimeError, match="stopped answering"):
        model.learn(30)
