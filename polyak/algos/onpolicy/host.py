"""The on-policy family's model class: the SB3-style API and the host loop over Gymnasium envs."""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak.algos import registry
from polyak.algos.algorithm import Algorithm, compile_ahead
from polyak.algos.onpolicy.jitted import OnPolicyJittedLoop
from polyak.algos.onpolicy.learner import OnPolicyLearner, OnPolicySpec, compiled, diagnostics
from polyak.envs.gym_compat import SAME_STEP_HINT
from polyak.envs.spaces import SpaceError, check_spaces
from polyak.envs.stepping import VectorEnvStepper


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

    jax_env_loop = OnPolicyJittedLoop

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
                f"SAME_STEP autoreset, e.g. {SAME_STEP_HINT} (polyak's own JAX envs already are)")

    def _build(self, obs_dim: int, action_space: gym.Space, n_envs: int) -> None:
        self.agent = self.agent_cls(self.config, obs_dim, *self._action_layout(action_space))
        self.spec = OnPolicySpec(self.agent, n_envs)
        self._fns = compiled(self.spec)

    def _init_learner(self, key: jax.Array) -> OnPolicyLearner:
        return self._fns["init"](key)

    def _first_action(self, obs: np.ndarray) -> np.ndarray:
        self.learner, action = self._fns["start"](self.learner, jnp.asarray(obs))
        return np.asarray(action)

    # -- training: the device side of the host loop (`Algorithm.learn`) --------------------------
    def _host_steps(self, total_timesteps: int):
        """Per environment step one jitted call: a collect step within a rollout (the agent state and
        metrics left out of it, see `host_collect_step`), the collect-and-update step at its end."""
        n_envs, columns, n_steps = self.n_envs, self.spec.columns, self.config.n_steps
        collect, collect_update = self._fns["host_collect"], self._fns["collect_update"]
        packed = columns.zeros(n_envs)
        row = int(self.learner.row)
        # The update's program takes seconds to compile: when this run will reach the end of a rollout,
        # compile it in the background while the first rollout is collected (same program, same results).
        ahead = None
        if row + -(-int(total_timesteps) // n_envs) >= n_steps:
            ahead = compile_ahead(collect_update, self.learner, packed)

        def step(batch) -> np.ndarray:
            nonlocal row, ahead
            columns.fill(packed, {"reward": batch.reward, "next_obs": batch.next_obs, "terminated": batch.terminated,
                                  "truncated": batch.truncated, "act_obs": batch.obs,
                                  "episode_start": batch.episode_start})
            row += 1
            if row < n_steps:
                agent, metrics = self.learner.agent, self.learner.metrics
                learner, next_action = collect(agent.params, self.learner._replace(agent=None, metrics=None), packed)
                self.learner = learner._replace(agent=agent, metrics=metrics)
                return np.asarray(next_action)
            if ahead is not None:
                ahead.join()  # compiled by now, or finishing: never compile the same program twice
                ahead = None
            self.learner, next_action = collect_update(self.learner, packed)
            row = 0
            if int(self.learner.nonfinite_step) >= 0:
                self._raise_nonfinite_update()
            return np.asarray(next_action)

        def finish() -> None:
            if ahead is not None:  # stopped before the first update: do not leave the compiler running
                ahead.join()

        return step, finish

    def _diagnostics(self):
        return diagnostics(self.learner)

    # -- inference -------------------------------------------------------------------------
    def predict_values(self, observations) -> np.ndarray:
        """The critic's V(s) for raw observations (n, obs_dim) -> (n,), frozen normaliser.

        With normalize_reward the values are in normalised-reward units."""
        obs = np.asarray(observations, np.float32).reshape(-1, self.agent.obs_dim)
        return np.asarray(self._fns["value"](self.learner.agent, self.learner.obs_rms, obs))
