"""SAC's upgrades (TQC, CrossQ, REDQ, SAC-N, DroQ): each loss and target against a hand computation on
tiny inputs, the running statistics of batch renormalisation, exact resume, and bad input."""

import itertools
from math import comb

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import polyak
from polyak.algos.offpolicy.crossq import CrossQAgent, CrossQConfig
from polyak.algos.offpolicy.droq import DroQAgent, DroQConfig
from polyak.algos.offpolicy.redq import REDQAgent, REDQConfig
from polyak.algos.offpolicy.sac_n import SACNAgent, SACNConfig
from polyak.algos.offpolicy.tqc import TQCAgent, TQCConfig
from polyak.core.config import HyperparameterError
from polyak.core.losses import quantile_huber_loss
from polyak.core.types import Transition

BATCH = Transition(
    obs=jnp.array([[0.5], [-1.0], [0.2]]),
    action=jnp.array([[0.2], [-0.4], [0.9]]),
    reward=jnp.array([1.0, -2.0, 0.5]),
    next_obs=jnp.array([[0.3], [2.0], [-0.7]]),
    terminated=jnp.array([0.0, 1.0, 0.0]),
)
GAMMA = 0.9


def np_batch():
    return [np.asarray(x, np.float64) for x in BATCH]


def perturbed(params, scale, seed):
    """The same tree with every leaf moved by scale * N(0, 1): targets that differ from the online critics."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree.unflatten(tree, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


def quantile_huber_by_hand(theta, y, kappa=1.0):
    """theta: K quantiles, y: M target atoms -> mean_{k,m} |tau_k - 1{y_m < theta_k}| H(y_m - theta_k)."""
    total, K = 0.0, len(theta)
    for k, m in itertools.product(range(K), range(len(y))):
        d = y[m] - theta[k]
        huber = 0.5 * d * d if abs(d) <= kappa else kappa * (abs(d) - 0.5 * kappa)
        total += abs((k + 0.5) / K - (1.0 if d < 0 else 0.0)) * huber
    return total / (K * len(y))


def test_quantile_huber_loss_by_hand():
    theta = np.array([[-1.0, 0.5, 2.0], [0.0, 0.1, 0.2]])  # two samples, K = 3
    y = np.array([[0.3, 3.5, -0.2, 1.0], [0.1, -4.0, 0.15, 2.5]])  # M = 4 atoms each (|d| > 1: linear part)
    expected = np.mean([quantile_huber_by_hand(theta[i], y[i]) for i in range(2)])
    np.testing.assert_allclose(quantile_huber_loss(jnp.asarray(theta), jnp.asarray(y)), expected, rtol=1e-6)


def test_tqc_truncated_target_quantile_loss_and_actor():
    cfg = TQCConfig(actor_hidden=(), critic_hidden=(), n_quantiles=3, top_quantiles_to_drop_per_net=1,
                    gamma=GAMMA, ent_coef=0.3, learning_rate=0.01)
    agent = TQCAgent(cfg, 1, 1)
    state = agent.init(jax.random.PRNGKey(0))
    state = state._replace(target_critic_params=perturbed(state.critic_params, 0.5, 1))
    key = jax.random.PRNGKey(5)
    new_state, metrics, info = jax.jit(agent.update)(state, BATCH, key)

    s, a, r, s2, d = np_batch()
    k_next, k_pi = jax.random.split(key)
    a2, logp2 = (np.asarray(x, np.float64) for x in agent.sample_action(state.actor_params, BATCH.next_obs, k_next))
    z_next = np.asarray(agent.critic.apply(state.target_critic_params, BATCH.next_obs, a2), np.float64)  # (2, B, 3)
    q = np.asarray(agent.critic.apply(state.critic_params, BATCH.obs, BATCH.action), np.float64)
    assert z_next.shape == q.shape == (2, 3, 3)
    critic_loss = 0.0
    for j in range(2):
        per_sample = []
        for i in range(3):
            pooled = np.sort(z_next[:, i, :].ravel())[:4]  # 6 atoms, the top d = 1 per net (2) dropped
            y = r[i] + GAMMA * (1 - d[i]) * (pooled - 0.3 * logp2[i])
            per_sample.append(quantile_huber_by_hand(q[j, i], y))
        critic_loss += np.mean(per_sample)  # each critic's loss is a mean; the critics' losses add up
    np.testing.assert_allclose(metrics["critic_loss"], critic_loss, rtol=1e-5)

    # actor: mean (alpha log pi - mean of all 2 x 3 quantiles), with the critics after their step
    a_pi, logp = (np.asarray(x, np.float64) for x in agent.sample_action(state.actor_params, BATCH.obs, k_pi))
    z_pi = np.asarray(agent.critic.apply(new_state.critic_params, BATCH.obs, a_pi), np.float64)
    np.testing.assert_allclose(metrics["actor_loss"], np.mean(0.3 * logp - z_pi.mean(axis=(0, 2))), rtol=1e-4)
    np.testing.assert_allclose(info.q_abs_max, np.abs(q).max(), rtol=1e-6)
    # Q(s, a) for evaluation and the bias measurement: each critic's mean quantile
    np.testing.assert_allclose(agent.q_values(state, BATCH.obs, BATCH.action), q.mean(axis=-1), rtol=1e-6)


def test_redq_target_is_the_min_of_a_random_subset():
    """N = 5 critics with distinct values, M = 2: the target is always the min of 2 different critics, and the
    r-th smallest value is that min with probability C(N - r, M - 1) / C(N, M) (0.4, 0.3, 0.2, 0.1, 0)."""
    agent = REDQAgent(REDQConfig(n_critics=5, subset_size=2), 1, 1)
    values = jnp.array([3.0, 1.0, 4.0, 0.0, 2.0])[:, None]  # (n_critics, batch = 1)
    draws = jax.jit(jax.vmap(lambda k: agent.target_value(values, k)))(jax.random.split(jax.random.PRNGKey(0), 4000))
    draws = np.asarray(draws)[:, 0]
    frequency = np.array([(draws == v).mean() for v in range(5)])  # value v is the (v + 1)-th smallest
    expected = np.array([comb(5 - r, 1) / comb(5, 2) for r in range(1, 6)])
    np.testing.assert_allclose(frequency, expected, atol=0.03)
    assert set(np.unique(draws)) <= {0.0, 1.0, 2.0, 3.0}


def test_redq_actor_uses_the_ensemble_mean_and_every_critic_learns():
    cfg = REDQConfig(actor_hidden=(), critic_hidden=(), n_critics=4, subset_size=2, gamma=GAMMA, ent_coef=0.2,
                     policy_delay=1, learning_rate=0.01)
    agent = REDQAgent(cfg, 1, 1)
    state = agent.init(jax.random.PRNGKey(1))
    state = state._replace(target_critic_params=perturbed(state.critic_params, 0.5, 2))
    key = jax.random.PRNGKey(3)
    new_state, metrics, _ = jax.jit(agent.update)(state, BATCH, key)
    s, a, r, s2, d = np_batch()
    k_next, k_pi = jax.random.split(key)
    k_target = jax.random.split(jax.random.fold_in(key, 1), 4)[0]
    a2, logp2 = (np.asarray(x, np.float64) for x in agent.sample_action(state.actor_params, BATCH.next_obs, k_next))
    q_next = np.asarray(agent.critic.apply(state.target_critic_params, BATCH.next_obs, a2), np.float64)
    # the subset the update drew: the same key gives the same draw; its min must be a min of 2 distinct critics
    z = np.asarray(agent.target_value(jnp.asarray(q_next), k_target), np.float64)
    assert any(np.allclose(z, np.minimum(q_next[i], q_next[j])) for i, j in itertools.combinations(range(4), 2))
    y = r + GAMMA * (1 - d) * (z - 0.2 * logp2)
    q = np.asarray(agent.critic.apply(state.critic_params, BATCH.obs, BATCH.action), np.float64)
    np.testing.assert_allclose(metrics["critic_loss"], 0.5 * np.sum(np.mean((q - y) ** 2, axis=1)), rtol=1e-5)
    a_pi, logp = (np.asarray(x, np.float64) for x in agent.sample_action(state.actor_params, BATCH.obs, k_pi))
    q_pi = np.asarray(agent.critic.apply(new_state.critic_params, BATCH.obs, a_pi), np.float64)
    np.testing.assert_allclose(metrics["actor_loss"], np.mean(0.2 * logp - q_pi.mean(axis=0)), rtol=1e-4)
    kernel = lambda p: np.asarray(p["params"]["VmapCritic_0"]["MLP_0"]["Dense_0"]["kernel"])  # noqa: E731
    assert np.all(np.abs(kernel(new_state.critic_params) - kernel(state.critic_params)).sum(axis=(1, 2)) > 0)


def test_sac_n_takes_the_min_over_all_n_critics():
    agent = SACNAgent(SACNConfig(), 3, 1)
    assert agent.cfg.n_critics == 10 and agent.critic.n_critics == 10
    q = jax.random.normal(jax.random.PRNGKey(0), (10, 7))
    np.testing.assert_array_equal(agent.target_value(q, jax.random.PRNGKey(1)), np.asarray(q).min(axis=0))
    np.testing.assert_array_equal(agent.actor_value(q), np.asarray(q).min(axis=0))


def batch_renorm_stats(variables):
    """The first normalisation layer's running statistics of a critic ensemble (n_critics, features)."""
    stats = variables["batch_stats"]["VmapCritic_0"]["MLP_0"]["BatchRenorm_0"]
    return np.asarray(stats["mean"]), np.asarray(stats["var"]), np.asarray(stats["steps"])


def test_crossq_joint_forward_pass_running_statistics_and_no_target():
    cfg = CrossQConfig(actor_hidden=(4,), critic_hidden=(4,), gamma=GAMMA, ent_coef=0.1, policy_delay=3)
    agent = CrossQAgent(cfg, 1, 1)
    state = agent.init(jax.random.PRNGKey(0))
    assert state.target_critic_params is None  # no target network
    key = jax.random.PRNGKey(2)
    update = jax.jit(agent.update)
    new_state, metrics, _ = update(state, BATCH, key)

    s, a, r, s2, d = np_batch()
    k_next, _ = jax.random.split(key)
    # a' from the actor in eval mode (running statistics), as acting does
    a2, logp2 = (np.asarray(x, np.float64) for x in agent.sample_action(state.actor_params, BATCH.next_obs, k_next))
    x = np.concatenate([np.concatenate([s, a], 1), np.concatenate([s2, a2], 1)])  # the joint batch [s, a; s', a']
    mean, var, steps = batch_renorm_stats(new_state.critic_params)
    # m <- 0.99 m + 0.01 m_batch, v <- 0.99 v + 0.01 v_batch (biased), from m = 0, v = 1; both critics saw x
    np.testing.assert_allclose(mean, np.tile(0.01 * x.mean(0), (2, 1)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(var, np.tile(0.99 + 0.01 * x.var(0), (2, 1)), rtol=1e-5)
    assert steps.tolist() == [1, 1]  # one training pass per critic step

    # the loss: Q(s, a) and Q(s', a') from that one train-mode pass; y = r + gamma (1 - d)(min_j Q_j(s', a') - alpha logp)
    both, _ = agent.critic.apply(state.critic_params, jnp.concatenate([BATCH.obs, BATCH.next_obs]),
                                 jnp.concatenate([BATCH.action, jnp.asarray(a2, jnp.float32)]), train=True,
                                 mutable=["batch_stats"])
    both = np.asarray(both, np.float64)
    q, q_next = both[:, :3], both[:, 3:]
    y = r + GAMMA * (1 - d) * (q_next.min(axis=0) - 0.1 * logp2)
    np.testing.assert_allclose(metrics["critic_loss"], 0.5 * np.sum(np.mean((q - y) ** 2, axis=1)), rtol=1e-5)

    # the actor (and its own statistics) moves only on every 3rd critic step
    actor_steps = lambda st: int(st.actor_params["batch_stats"]["MLP_0"]["BatchRenorm_0"]["steps"])  # noqa: E731
    states = [new_state]
    for i in range(2):
        states.append(update(states[-1], BATCH, jax.random.PRNGKey(10 + i))[0])
    assert [actor_steps(st) for st in states] == [0, 0, 1]
    assert batch_renorm_stats(states[-1].critic_params)[2].tolist() == [3, 3]
    assert int(states[-1].n_updates) == 3


def test_crossq_predict_uses_running_statistics_and_resumes_exactly(tmp_path):
    """Eval mode normalises each row with the running statistics, so a row's action does not depend on the
    rest of the batch; the statistics are saved, restored and trained on bit-exactly."""
    kw = dict(learning_starts=50, batch_size=16, buffer_size=500, critic_hidden=(32,), actor_hidden=(16,),
              renorm_warmup_steps=60)
    straight = polyak.CrossQ("MlpPolicy", "Pendulum-v1", seed=1, **kw)
    straight.learn(160)
    obs = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    batch_actions = straight.predict(obs)[0]
    for i in range(6):
        np.testing.assert_allclose(straight.predict(obs[i])[0], batch_actions[i], rtol=1e-5, atol=1e-6)
    first = polyak.CrossQ("MlpPolicy", "Pendulum-v1", seed=1, **kw)
    first.learn(100)
    resumed = polyak.load(first.save(tmp_path / "c.polyak", include_buffer=True), env="Pendulum-v1")
    resumed.learn(60)
    for x, y in zip(jax.tree.leaves(resumed.learner.agent), jax.tree.leaves(straight.learner.agent)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    n_updates = int(resumed.learner.agent.n_updates)
    assert n_updates > kw["renorm_warmup_steps"]  # renormalisation was active
    assert batch_renorm_stats(resumed.learner.agent.critic_params)[2].tolist() == [n_updates, n_updates]


def test_droq_critics_use_dropout_and_layer_norm_and_the_actor_the_mean():
    cfg = DroQConfig(actor_hidden=(8,), critic_hidden=(8,), dropout_rate=0.5, policy_delay=1, gamma=GAMMA,
                     ent_coef=0.2)
    agent = DroQAgent(cfg, 1, 1)
    state = agent.init(jax.random.PRNGKey(0))
    assert "LayerNorm_0" in state.critic_params["params"]["VmapCritic_0"]["MLP_0"]
    key = jax.random.PRNGKey(4)
    _, metrics, _ = jax.jit(agent.update)(state, BATCH, key)
    s, a, r, s2, d = np_batch()
    k_next, _ = jax.random.split(key)
    _, k_drop_q, k_drop_target, _ = jax.random.split(jax.random.fold_in(key, 1), 4)
    a2, logp2 = agent.sample_action(state.actor_params, BATCH.next_obs, k_next)

    def critic_loss(train):  # dropout (train mode) in both the target critics and the online ones, or in neither
        rngs = lambda k: {"dropout": k} if train else None  # noqa: E731
        q_next = agent.critic.apply(state.target_critic_params, BATCH.next_obs, a2, train=train, rngs=rngs(k_drop_target))
        q = np.asarray(agent.critic.apply(state.critic_params, BATCH.obs, BATCH.action, train=train,
                                          rngs=rngs(k_drop_q)), np.float64)
        y = r + GAMMA * (1 - d) * (np.asarray(q_next, np.float64).min(axis=0) - 0.2 * np.asarray(logp2, np.float64))
        return 0.5 * np.sum(np.mean((q - y) ** 2, axis=1))

    np.testing.assert_allclose(metrics["critic_loss"], critic_loss(train=True), rtol=1e-5)
    assert abs(float(metrics["critic_loss"]) - critic_loss(train=False)) > 1e-3  # the masks mattered
    # evaluation (predict, Q-values) is deterministic: dropout off
    np.testing.assert_array_equal(agent.q_values(state, BATCH.obs, BATCH.action),
                                  agent.q_values(state, BATCH.obs, BATCH.action))
    q = jax.random.normal(jax.random.PRNGKey(0), (2, 5))
    np.testing.assert_allclose(agent.actor_value(q), np.asarray(q).mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("name,extra", [
    ("tqc", {"n_quantiles": 5}),
    ("redq", {"n_critics": 4, "gradient_steps": 2, "policy_delay": 2}),
    ("droq", {"gradient_steps": 2, "policy_delay": 2}),
])
def test_resume_is_bit_exact(tmp_path, name, extra):
    cls = polyak.ALGORITHMS[name]
    kw = dict(learning_starts=40, batch_size=16, buffer_size=500, policy_kwargs=dict(net_arch=[16, 16]), **extra)
    straight = cls("MlpPolicy", "Pendulum-v1", seed=2, **kw)
    straight.learn(130)
    first = cls("MlpPolicy", "Pendulum-v1", seed=2, **kw)
    first.learn(75)
    resumed = polyak.load(first.save(tmp_path / "m.polyak", include_buffer=True), env="Pendulum-v1")
    assert type(resumed) is cls
    resumed.learn(55)
    for x, y in zip(jax.tree.leaves(resumed.learner.agent), jax.tree.leaves(straight.learner.agent)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    q = resumed.predict_q(np.zeros((2, 3)), np.zeros((2, 1)))
    assert q.shape == (2, resumed.config.n_critics) and np.all(np.isfinite(q))


@pytest.mark.parametrize("name,kwargs,message", [
    ("tqc", {"n_quantiles": 5, "top_quantiles_to_drop_per_net": 5}, "top_quantiles_to_drop_per_net"),
    ("tqc", {"n_quantiles": 0}, "n_quantiles"),
    ("redq", {"n_critics": 3, "subset_size": 4}, "subset_size"),
    ("droq", {"dropout_rate": 0.0}, "dropout_rate"),
    ("droq", {"dropout_rate": 1.0}, "dropout_rate"),
    ("crossq", {"batch_norm": "layer"}, "batch_norm"),
    ("crossq", {"adam_beta1": 1.5}, "adam_beta1"),
    ("sac", {"policy_delay": 0}, "policy_delay"),
])
def test_bad_hyperparameters_are_named(name, kwargs, message):
    with pytest.raises(HyperparameterError, match=message):
        polyak.ALGORITHMS[name]("MlpPolicy", "Pendulum-v1", **kwargs)
