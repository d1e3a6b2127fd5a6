"""Bad input is stopped at the door with a message that names it, and nothing is lost (issue: crash-safe
training). One table per door: the Python API, the command line, sweep files, the environment's outputs."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import polyak
from polyak.algos.algorithm import NonFiniteError
from polyak.cli import main
from polyak.core.config import HyperparameterError
from polyak.io.checkpoint import read_checkpoint
from polyak.runs.experiments import SweepFileError, parse_sweep
from tests.fake_envs import CountingEnv

pytestmark = pytest.mark.gym029  # the whole file also runs under gymnasium 0.29.1 (ci/gym029.sh)

SMALL = dict(policy_kwargs=dict(net_arch=[8]), buffer_size=64, learning_starts=8, batch_size=8)


@pytest.mark.parametrize("kwargs, message", [
    (dict(buffer_size=1e3), r"buffer_size must be an integer, got 1000.0 \(a float\); write 1000"),
    (dict(batch_size=16.5), "batch_size must be an integer, got 16.5"),
    (dict(learning_rate="abc"), "learning_rate must be a finite number, got 'abc'"),
    (dict(learning_rate=float("inf")), "learning_rate must be a finite number, got inf"),
    (dict(gamma=float("nan")), "gamma must be a finite number, got nan"),
    (dict(normalize_obs="yes"), "normalize_obs must be true or false, got 'yes'"),
    (dict(ent_coef=[0.1]), r"ent_coef must be str or float, got \[0.1\] \(a list\)"),
    (dict(seed=-1), r"seed must be an integer >= 0 \(or None: random\), got -1"),
    (dict(seed=1.5), "seed must be an integer >= 0"),
    (dict(policy_kwargs={"net_arch": {"pi": [32]}}), "net_arch as a dict needs the keys 'pi' .* missing: qf"),
    (dict(policy_kwargs={"net_arch": [32, "64"]}), r"actor_hidden\[1\] must be an integer, got '64'"),
])
def test_bad_hyperparameters_are_refused_at_construction(kwargs, message):
    with pytest.raises(HyperparameterError, match=message):
        polyak.SAC("MlpPolicy", "Pendulum-v1", **kwargs)


def test_infinite_max_grad_norm_still_means_no_clipping():
    assert polyak.AWR("MlpPolicy", "Pendulum-v1").config.max_grad_norm == float("inf")
    with pytest.raises(HyperparameterError, match="max_grad_norm must be a finite number or inf, got nan"):
        polyak.PPO("MlpPolicy", "Pendulum-v1", max_grad_norm=float("nan"))


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "argument --steps: must be >= 1, got 0"),
    (["--steps", "ten"], "argument --steps: expected an integer, got 'ten'"),
    (["--n-envs", "0"], "argument --n-envs: must be >= 1, got 0"),
    (["--eval-episodes", "0"], "argument --eval-episodes: must be >= 1, got 0"),
    (["--checkpoint-every", "-1"], "argument --checkpoint-every: must be >= 0, got -1"),
    (["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["--log-interval", "0"], "argument --log-interval: must be >= 1, got 0"),
    (["--set", "net_arch=[32,"], r"--set net_arch=\[32,: '\[32,' is not valid JSON"),
    (["--set", "learning_rate=abc"], "polyak train: learning_rate must be a finite number, got 'abc'"),
    (["--set", "buffer_size=1e3"], "polyak train: buffer_size must be an integer, got 1000.0"),
    (["--set", "nosuch=1"], "polyak train: unknown hyperparameter"),
    (["--set", "seed=3"], r"--set seed=\.\.\.: seed is not a hyperparameter; use --seed"),
    (["--env-kwarg", "g=[1,"], r"--env-kwarg g=\[1,: '\[1,' is not valid JSON"),
])
def test_bad_command_lines_exit_nonzero_with_the_flag_named_and_leave_no_run_folder(tmp_path, capsys, args,
                                                                                     message):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(["train", "sac", "--no-progress", "--run-dir", str(run_dir), *args])
    captured = capsys.readouterr()
    text = f"{exc.value.code} {captured.err}"
    assert exc.value.code != 0 and exc.value.code is not None
    assert pytest.importorskip("re").search(message, text), text
    assert not run_dir.exists()


SWEEP = {"name": "s", "algorithms": ["sac"], "envs": ["Pendulum-v1"], "steps": 100}


@pytest.mark.parametrize("change, message", [
    ({"set": {"buffer_size": 1e4}}, "buffer_size must be an integer, got 10000.0"),
    ({"envs": ["Pendulum-v9"]}, "unknown env id 'Pendulum-v9'; did you mean 'Pendulum-v1'"),
    ({"algorithms": ["dqn"]}, r"dqn does not fit Pendulum-v1 \(Box observations, Box actions; dqn takes Box "
                              r"observations and Discrete actions\); algorithms that fit: ddpg, sac, td3, tqc, .*a2c"),
    ({"algorithms": ["sac"], "envs": ["CartPole-v1"]}, "sac does not fit CartPole-v1 .* algorithms that fit: dqn"),
    ({"checkpoint_every": -5}, "'checkpoint_every' must be >= 0"),
])
def test_sweep_files_are_checked_before_any_run(change, message):
    with pytest.raises(SweepFileError, match=message):
        parse_sweep({**SWEEP, **change})


def test_sweep_dry_run_refuses_a_bad_file(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text('name = "s"\nalgorithms = ["dqn"]\nenvs = ["Pendulum-v1"]\n')
    with pytest.raises(SystemExit, match="dqn does not fit Pendulum-v1"):
        main(["sweep", str(f), "--dry-run"])


class RewardShapeEnv(CountingEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, np.array([reward]), terminated, truncated, info


class ObsShapeEnv(CountingEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return np.append(obs, 0.0), reward, terminated, truncated, info


@pytest.mark.parametrize("env, message", [
    (RewardShapeEnv(), r"RewardShapeEnv returned a reward array\(\[1.\]\) of shape \(1,\); a reward must be one number"),
    (ObsShapeEnv(), r"returned an observation of shape \(3,\); its observation space Box.* promises \(2,\)"),
])
def test_env_outputs_are_checked_against_the_spaces_at_the_first_step(env, message):
    model = polyak.SAC("MlpPolicy", env, **SMALL)
    with pytest.raises(ValueError, match=message):
        model.learn(3)


def nan_on_reset(total_steps, obs):
    """NaN in the reset observation (t = 0) after the first episode (5 steps), nowhere else."""
    return np.array([np.nan, obs[1]], np.float32) if total_steps == 5 and obs[0] == 0 else obs


@pytest.mark.parametrize("obs_fn, message", [
    (lambda n, obs: obs * np.nan, r"non-finite reset observation before environment step 1: row 0 entries \[0, 1\]"),
    (nan_on_reset, r"non-finite reset observation after environment step 5: row 0 entries \[0\] = \[nan\]"),
    (lambda n, obs: np.array([obs[0], np.inf], np.float32) if n == 3 else obs,
     r"non-finite observation at environment step 3: row 0 entries \[1\] = \[inf\]"),
])
def test_every_observation_is_checked_reset_ones_included(obs_fn, message):
    model = polyak.SAC("MlpPolicy", CountingEnv(length=5, obs_fn=obs_fn), **SMALL)
    with pytest.raises(NonFiniteError, match=message):
        model.learn(20)


def test_a_huge_finite_observation_warns_once_with_the_step():
    env = CountingEnv(obs_fn=lambda n, obs: obs * 1e30 if n in (2, 3) else obs)
    model = polyak.SAC("MlpPolicy", env, **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.learn(10)
    huge = [w for w in caught if "beyond 1e+06" in str(w.message)]
    assert len(huge) == 1 and "observation at environment step 2" in str(huge[0].message)


def test_predict_names_the_bad_rows_of_a_batch_not_the_batch():
    model = polyak.SAC("MlpPolicy", "Pendulum-v1", **SMALL)
    obs = np.zeros((10_000, 3), np.float32)
    obs[4321, 1] = np.nan
    with pytest.raises(NonFiniteError) as exc:
        model.predict(obs)
    assert str(exc.value) == ("non-finite observation passed to predict(): row 4321 entries [1] = [nan] "
                              "(of 10000 rows)")


class FailingEnv(CountingEnv):
    def step(self, action):
        if self.total_steps == 7:
            raise RuntimeError("the control system went away")
        return super().step(action)


def test_save_after_an_env_exception_records_no_step_that_never_ran(tmp_path):
    model = polyak.SAC("MlpPolicy", FailingEnv(length=5), seed=0, **SMALL)
    with pytest.raises(RuntimeError, match="went away"):
        model.learn(20)
    assert model.num_timesteps == 7
    path = model.save(tmp_path / "m.polyak", include_buffer=True)
    arrays, meta = read_checkpoint(path)
    assert meta["num_timesteps"] == 7
    assert not any(k.startswith("host/") for k in arrays)  # no running episode: the env's state is unknown
    resumed = polyak.SAC.load(path, env=CountingEnv(length=5))
    resumed.learn(5)  # starts a fresh episode and goes on
    assert resumed.num_timesteps == 12


def test_resuming_without_the_buffer_warns_and_refills_before_updating(tmp_path):
    model = polyak.SAC("MlpPolicy", CountingEnv(length=50), seed=0, **SMALL)
    model.learn(30)
    path = model.save(tmp_path / "m.polyak")  # without the buffer
    resumed = polyak.SAC.load(path, env=CountingEnv(length=50))
    before = jax_leaves(resumed.learner.agent.critic_params)  # (the learner's arrays are donated to each step)
    with pytest.warns(RuntimeWarning, match=r"resuming at environment step 30 without the replay buffer \(the "
                                            r"checkpoint was saved without it\): the next 8 transitions refill it"):
        resumed.learn(7)  # the 8th transition completes the refill, and its step updates
    after = jax_leaves(resumed.learner.agent.critic_params)
    assert all(np.array_equal(a, b) for a, b in zip(before, after)), "an update ran before the buffer was refilled"
    assert int(resumed.learner.buffer.size) == 7
    resumed.learn(4)  # refilled: updates resume
    assert not all(np.array_equal(a, b) for a, b in zip(before, jax_leaves(resumed.learner.agent.critic_params)))


def jax_leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_cli_help_mentions_resume_and_the_buffer_rule():
    out = subprocess.run([sys.executable, "-m", "polyak", "train", "--help"], capture_output=True, text=True)
    text = " ".join(out.stdout.split())
    assert "resumes from its latest checkpoint" in text and "--fresh" in text and "at most 1 GiB" in text
