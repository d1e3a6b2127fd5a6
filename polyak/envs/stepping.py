"""Stepping environments with episode boundaries kept apart (terminated vs truncated).

Two steppers present any environment as n parallel copies with the same interface:
  * `SingleEnvStepper` drives one `gymnasium.Env` itself: each episode is reset with a seed derived
    from (seed, episode index), and the actions of the running episode are recorded, so a
    checkpoint can restore the environment mid-episode exactly by replaying them.
  * `VectorEnvStepper` wraps a Gymnasium vector env in its SAME_STEP or NEXT_STEP autoreset mode
    (gymnasium 0.29's vector envs are SAME_STEP; `gym_compat` names the final-observation keys).
`jax_envs_step` is the same SAME_STEP logic for a batch of JAX environments, as a pure function:
the Gymnasium vector adapter of a JAX env and the fully jitted training loops both call it.
On truncation `next_obs` is the true final observation, never the auto-reset one.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np

from polyak.envs.gym_compat import FINAL_OBS, FINAL_OBS_MASK, AutoresetMode, autoreset_mode_of


class StepBatch(NamedTuple):
    """What one environment step yields for the learner (leading dimension n_envs)."""

    next_obs: np.ndarray  # the true next observation of each transition
    reward: np.ndarray
    terminated: np.ndarray  # bool: stop bootstrapping
    truncated: np.ndarray  # bool: time limit; bootstrap from next_obs
    valid: np.ndarray  # bool: False for the reset step of NEXT_STEP vector envs (not a transition)
    obs: np.ndarray  # the observation to act on next (the reset observation after an episode end)
    episode_start: np.ndarray  # bool: `obs` begins a new episode


def episode_seed(seed: int, env_index: int, episode: int) -> int:
    return int(np.random.SeedSequence([seed, env_index, episode]).generate_state(1)[0])


def _env_name(env) -> str:
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(getattr(env, "unwrapped", env)).__name__


def check_env_output(env, observation_space: gym.Space, obs, reward=None, n_envs: int | None = None) -> None:
    """The env's observation (and reward) must have the shapes its spaces promise; the error names the env,
    the space and the shape (an env returning reward of shape (1,) or a wrongly shaped observation)."""
    shape = np.shape(obs)
    want = tuple(observation_space.shape or ())
    want = want if n_envs is None else (n_envs, *want)
    if shape != want:
        raise ValueError(f"{_env_name(env)} returned an observation of shape {shape}; its observation space "
                         f"{observation_space} promises {want}")
    if reward is not None:
        want_r = () if n_envs is None else (n_envs,)
        if np.shape(reward) != want_r or not np.issubdtype(np.asarray(reward).dtype, np.number):
            raise ValueError(f"{_env_name(env)} returned a reward {reward!r} of shape {np.shape(reward)}; a reward "
                             f"must be one number per env, shape {want_r}")


class SingleEnvStepper:
    n_envs = 1

    def __init__(self, env: gym.Env, seed: int, env_index: int = 0):
        self.env, self.seed = env, int(seed)
        self.env_index = int(env_index)  # distinct reset seeds for several single envs (A3C's workers)
        self.episode = 0
        self.episode_actions: list[np.ndarray] = []  # env-space actions of the running episode

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=episode_seed(self.seed, self.env_index, self.episode))
        self.episode_actions = []
        check_env_output(self.env, self.env.observation_space, obs)
        return np.asarray(obs, np.float32)[None]

    def step(self, env_action: np.ndarray) -> StepBatch:
        action = env_action[0]
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.episode_actions.append(action)  # only once the env has taken it (a raising step records nothing)
        check_env_output(self.env, self.env.observation_space, next_obs, reward)
        next_obs = np.asarray(next_obs, np.float32)[None]
        done = terminated or truncated
        if done:
            self.episode += 1
            obs = self.reset()
        else:
            obs = next_obs
        return StepBatch(next_obs, np.asarray([reward], np.float32), np.asarray([terminated]),
                         np.asarray([truncated]), np.ones(1, bool), obs, np.asarray([done]))

    def restore(self, episode: int, episode_actions: np.ndarray) -> np.ndarray:
        """Reset to the start of `episode` and replay its recorded actions; returns the observation."""
        self.episode = int(episode)
        obs = self.reset()
        for action in episode_actions:
            self.episode_actions.append(action)
            next_obs, _, terminated, truncated, _ = self.env.step(action)
            if terminated or truncated:
                raise RuntimeError("replaying the checkpointed episode ended it early: the environment is not "
                                   "deterministic given its reset seed and actions, so it cannot be resumed exactly")
            obs = np.asarray(next_obs, np.float32)[None]
        return obs


class VectorEnvStepper:
    def __init__(self, env: gym.vector.VectorEnv, seed: int):
        self.env, self.seed = env, int(seed)
        self.n_envs = env.num_envs
        mode = autoreset_mode_of(env)
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"vector env autoreset mode {mode} is not supported; use NEXT_STEP or SAME_STEP")
        self.same_step = mode == AutoresetMode.SAME_STEP
        self.episode = 0
        self.episode_actions: list[np.ndarray] = []
        self._pending_reset = np.zeros(self.n_envs, bool)

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=self.seed)
        self._pending_reset[:] = False
        check_env_output(self.env, self.env.single_observation_space, obs, n_envs=self.n_envs)
        return np.asarray(obs, np.float32)

    def step(self, env_action: np.ndarray) -> StepBatch:
        obs, reward, terminated, truncated, info = self.env.step(env_action)
        check_env_output(self.env, self.env.single_observation_space, obs, reward, n_envs=self.n_envs)
        obs = np.asarray(obs, np.float32)
        done = np.logical_or(terminated, truncated)
        if self.same_step:
            next_obs = obs.copy()
            if done.any():  # the returned obs are reset observations: fetch the true final ones
                mask = info.get(FINAL_OBS_MASK, done)
                for i in np.flatnonzero(mask):
                    next_obs[i] = info[FINAL_OBS][i]
            valid = np.ones(self.n_envs, bool)
            episode_start = done
        else:  # NEXT_STEP: a step after `done` only resets that env; it is not a transition
            next_obs = obs
            valid = ~self._pending_reset
            episode_start = self._pending_reset.copy()
            self._pending_reset = done.copy()
            # after `done`, the next call resets; the observation to act on is still obs (ignored action)
        return StepBatch(next_obs, np.asarray(reward, np.float32), np.asarray(terminated, bool),
                         np.asarray(truncated, bool), valid, obs, episode_start)


def jax_envs_step(env, params, key, states, env_actions):
    """Step a batch of JAX envs (`polyak.envs.JaxEnv`) once, resetting those that end (SAME_STEP).

    Returns (key, states, StepBatch, info): `StepBatch.next_obs` is the true final observation of
    each transition, `StepBatch.obs` the observation to act on next (a reset one where the episode
    ended). Pure and jittable; `info` is the env's info from the step taken, before any reset.
    """
    import jax
    import jax.numpy as jnp

    n = env_actions.shape[0]
    key, step_key, reset_key = jax.random.split(key, 3)
    states, final_obs, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
        jax.random.split(step_key, n), states, env_actions, params)
    done = terminated | truncated
    fresh_states, fresh_obs = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, n), params)

    def pick(fresh, old):
        return jnp.where(done.reshape(done.shape + (1,) * (old.ndim - 1)), fresh, old)

    states = jax.tree.map(pick, fresh_states, states)
    batch = StepBatch(final_obs, reward, terminated, truncated, jnp.ones(n, bool), pick(fresh_obs, final_obs), done)
    return key, states, batch, info


def jax_envs_reset(env, params, key, n: int):
    """Reset a batch of n JAX envs from one key, as `GymnasiumVectorAdapter.reset(seed)` does."""
    import jax

    key, sub = jax.random.split(key)
    states, obs = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(sub, n), params)
    return key, states, obs
