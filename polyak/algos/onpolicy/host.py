"""The on-policy family's model class: the SB3-style API and the host loop over Gymnasium envs."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak.algos import registry
from polyak.algos.algorithm import Algorithm, Callback, NonFiniteError
from polyak.algos.onpolicy.learner import (
    _UPDATE_COMPILED,
    OnPolicyLearner,
    OnPolicySpec,
    compile_ahead,
    compiled,
)
from polyak.envs.spaces import SpaceError, check_spaces
from polyak.envs.stepping import VectorEnvStepper
from polyak.io.logger import RunLogger


def check_policy_gradient_spaces(observation_space: gym.Space, action_space: gym.Space, algo_name: str) -> None:
    """Box (bounded) or Discrete actions; a flat Box observation."""
    if isinstance(action_space, gym.spaces.Discrete):
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
            raise SpaceError(f"{algo_name} with an MLP policy needs a flat 1-D Box observation space, got "
                             f"{observation_space}; flatten it first (gymnasium.wrappers.FlattenObservation)")
        if action_space.start != 0:
            raise SpaceError(f"{algo_name} needs a Discrete action space starting at 0, got {action_space}")
        return
    if not isinstance(action_space, gym.spaces.Box):
        raise SpaceError(f"{algo_name} needs a Box or Discrete action space, got {action_space}")
    check_spaces(observation_space, action_space, algo_name, alternatives=registry.by_action_kind())


class OnPolicyAlgorithm(Algorithm):
    """The on-policy family's part of the model API: whole rollouts collected with the current policy,
    one update per rollout (the learner keeps the partly filled rollout, so training resumes mid-rollout)."""

    example_env = "CartPole-v1"

    # -- construction ----------------------------------------------------------------------
    @staticmethod
    def _action_layout(action_space: gym.Space) -> tuple[int, int]:
        """(act_dim, n_actions): (Box dim, 0) or (1, n) for Discrete(n)."""
        if isinstance(action_space, gym.spaces.Discrete):
            return 1, int(action_space.n)
        return int(action_space.shape[0]), 0

    def _check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        check_policy_gradient_spaces(observation_space, action_space, type(self).__name__)

    def _check_stepper(self, stepper) -> None:
        if isinstance(stepper, VectorEnvStepper) and not stepper.same_step:
            raise ValueError(
                f"{type(self).__name__} needs every vector step to be a transition: create the vector env with "
                "SAME_STEP autoreset, e.g. gymnasium.make_vec(id, n, vector_kwargs={'autoreset_mode': "
                "gymnasium.vector.AutoresetMode.SAME_STEP}) (polyak's own JAX envs already are)")

    def _build(self, obs_dim: int, action_space: gym.Space, n_envs: int) -> None:
        self.agent = self.agent_cls(self.config, obs_dim, *self._action_layout(action_space))
        self.spec = OnPolicySpec(self.agent, n_envs)
        self._fns = compiled(self.spec)

    def _init_learner(self, key: jax.Array) -> OnPolicyLearner:
        return self._fns["init"](key)

    def _first_action(self, obs: np.ndarray) -> np.ndarray:
        self.learner, action = self._fns["start"](self.learner, jnp.asarray(obs))
        return np.asarray(action)

    # -- training --------------------------------------------------------------------------
    def learn(self, total_timesteps: int, callback: Callback | None = None, log_interval: int = 1000,
              progress_bar: bool = False, run_dir: str | Path | None = None, reset_num_timesteps: bool = False,
              logger: RunLogger | None = None) -> "OnPolicyAlgorithm":
        """Train for `total_timesteps` more environment steps (whole vector steps).

        `callback(model)` runs after every environment step; returning False stops training.
        Metrics of the latest update are logged every `log_interval` steps.
        """
        logger, own_logger = self._start_learn(total_timesteps, reset_num_timesteps, logger, run_dir, progress_bar)
        n_envs, cols = self.n_envs, self.spec.columns()
        collect, collect_update = self._fns["host_collect"], self._fns["collect_update"]
        packed = np.zeros((n_envs, self.spec.packed_width), np.float32)
        # The update's program takes seconds to compile: when this run will reach the end of a rollout,
        # compile it in the background while the first rollout is collected (same program, same results).
        ahead = None
        if (self.spec not in _UPDATE_COMPILED
                and int(self.learner.row) + -(-int(total_timesteps) // n_envs) >= self.config.n_steps):
            _UPDATE_COMPILED.add(self.spec)
            ahead = compile_ahead(collect_update, self.learner, packed)
        self._start_episodes()
        row = int(self.learner.row)
        target = self.num_timesteps + int(total_timesteps)
        next_log = (self.num_timesteps // log_interval + 1) * log_interval
        logger.start(int(total_timesteps), self.num_timesteps)
        try:
            while self.num_timesteps < target:
                batch = self._step_envs()
                self.num_timesteps += n_envs
                packed[:, cols["reward"]] = batch.reward[:, None]
                packed[:, cols["next_obs"]] = batch.next_obs
                packed[:, cols["terminated"]] = batch.terminated[:, None]
                packed[:, cols["truncated"]] = batch.truncated[:, None]
                packed[:, cols["act_obs"]] = batch.obs
                packed[:, cols["episode_start"]] = batch.episode_start[:, None]
                row += 1
                full = row == self.config.n_steps
                if full:
                    if ahead is not None:
                        ahead.join()  # compiled by now, or finishing: never compile the same program twice
                        ahead = None
                    self.learner, next_action = collect_update(self.learner, packed)
                else:  # the agent state and metrics stay out of the call (see host_collect_step)
                    agent, metrics = self.learner.agent, self.learner.metrics
                    learner, next_action = collect(agent.params, self.learner._replace(agent=None, metrics=None),
                                                   packed)
                    self.learner = learner._replace(agent=agent, metrics=metrics)
                self._pending_action = np.asarray(next_action)
                if full:
                    row = 0
                    if int(self.learner.nonfinite_step) >= 0:
                        self._raise_nonfinite_loss()
                self._obs = batch.obs
                self._record_episodes(batch, logger)
                logger.progress(n_envs)
                if self.num_timesteps >= next_log:
                    logger.metrics(self.num_timesteps, {k: float(v) for k, v in jax.device_get(self.learner.metrics).items()})
                    next_log += log_interval
                if callback is not None and callback(self) is False:
                    break
        finally:
            if ahead is not None:  # stopped before the first update: do not leave the compiler running
                ahead.join()
            if own_logger:
                logger.close()
        return self

    def _raise_nonfinite_loss(self) -> None:
        learner = jax.device_get(self.learner)
        names = [k for i, k in enumerate(sorted(learner.metrics)) if int(learner.nonfinite_code) >> i & 1]
        raise NonFiniteError(f"non-finite {', '.join(names)} in the update after environment step "
                             f"{int(learner.nonfinite_step)} (training stopped; lower the learning rate or "
                             "normalise rewards)")

    # -- inference -------------------------------------------------------------------------
    def predict_values(self, observations) -> np.ndarray:
        """The critic's V(s) for raw observations (n, obs_dim) -> (n,), frozen normaliser.

        With normalize_reward the values are in normalised-reward units."""
        obs = np.asarray(observations, np.float32).reshape(-1, self.agent.obs_dim)
        return np.asarray(self._fns["value"](self.learner.agent, self.learner.obs_rms, obs))
