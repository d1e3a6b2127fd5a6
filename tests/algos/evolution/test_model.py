"""CEM, CMA-ES and NES as models: learning (seeds vmapped), exact resume, host evaluation, CLI, bad input."""

import json
from typing import NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak import CEM, CMAES, NES
from polyak.algos.algorithm import NonFiniteError
from polyak.algos.evolution.population import make_train
from polyak.cli import main
from polyak.core.config import HyperparameterError
from polyak.envs.protocol import GymnasiumAdapter
from polyak.envs.spaces import SpaceError


class PointParams(NamedTuple):
    max_steps: int = 25
    nan_after: int = 10**6  # the reward turns NaN from this step on (the non-finite test)


class PointState(NamedTuple):
    x: jax.Array
    t: jax.Array


class PointMass:
    """Steer x to 0: x' = x + 0.2 a, reward -x'^2, x_0 ~ U(-1, 1), 25 steps (doing nothing returns -8.3 on average)."""

    default_params = PointParams()
    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, key, params):
        state = PointState(jax.random.uniform(key, (), minval=-1.0, maxval=1.0), jnp.zeros((), jnp.int32))
        return state, state.x[None]

    def step(self, key, state, action, params):
        x = state.x + 0.2 * jnp.clip(action[0], -1.0, 1.0)
        t = state.t + 1
        reward = jnp.where(t >= params.nan_after, jnp.nan, -(x**2))
        return PointState(x, t), x[None], reward, jnp.asarray(False), t >= params.max_steps, {}


SMALL = dict(population_size=6, policy_hidden=[4], episodes_per_candidate=2)  # one compile per method, shared
PER_GENERATION = 7 * 2 * 200  # (lambda + the mean) x episodes x Pendulum's 200 steps
ALGOS = {"cem": (CEM, {"init_std": 1.0}), "cmaes": (CMAES, {"init_std": 1.0}),
         "nes": (NES, {"sigma": 0.1, "learning_rate": 0.1})}


@pytest.mark.parametrize("algo", ALGOS)
def test_learns_point_mass_with_seeds_vmapped(algo):
    cls, hp = ALGOS[algo]
    env = PointMass()
    model = cls("MlpPolicy", GymnasiumAdapter(env), seed=0, population_size=16, policy_hidden=[],
                episodes_per_candidate=4, **hp)
    assert model._jax_adapter is not None and model.n_parameters == 2  # a linear policy tanh(w x + b)
    learner, logs = jax.jit(jax.vmap(make_train(model.spec, env, env.default_params, 60)))(jnp.arange(4))
    returns = np.asarray(logs.mean_returns).mean(axis=2)  # (seeds, generations): the mean policy's return
    first, last = returns[:, 0], returns[:, -10:].mean(axis=1)
    assert np.all(last > -1.0), (first, last)  # learned: about -0.3 (8 seeds: -0.66 at worst); initial: down to -290
    assert np.all(np.asarray(learner.step) == 60 * 17 * 4 * 25)  # (lambda + the mean) x 4 episodes x 25 steps


def _same(a, b):
    for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("algo", ALGOS)
def test_resume_is_bit_exact(algo, tmp_path):
    cls, hp = ALGOS[algo]
    kwargs = dict(seed=3, **SMALL, **hp)
    per_generation = PER_GENERATION
    whole = cls("MlpPolicy", "polyak/Pendulum-v1", **kwargs).learn(4 * per_generation)
    first = cls("MlpPolicy", whole.env, **kwargs).learn(2 * per_generation)
    first.save(tmp_path / "m.polyak")
    resumed = cls.load(tmp_path / "m.polyak", env=whole.env)
    assert resumed.num_timesteps == 2 * per_generation
    resumed.learn(2 * per_generation)
    assert resumed.num_timesteps == whole.num_timesteps == 4 * per_generation
    _same(resumed.learner, whole.learner)
    obs = np.array([[0.3, -0.9, 1.5], [1.0, 0.0, -4.0]], np.float32)
    np.testing.assert_array_equal(resumed.predict(obs)[0], whole.predict(obs)[0])


def test_host_evaluation_on_a_gymnasium_env_resumes_exactly(tmp_path):
    kwargs = dict(seed=1, population_size=4, policy_hidden=[], max_episode_steps=30)
    env = gym.make("Pendulum-v1")  # Gymnasium's own: stepped on the host
    whole = CEM("MlpPolicy", env, **kwargs)
    assert whole._jax_adapter is None
    whole.learn(3 * 5 * 30)
    assert whole.num_timesteps == 3 * 5 * 30 and int(whole.learner.generation) == 3
    part = CEM("MlpPolicy", env, **kwargs).learn(5 * 30)
    part.save(tmp_path / "m.polyak")
    resumed = CEM.load(tmp_path / "m.polyak", env=env).learn(2 * 5 * 30)
    _same(resumed.learner, whole.learner)


def test_predict_acts_with_the_mean_and_the_frozen_normaliser():
    model = NES("MlpPolicy", "polyak/Pendulum-v1", seed=0, **SMALL, **ALGOS["nes"][1])
    model.learn(1)  # one generation: the normaliser has moved
    obs = np.array([0.5, 0.5, 2.0], np.float32)
    spec, learner = model.spec, model.learner
    expected = spec.policy.act(spec.strategy.mean(learner.agent), learner.obs_rms, obs[None], True)[0]
    np.testing.assert_allclose(model.predict(obs)[0], 2.0 * np.asarray(expected), rtol=1e-6)  # torque in [-2, 2]
    assert float(learner.obs_rms.count) > PER_GENERATION - 1


def test_nonfinite_reward_stops_training_and_keeps_the_last_generation():
    env = GymnasiumAdapter(PointMass(), PointParams(nan_after=5))
    model = CEM("MlpPolicy", env, seed=0, **SMALL, **ALGOS["cem"][1])
    before = jax.device_get(model.learner)
    with pytest.raises(NonFiniteError, match="fitness .* generation 1"):
        model.learn(100)
    _same(model.learner, before)
    assert model.num_timesteps == 0


@pytest.mark.parametrize("cls, kwargs, field", [
    (CEM, {"population_size": 1}, "population_size"),
    (CEM, {"elite_fraction": 0.0}, "elite_fraction"),
    (CEM, {"elite_fraction": 1.5}, "elite_fraction"),
    (CEM, {"noise_floor": -1e-3}, "noise_floor"),
    (CMAES, {"population_size": 1}, "population_size"),
    (CMAES, {"init_std": 0.0}, "init_std"),
    (CMAES, {"eigen_interval": 0}, "eigen_interval"),
    (NES, {"population_size": 7}, "population_size"),
    (NES, {"sigma": -0.1}, "sigma"),
    (NES, {"optimizer": "rmsprop"}, "optimizer"),
    (NES, {"population_size": 8.0}, "population_size"),
    (CEM, {"learning_rate": 0.1}, "learning_rate"),
])
def test_bad_hyperparameters_name_the_field(cls, kwargs, field):
    with pytest.raises(HyperparameterError, match=field):
        cls("MlpPolicy", "polyak/Pendulum-v1", **kwargs)


def test_discrete_actions_are_refused():
    with pytest.raises(SpaceError, match="CEM needs a continuous Box"):
        CEM("MlpPolicy", "CartPole-v1")


def test_cli_train_with_checkpoints_and_resume(tmp_path):
    run = tmp_path / "run"
    args = ["train", "cmaes", "--env", "polyak/Pendulum-v1", "--steps", "10000", "--seed", "2", "--run-dir", str(run),
            "--no-progress", "--eval-episodes", "1", "--checkpoint-every", "4000", "--set", "population_size=6",
            "--set", "net_arch=[4]", "--set", "episodes_per_candidate=2", "--set", "init_std=1.0"]
    assert main(args) == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["steps"] == 4 * PER_GENERATION  # whole generations of 2800 steps until 10000 are passed
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["step000005600.polyak", "step000008400.polyak"]  # --keep-checkpoints 2
    (run / "eval.json").unlink()  # an unfinished run: resumes from the latest checkpoint
    assert main(args) == 0
    assert json.loads((run / "eval.json").read_text())["eval_returns"] == result["eval_returns"]
