"""Gymnasium 0.29.1 and 1.x through `polyak.envs.gym_compat`: the same transitions from either version's vector envs.

Runs under whichever Gymnasium is installed (CI runs it under 1.4 and, with `ci/gym029.sh`, 0.29.1). The checks read
what the installed Gymnasium really emits (its info keys, its auto-reset), so a wrong name or mode in the compat
module fails here, not in a user's run.
"""

import gymnasium as gym
import numpy as np
import pytest

from polyak.envs.gym_compat import (
    FINAL_OBS,
    FINAL_OBS_MASK,
    GYMNASIUM_1,
    AutoresetMode,
    autoreset_mode_of,
    make_vector,
    sync_vector_env,
)
from polyak.envs.protocol import GymnasiumVectorAdapter
from polyak.envs.stepping import VectorEnvStepper
from tests.fake_envs import CountingEnv, ScriptedJaxEnv

pytestmark = pytest.mark.gym029

COUNTING = "polyak_tests/Counting-v0"
if COUNTING not in gym.registry:
    gym.register(id=COUNTING, entry_point="tests.fake_envs:CountingEnv", disable_env_checker=True)

next_step_only_in_1x = pytest.mark.skipif(not GYMNASIUM_1, reason="gymnasium 0.29's vector envs have no NEXT_STEP")


def step_n(env, n, act_dim=1):
    out = None
    for _ in range(n):
        out = env.step(np.zeros((env.num_envs, act_dim), np.float32))
    return out


def test_version_flag_matches_the_installed_gymnasium():
    assert GYMNASIUM_1 == (int(gym.__version__.split(".")[0]) >= 1)
    assert GYMNASIUM_1 == hasattr(gym.vector, "AutoresetMode")  # the one difference that broke `import polyak`


def test_same_step_vector_env_reports_the_final_observation_under_the_installed_versions_keys():
    env = make_vector(COUNTING, 2, length=3)
    assert isinstance(env, gym.vector.VectorEnv) and autoreset_mode_of(env) == AutoresetMode.SAME_STEP
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = step_n(env, 3)
    # reset in the same step: the returned obs start episode 1, the final ones [3, episode 0] are in info
    np.testing.assert_array_equal(obs, [[0, 101], [0, 101]])
    np.testing.assert_array_equal(terminated, [True, True])
    assert FINAL_OBS in info and FINAL_OBS_MASK in info, sorted(info)
    np.testing.assert_array_equal(info[FINAL_OBS_MASK], [True, True])
    np.testing.assert_array_equal(np.stack(info[FINAL_OBS]), [[3, 100], [3, 100]])
    env.close()


def test_stepper_reads_final_observations_of_envs_that_end_at_different_steps():
    """Env 0 ends after 2 steps, env 1 after 3: only the masked rows of the final-observation entry are read
    (under 0.29 the other entries are None), every vector step is a transition, and episode starts are marked."""
    env = sync_vector_env([lambda: CountingEnv(2), lambda: CountingEnv(3)])
    stepper = VectorEnvStepper(env, seed=0)
    assert stepper.same_step
    stepper.reset()
    next_obs, starts = [], []
    for _ in range(4):
        batch = stepper.step(np.zeros((2, 1), np.float32))
        assert batch.valid.all()
        next_obs.append(batch.next_obs[:, 0].tolist())
        starts.append(batch.episode_start.tolist())
    assert next_obs == [[1, 1], [2, 2], [1, 3], [2, 1]]  # true final observations 2 and 3, not reset ones (0)
    assert starts == [[False, False], [True, False], [False, True], [True, False]]


@next_step_only_in_1x
def test_next_step_vector_env_marks_the_reset_step_invalid():
    env = make_vector(COUNTING, 2, same_step=False, length=2)
    assert autoreset_mode_of(env) == AutoresetMode.NEXT_STEP
    stepper = VectorEnvStepper(env, seed=0)
    assert not stepper.same_step
    stepper.reset()
    batches = [stepper.step(np.zeros((2, 1), np.float32)) for _ in range(3)]
    assert [b.valid.tolist() for b in batches] == [[True, True], [True, True], [False, False]]
    np.testing.assert_array_equal(batches[1].next_obs[:, 0], [2, 2])  # the final observation itself
    np.testing.assert_array_equal(batches[2].obs, [[0, 101], [0, 101]])  # the reset step: a new episode


@pytest.mark.skipif(GYMNASIUM_1, reason="gymnasium 1.x has NEXT_STEP vector envs")
def test_next_step_request_under_029_names_the_version():
    with pytest.raises(ValueError, match=r"NEXT_STEP auto-reset needs gymnasium >= 1.0"):
        make_vector(COUNTING, 2, same_step=False)


def test_jax_vector_adapter_resets_in_the_same_step_with_the_installed_versions_keys():
    """polyak's own vector env: SAME_STEP, the final observation under the same keys as Gymnasium's own
    vector envs (compared with a SyncVectorEnv's info above), and it closes under both versions."""
    env = GymnasiumVectorAdapter(ScriptedJaxEnv(), 3, params=np.int32(2))  # time limit: 2 steps
    assert autoreset_mode_of(env) == AutoresetMode.SAME_STEP
    assert env.num_envs == 3 and env.single_observation_space.shape == (3,) and env.observation_space.shape == (3, 3)
    env.reset(seed=1)
    obs, _, terminated, truncated, info = step_n(env, 1)
    assert not (terminated | truncated).any() and FINAL_OBS not in info
    obs, _, terminated, truncated, info = step_n(env, 1)  # c starts below 4, so no termination: truncation
    np.testing.assert_array_equal(truncated, [True, True, True])
    np.testing.assert_array_equal(info[FINAL_OBS_MASK], [True, True, True])
    np.testing.assert_array_equal(info[FINAL_OBS][:, 1], [2, 2, 2])  # the step counter of the final observation
    np.testing.assert_array_equal(obs[:, 1], [0, 0, 0])  # reset observations returned
    env.close()
    assert env.closed


def test_make_vector_passes_env_kwargs_to_polyaks_vector_entry_point():
    """0.29's make_vec drops an env's kwargs on the way to a vector entry point; make_vector does not."""
    env = make_vector("polyak/Pendulum-v1", 2, max_steps=3)
    assert isinstance(env, GymnasiumVectorAdapter) and env.spec.id == "polyak/Pendulum-v1"
    assert env.params.max_steps == 3
    env.reset(seed=0)
    _, _, _, truncated, _ = step_n(env, 3)
    assert truncated.all()


def test_jax_env_adapter_passes_the_installed_versions_env_checker():
    env = gym.make("polyak/Pendulum-v1", max_steps=2)  # gym.make wraps it in the passive env checker
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info == {}
    for expect_truncated in (False, True):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert isinstance(reward, float) and not terminated and truncated == expect_truncated
    assert type(env.unwrapped).__name__ == "GymnasiumAdapter"
