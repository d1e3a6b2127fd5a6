"""Each algorithm's target and losses against values computed by hand (numpy) on tiny inputs.

Networks are linear (no hidden layers) with hand-set weights, so every quantity has a closed form.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.algos.offpolicy.ddpg import DDPGAgent, DDPGConfig
from polyak.algos.offpolicy.sac import SACAgent, SACConfig
from polyak.algos.offpolicy.td3 import TD3Agent, TD3Config
from polyak.core.networks import squashed_gaussian_sample
from polyak.core.types import Transition

GAMMA = 0.9
BATCH = Transition(
    obs=jnp.array([[0.5], [-1.0]]),
    action=jnp.array([[0.2], [-0.4]]),
    reward=jnp.array([1.0, -2.0]),
    next_obs=jnp.array([[0.3], [2.0]]),
    terminated=jnp.array([0.0, 1.0]),
)
# Critic j: Q_j(s, a) = wq[j, 0] s + wq[j, 1] a + bq[j]; the target critics differ from the online ones.
WQ, BQ = np.array([[0.7, -1.2], [0.4, 0.9]]), np.array([0.1, -0.3])
WQ_T, BQ_T = np.array([[0.6, -1.0], [0.5, 0.8]]), np.array([0.2, -0.1])


def critic_params(w, b, n):
    return {"params": {"VmapCritic_0": {"MLP_0": {"Dense_0": {
        "kernel": jnp.asarray(w[:n, :, None], jnp.float32), "bias": jnp.asarray(b[:n, None], jnp.float32)}}}}}


def q_np(w, b, s, a):  # -> (n, batch)
    return w[:, :1] @ s.T + w[:, 1:] @ a.T + b[:, None]


def actor_params(w, b):
    return {"params": {"MLP_0": {"Dense_0": {"kernel": jnp.asarray(w, jnp.float32), "bias": jnp.asarray(b, jnp.float32)}}}}


def np_batch():
    return [np.asarray(x, np.float64) for x in BATCH]


def set_critics(state, n):
    return state._replace(critic_params=critic_params(WQ, BQ, n), target_critic_params=critic_params(WQ_T, BQ_T, n))


def test_critic_param_layout_matches_the_hand_model():
    agent = TD3Agent(TD3Config(actor_hidden=(), critic_hidden=()), 1, 1)
    state = set_critics(agent.init(jax.random.PRNGKey(0)), 2)
    q = agent.critic.apply(state.critic_params, BATCH.obs, BATCH.action)
    s, a, *_ = np_batch()
    np.testing.assert_allclose(q, q_np(WQ, BQ, s, a), rtol=1e-6)


def test_ddpg_target_and_losses():
    cfg = DDPGConfig(actor_hidden=(), critic_hidden=(), gamma=GAMMA)
    agent = DDPGAgent(cfg, 1, 1)
    state = set_critics(agent.init(jax.random.PRNGKey(0)), 1)
    # mu(s) = tanh(0.8 s - 0.1); target actor mu'(s) = tanh(-0.5 s + 0.3)
    state = state._replace(actor_params=actor_params([[0.8]], [-0.1]), target_actor_params=actor_params([[-0.5]], [0.3]))
    _, metrics, _ = agent.update(state, BATCH, jax.random.PRNGKey(1))

    s, a, r, s2, d = np_batch()
    a2 = np.tanh(-0.5 * s2 + 0.3)
    y = r + GAMMA * (1 - d) * q_np(WQ_T[:1], BQ_T[:1], s2, a2)[0]  # y = r + gamma (1-d) Q'(s', mu'(s'))
    q = q_np(WQ[:1], BQ[:1], s, a)[0]
    np.testing.assert_allclose(metrics["critic_loss"], 0.5 * np.mean((q - y) ** 2), rtol=1e-5)
    # The actor loss uses the critic *after* its gradient step: recompute it from the new state.
    new_state, _, _ = agent.update(state, BATCH, jax.random.PRNGKey(1))
    w = np.asarray(new_state.critic_params["params"]["VmapCritic_0"]["MLP_0"]["Dense_0"]["kernel"])[0, :, 0]
    b = float(new_state.critic_params["params"]["VmapCritic_0"]["MLP_0"]["Dense_0"]["bias"][0, 0])
    mu = np.tanh(0.8 * s - 0.1)
    expected_actor = -np.mean(w[0] * s[:, 0] + w[1] * mu[:, 0] + b)
    np.testing.assert_allclose(metrics["actor_loss"], expected_actor, rtol=1e-5)


@pytest.mark.parametrize("step_is_delayed", [False, True])
def test_td3_target_smoothing_clipped_double_q_and_delay(step_is_delayed):
    cfg = TD3Config(actor_hidden=(), critic_hidden=(), gamma=GAMMA, target_policy_noise=10.0,
                    target_noise_clip=0.5, policy_delay=2, tau=0.1)
    agent = TD3Agent(cfg, 1, 1)
    state = set_critics(agent.init(jax.random.PRNGKey(0)), 2)
    state = state._replace(actor_params=actor_params([[0.8]], [-0.1]), target_actor_params=actor_params([[-0.5]], [0.3]),
                           n_updates=jnp.asarray(1 if step_is_delayed else 0, jnp.int32))
    key = jax.random.PRNGKey(3)
    new_state, metrics, _ = agent.update(state, BATCH, key)

    s, a, r, s2, d = np_batch()
    # sigma = 10 and c = 0.5: every noise sample is clipped to +-0.5 with the sign of the normal draw
    eps = np.clip(10.0 * np.asarray(jax.random.normal(key, (2, 1))), -0.5, 0.5)
    assert np.all(np.abs(eps) == 0.5)
    a2 = np.clip(np.tanh(-0.5 * s2 + 0.3) + eps, -1, 1)
    y = r + GAMMA * (1 - d) * q_np(WQ_T, BQ_T, s2, a2).min(axis=0)  # min over the twin targets
    q = q_np(WQ, BQ, s, a)
    np.testing.assert_allclose(metrics["critic_loss"], 0.5 * np.sum(np.mean((q - y) ** 2, axis=1)), rtol=1e-5)

    def moved(x, y):
        return not np.allclose(np.asarray(x["params"]["MLP_0"]["Dense_0"]["kernel"]),
                               np.asarray(y["params"]["MLP_0"]["Dense_0"]["kernel"]))
    # The actor and the targets move only on every policy_delay-th critic step (n_updates 1 -> 2).
    assert moved(new_state.actor_params, state.actor_params) == step_is_delayed
    assert moved(new_state.target_actor_params, state.target_actor_params) == step_is_delayed
    if step_is_delayed:
        w = np.asarray(new_state.critic_params["params"]["VmapCritic_0"]["MLP_0"]["Dense_0"]["kernel"])[0, :, 0]
        b = float(new_state.critic_params["params"]["VmapCritic_0"]["MLP_0"]["Dense_0"]["bias"][0, 0])
        mu = np.tanh(0.8 * s - 0.1)
        np.testing.assert_allclose(metrics["actor_loss"], -np.mean(w[0] * s[:, 0] + w[1] * mu[:, 0] + b), rtol=1e-5)
        # Polyak: theta' <- tau theta + (1 - tau) theta' with tau = 0.1
        new_actor = float(new_state.actor_params["params"]["MLP_0"]["Dense_0"]["kernel"][0, 0])
        np.testing.assert_allclose(new_state.target_actor_params["params"]["MLP_0"]["Dense_0"]["kernel"][0, 0],
                                   0.1 * new_actor + 0.9 * -0.5, rtol=1e-6)


def test_squashed_gaussian_log_prob_matches_change_of_variables():
    mean, log_std = jnp.array([[0.3, -1.5]]), jnp.array([[-0.5, 0.2]])
    key = jax.random.PRNGKey(7)
    a, logp = squashed_gaussian_sample(mean, log_std, key)
    eps = np.asarray(jax.random.normal(key, (1, 2)), np.float64)
    std = np.exp(np.asarray(log_std, np.float64))
    u = np.asarray(mean, np.float64) + std * eps
    gauss = -0.5 * ((u - np.asarray(mean)) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    expected = np.sum(gauss - np.log(1 - np.tanh(u) ** 2))
    np.testing.assert_allclose(a, np.tanh(u), rtol=1e-5)
    np.testing.assert_allclose(logp[0], expected, rtol=1e-5)


@pytest.mark.parametrize("ent_coef", ["auto", 0.2])
def test_sac_target_losses_and_temperature(ent_coef):
    cfg = SACConfig(actor_hidden=(), critic_hidden=(), gamma=GAMMA, ent_coef=ent_coef, learning_rate=0.01)
    agent = SACAgent(cfg, 1, 1)
    state = set_critics(agent.init(jax.random.PRNGKey(0)), 2)
    # actor: mean = 0.8 s - 0.1, log_std = 0.3 s - 1.0
    state = state._replace(actor_params=actor_params([[0.8, 0.3]], [-0.1, -1.0]))
    if ent_coef == "auto":
        state = state._replace(log_alpha=jnp.log(jnp.asarray(0.5, jnp.float32)))
    alpha = 0.5 if ent_coef == "auto" else 0.2
    key = jax.random.PRNGKey(11)
    new_state, metrics, info = agent.update(state, BATCH, key)

    s, a, r, s2, d = np_batch()
    k_next, k_pi = jax.random.split(key)

    def sample(obs, k):
        mean, log_std = 0.8 * obs - 0.1, 0.3 * obs - 1.0
        eps = np.asarray(jax.random.normal(k, obs.shape), np.float64)
        u = mean + np.exp(log_std) * eps
        logp = (-0.5 * eps**2 - log_std - 0.5 * np.log(2 * np.pi) - np.log(1 - np.tanh(u) ** 2)).sum(-1)
        return np.tanh(u), logp

    a2, logp2 = sample(s2, k_next)
    # y = r + gamma (1 - d) (min_j Q'_j(s', a') - alpha log pi(a'|s'))
    y = r + GAMMA * (1 - d) * (q_np(WQ_T, BQ_T, s2, a2).min(axis=0) - alpha * logp2)
    q = q_np(WQ, BQ, s, a)
    np.testing.assert_allclose(metrics["critic_loss"], 0.5 * np.sum(np.mean((q - y) ** 2, axis=1)), rtol=1e-5)

    # actor: mean(alpha log pi(a~|s) - min_j Q_j(s, a~)) with the critics after their step
    kernel = np.asarray(new_state.critic_params["params"]["VmapCritic_0"]["MLP_0"]["Dense_0"]["kernel"])[:, :, 0]
    bias = np.asarray(new_state.critic_params["params"]["VmapCritic_0"]["MLP_0"]["Dense_0"]["bias"])[:, 0]
    a_pi, logp = sample(s, k_pi)
    expected_actor = np.mean(alpha * logp - q_np(kernel, bias, s, a_pi).min(axis=0))
    np.testing.assert_allclose(metrics["actor_loss"], expected_actor, rtol=1e-4)
    np.testing.assert_allclose(metrics["entropy"], -logp.mean(), rtol=1e-4)
    # what the monitor reads: the batch's largest |Q| and the soft bonus alpha |H| of the target
    np.testing.assert_allclose(info.q_abs_max, np.abs(q).max(), rtol=1e-5)
    np.testing.assert_allclose(info.soft_bonus, alpha * np.abs(logp.mean()), rtol=1e-4)

    # temperature: L = -log_alpha (mean log pi + H_target), H_target = -dim(A) = -1
    target_entropy = -1.0
    np.testing.assert_allclose(metrics["alpha_loss"], -np.log(alpha) * (logp.mean() + target_entropy), rtol=1e-4)
    if ent_coef == "auto":
        # first Adam step moves log_alpha by -lr * sign(grad), grad = -(mean log pi + H_target)
        grad = -(logp.mean() + target_entropy)
        np.testing.assert_allclose(new_state.log_alpha, np.log(alpha) - 0.01 * np.sign(grad), rtol=1e-5)
    else:
        assert float(new_state.log_alpha) == pytest.approx(np.log(0.2))
