"""The SB3-style API, the practical rules built in, and clear errors on bad input."""

import warnings

import gymnasium as gym
import jax
import numpy as np
import pytest

import polyak
from polyak.algos.algorithm import NonFiniteError
from polyak.algos.offpolicy.ddpg import DDPG
from polyak.algos.offpolicy.sac import SAC
from polyak.algos.offpolicy.td3 import TD3
from polyak.core.config import HyperparameterError
from polyak.core.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from polyak.envs.spaces import SpaceError
from tests.fake_envs import CountingEnv, DiscreteActionEnv

TINY = dict(learning_starts=20, buffer_size=500, batch_size=16, policy_kwargs=dict(net_arch=[16]))


def test_lecture_quickstart_runs_with_only_the_import_changed():
    env = gym.make("Pendulum-v1")
    model = SAC("MlpPolicy", env, learning_rate=3e-4, buffer_size=1_000_000, batch_size=256, tau=0.005,
                gamma=0.99, ent_coef="auto", verbose=0)
    model.learn(300)
    assert model.num_timesteps == 300
    td3 = TD3("MlpPolicy", env, policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5, train_freq=1,
              gradient_steps=1, learning_starts=100, seed=1,
              action_noise=NormalActionNoise(mean=np.zeros(1), sigma=0.1 * np.ones(1)))
    td3.learn(150)
    ddpg = DDPG("MlpPolicy", "Pendulum-v1", action_noise=OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.2 * np.ones(1)),
                seed=2, **TINY)
    ddpg.learn(40)


@pytest.mark.parametrize("algo", [pytest.param(SAC, marks=pytest.mark.gym029), TD3, DDPG])  # gym029: ci/gym029.sh
def test_predict_single_and_batched_in_env_units(algo):
    env = CountingEnv()  # actions in [-2, 2]
    model = algo("MlpPolicy", env, seed=0, **TINY)
    model.learn(40)
    a, state = model.predict(np.array([1.0, 100.0]))
    assert a.shape == (1,) and state is None and env.action_space.contains(a)
    batch, _ = model.predict(np.random.default_rng(0).normal(size=(7, 2)) * 50)
    assert batch.shape == (7, 1) and np.all(np.abs(batch) <= 2.0)
    # deterministic prediction is deterministic; SAC's stochastic one samples
    np.testing.assert_array_equal(model.predict(np.ones(2))[0], model.predict(np.ones(2))[0])
    if algo is SAC:
        draws = {float(model.predict(np.ones(2), deterministic=False)[0][0]) for _ in range(5)}
        assert len(draws) > 1
    with pytest.raises(ValueError, match="observation shape"):
        model.predict(np.ones(3))


@pytest.mark.gym029  # also under gymnasium 0.29.1 (ci/gym029.sh)
def test_actions_are_rescaled_to_the_env_bounds():
    seen = []

    class Recording(CountingEnv):
        def step(self, action):
            seen.append(np.asarray(action))
            return super().step(action)

    env = Recording()
    env.action_space = gym.spaces.Box(np.array([10.0]), np.array([30.0]), dtype=np.float32)
    model = SAC("MlpPolicy", env, seed=0, **TINY)
    model.learn(200)
    seen = np.concatenate(seen)
    assert seen.min() >= 10.0 and seen.max() <= 30.0
    assert seen.min() < 13 and seen.max() > 27  # random warm-up covers the whole range


@pytest.mark.gym029  # also under gymnasium 0.29.1 (ci/gym029.sh)
def test_vector_env_and_train_freq_gradient_steps():
    env = gym.vector.SyncVectorEnv([lambda: gym.make("Pendulum-v1")] * 3)
    model = SAC("MlpPolicy", env, seed=0, train_freq=2, gradient_steps=-1, **TINY)
    model.learn(90)
    assert model.num_timesteps == 90
    # 3 envs, training every 2 vector steps once learning starts, 6 gradient steps each time
    n_updates = int(model.learner.agent.n_updates)
    assert n_updates > 0 and n_updates % 6 == 0


def test_observation_normaliser_tracks_obs_and_is_frozen_in_predict():
    model = SAC("MlpPolicy", CountingEnv(length=5), seed=0, **TINY)
    model.learn(100)
    rms = jax.device_get(model.learner.obs_rms)
    # observations seen: t cycles 0..4 (plus a reset obs each episode); episode marker grows 100, 101, ...
    assert 1.5 < rms.mean[0] < 2.5 and 100 < rms.mean[1] < 120
    before = jax.device_get(model.learner.obs_rms)
    for _ in range(5):
        model.predict(np.array([1000.0, -1000.0]))
    np.testing.assert_array_equal(jax.device_get(model.learner.obs_rms).mean, before.mean)
    off = SAC("MlpPolicy", CountingEnv(length=5), seed=0, normalize_obs=False, **TINY)
    off.learn(30)
    assert float(off.learner.obs_rms.count) < 1  # untouched


def test_reward_scale_multiplies_stored_rewards():
    model = TD3("MlpPolicy", CountingEnv(length=5), seed=0, reward_scale=0.1, learning_starts=1000,
                buffer_size=100, batch_size=8)
    model.learn(5)
    np.testing.assert_allclose(np.asarray(model.learner.buffer.data.reward[:5]), [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(learning_rate=0), "learning_rate"),
    (dict(learning_rate=-1e-3), "learning_rate"),
    (dict(gamma=0.0), "gamma"),
    (dict(gamma=1.5), "gamma"),
    (dict(tau=0.0), "tau"),
    (dict(tau=1.01), "tau"),
    (dict(batch_size=512, buffer_size=100), "batch_size"),
    (dict(learning_rate_actor=1e-3), "unknown hyperparameter"),
    (dict(ent_coef=-0.1), "ent_coef"),
    (dict(ent_coef="automatic"), "ent_coef"),
    (dict(train_freq=0), "train_freq"),
    (dict(policy_kwargs=dict(net_arch=[64], activation_fn="tanh")), "policy_kwargs"),
])
def test_invalid_hyperparameters_raise_before_training(kwargs, match):
    with pytest.raises(HyperparameterError, match=match):
        SAC("MlpPolicy", "Pendulum-v1", **kwargs)


def test_td3_specific_validation_and_unknown_policy():
    with pytest.raises(HyperparameterError, match="policy_delay"):
        TD3("MlpPolicy", "Pendulum-v1", policy_delay=0)
    with pytest.raises(HyperparameterError, match="one critic"):
        DDPG("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(n_critics=2))
    with pytest.raises(HyperparameterError, match="MlpPolicy"):
        SAC("CnnPolicy", "Pendulum-v1")


def test_non_box_action_space_names_the_algorithms_that_fit():
    with pytest.raises(SpaceError, match=r"SAC needs a continuous Box action space.*DQN.*PPO"):
        SAC("MlpPolicy", DiscreteActionEnv())
    with pytest.raises(SpaceError, match="Box action space"):
        TD3("MlpPolicy", "CartPole-v1")


@pytest.mark.gym029  # also under gymnasium 0.29.1 (ci/gym029.sh)
def test_nan_observation_stops_training_naming_the_step():
    env = CountingEnv(length=50, obs_fn=lambda step, obs: obs * np.nan if step == 37 else obs)
    model = SAC("MlpPolicy", env, seed=0, **TINY)
    with pytest.raises(NonFiniteError, match="non-finite observation at environment step 37"):
        model.learn(100)


def test_inf_reward_stops_training_naming_the_step():
    env = CountingEnv(length=50, reward_fn=lambda step: np.inf if step == 12 else 0.0)
    with pytest.raises(NonFiniteError, match="non-finite reward at environment step 12"):
        TD3("MlpPolicy", env, seed=0, **TINY).learn(100)


def test_nonfinite_loss_stops_training_naming_the_step():
    # finite rewards whose squares overflow float32: the critic loss is inf at the first update
    env = CountingEnv(length=50, reward_fn=lambda step: 3e38 if step >= 25 else 1.0)
    model = DDPG("MlpPolicy", env, seed=0, **TINY)
    with pytest.raises(NonFiniteError, match=r"non-finite .*critic_loss.* at environment step \d+"):
        model.learn(100)
    assert model.num_timesteps < 100


def test_q_divergence_warning_names_the_step():
    # gamma = 0.5, rewards in [0, 1]: |Q| <= 2. A huge learning rate drives the critic far beyond it.
    env = CountingEnv(length=10, reward_fn=lambda step: float(step % 2))
    model = TD3("MlpPolicy", env, seed=0, gamma=0.5, learning_rate=0.5, normalize_obs=False, **TINY)
    with pytest.warns(RuntimeWarning, match=r"Q-value divergence.*environment step \d+"):
        try:
            model.learn(400, log_interval=50)
        except NonFiniteError:
            pass  # it may go on to overflow; the warning must have come first


def test_no_q_warning_on_a_healthy_run():
    model = SAC("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model.learn(300, log_interval=100)


def test_callback_can_stop_training():
    model = TD3("MlpPolicy", "Pendulum-v1", seed=0, **TINY)
    model.learn(1000, callback=lambda m: m.num_timesteps < 25)
    assert model.num_timesteps == 25


def test_same_seed_same_result_on_cpu():
    a = SAC("MlpPolicy", "Pendulum-v1", seed=5, **TINY).learn(60)
    b = SAC("MlpPolicy", "Pendulum-v1", seed=5, **TINY).learn(60)
    for x, y in zip(jax.tree.leaves(a.learner.agent), jax.tree.leaves(b.learner.agent)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_env_id_string_gym_env_and_algorithm_registry():
    assert set(polyak.ALGORITHMS) == {"sac", "td3", "ddpg", "tqc", "crossq", "redq", "sac_n", "droq", "dqn",
                                      "double_dqn", "ppo", "a2c", "a3c", "reinforce", "awr", "qlearning",
                                      "pcl", "unified_pcl", "td3_bc", "cql", "iql", "awac", "mopo", "fqi", "amortized_fqi", "nfqca",
                                      "cem", "cmaes", "nes", "euler"}
    assert SAC("MlpPolicy", "Pendulum-v1", **TINY).env_id == "Pendulum-v1"
    with pytest.raises(TypeError, match="env must be"):
        SAC("MlpPolicy", 42)


def test_q1_is_the_first_critic_of_the_ensemble_and_its_actor_gradient():
    """TD3's (and TD3+BC's) actor uses Q_1 alone, evaluated on member 0's parameters only: equal to the first row
    of the whole ensemble's output, and so is the actor's gradient through it."""
    from polyak.algos.offpolicy.td3 import TD3Agent, TD3Config

    agent = TD3Agent(TD3Config(critic_hidden=(8, 8), actor_hidden=(8,), n_critics=3), obs_dim=3, act_dim=2)
    state = agent.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    act = jax.random.uniform(jax.random.PRNGKey(2), (5, 2), minval=-1, maxval=1)
    full = agent.critic.apply(state.critic_params, obs, act)
    assert full.shape == (3, 5) and not np.allclose(full[0], full[1])  # distinct members
    np.testing.assert_allclose(agent.q1(state.critic_params, obs, act), full[0], rtol=1e-6)

    def loss(q_of):
        return lambda p: -q_of(state.critic_params, obs, agent.actor.apply(p, obs)).mean()

    g1 = jax.grad(loss(agent.q1))(state.actor_params)
    g_full = jax.grad(loss(lambda c, o, a: agent.critic.apply(c, o, a)[0]))(state.actor_params)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g_full), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
