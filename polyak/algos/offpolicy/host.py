"""The off-policy family's model class: the SB3-style API and the host loop over Gymnasium envs."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak.algos import registry
from polyak.algos.algorithm import Algorithm, compile_ahead
from polyak.algos.offpolicy.jitted import JittedLoop
from polyak.algos.offpolicy.learner import Learner, LoopSpec, compiled, diagnostics, new_buffer
from polyak.core.config import HyperparameterError
from polyak.core.noise import NormalActionNoise, noise_from_config, noise_to_config
from polyak.core.returns import nstep_clear
from polyak.envs.spaces import DiscreteActions, action_size, check_spaces


class OffPolicyAlgorithm(Algorithm):
    """The off-policy family's part of the model API: replay buffer, warm-up, exploration noise or epsilon,
    K gradient steps per env step in one donated jitted call, Q-value monitoring."""

    jax_env_loop = JittedLoop

    has_q_critic: ClassVar[bool] = True
    action_space_kind: ClassVar[str] = "Box"  # the gymnasium action space the algorithm handles ("Discrete": DQN)
    # Without action_noise: Gaussian noise of std config.exploration_noise (deterministic policies), or none
    gaussian_exploration: ClassVar[bool] = False

    def __init__(self, policy: str = "MlpPolicy", env: Any = None, *, action_noise=None, **kwargs: Any):
        self.action_noise = action_noise  # checked in _configure, once the config exists
        super().__init__(policy, env, **kwargs)

    # -- construction ----------------------------------------------------------------------
    def _configure(self) -> None:
        if self.action_noise is None and self.gaussian_exploration:
            self.action_noise = NormalActionNoise(0.0, self.config.exploration_noise)
        noise_to_config(self.action_noise)  # validates the type
        if self.action_noise is not None and self.action_space_kind != "Box":
            raise HyperparameterError(f"action_noise is for continuous actions; {type(self).__name__} explores "
                                      "epsilon-greedily (exploration_fraction, exploration_initial_eps, "
                                      "exploration_final_eps)")

    def _restore_options(self, metadata: dict[str, Any]) -> None:
        self.action_noise = noise_from_config(metadata["action_noise"])

    def _check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        check_spaces(observation_space, action_space, type(self).__name__, self.action_space_kind,
                     registry.by_action_kind())

    def _build(self, obs_dim: int, action_space: gym.Space, n_envs: int) -> None:
        self.agent = self.agent_cls(self.config, obs_dim, action_size(action_space))
        self.spec = LoopSpec(self.agent, self.action_noise, n_envs)
        self._fns = compiled(self.spec)

    def _init_learner(self, key: jax.Array, with_buffer: bool = False) -> Learner:
        learner = self._fns["init"](key, with_buffer)
        # Distinct buffers for every leaf (targets start as copies of the online networks), so
        # that donating the learner to the jitted step never donates one buffer twice.
        return jax.tree.map(jnp.array, learner)

    def _first_action(self, obs: np.ndarray) -> np.ndarray:
        if self.learner.window is not None:  # new episodes: steps still pending belong to no episode now
            self.learner = self.learner._replace(window=nstep_clear(self.learner.window))
        random = self.num_timesteps < self.config.learning_starts
        self.learner, action = self._fns["first_action"](self.learner, jnp.asarray(obs), jnp.float32(random))
        return np.asarray(action)

    # -- training: the device side of the host loop (`Algorithm.learn`) --------------------------
    def _host_steps(self, total_timesteps: int):
        """Per environment step two donated jitted calls, store_step and train_step (or the collect-only
        step: warm-up, or between train_freq steps); the host syncs the next action and one int.
        With `act_before_update`: store_and_act, then update_phase dispatched without waiting for it,
        so the envs step while it runs; a non-finite update is then noticed one step later (or at the end)."""
        cfg, n_envs, columns = self.config, self.n_envs, self.spec.columns
        if self.learner.buffer is None:
            if self.num_timesteps > 0:  # resumed from a checkpoint saved without its replay buffer
                refill = max(cfg.learning_starts, cfg.batch_size)
                self._updates_from = self.num_timesteps + refill
                warnings.warn(
                    f"resuming at environment step {self.num_timesteps} without the replay buffer (the checkpoint "
                    f"was saved without it): the next {refill} transitions refill it with the current policy "
                    "before updates resume, so training differs from an uninterrupted run (save with "
                    "include_buffer=True, or --save-buffer, for an exact resume)", RuntimeWarning, stacklevel=3)
            self.learner = self.learner._replace(buffer=jax.tree.map(jnp.array, new_buffer(
                self.spec, self.config.buffer_size)))
        n_grad = cfg.gradient_steps if cfg.gradient_steps > 0 else cfg.train_freq * n_envs
        store_fn, train_fn, collect_fn = self._fns["store"], self._fns["train"](n_grad), self._fns["train"](0)
        store_act_fn, update_fn = self._fns["store_and_act"], self._fns["update_phase"](n_grad)
        packed = columns.zeros(n_envs)
        ahead = None
        if self.num_timesteps < cfg.learning_starts:  # compile the training step while warm-up steps run
            ahead = (compile_ahead(update_fn, self.learner) if cfg.act_before_update
                     else compile_ahead(train_fn, self.learner, packed))

        def step(batch) -> np.ndarray:
            warm_up = self.num_timesteps < cfg.learning_starts  # uniform random actions
            learning = not warm_up and self.num_timesteps >= self._updates_from  # (after a refill)
            columns.fill(packed, {
                "obs": self._obs, "action": self._pending_action, "reward": batch.reward,
                "next_obs": batch.next_obs, "terminated": batch.terminated, "truncated": batch.truncated,
                "valid": batch.valid, "act_obs": batch.obs, "episode_start": batch.episode_start,
                "random": 1.0 if warm_up else 0.0})
            train_now = learning and (self.num_timesteps // n_envs) % cfg.train_freq == 0
            if cfg.act_before_update:
                self.learner, next_action, bad_step = store_act_fn(self.learner, packed)
                if train_now:  # dispatched, not awaited: it runs while the host steps the envs
                    self.learner = update_fn(self.learner)
            else:
                buffer, window = store_fn(self.learner.buffer, self.learner.window, packed)
                self.learner = self.learner._replace(buffer=buffer, window=window)
                self.learner, next_action, bad_step = (train_fn if train_now else collect_fn)(self.learner, packed)
            next_action, bad_step = jax.device_get((next_action, bad_step))
            if bad_step >= 0:
                self._raise_nonfinite_update()
            return np.asarray(next_action)

        def finish() -> None:
            if ahead is not None:  # learn() ended during the warm-up: do not leave the compiler running behind it
                ahead.join()
            if cfg.act_before_update and int(jax.device_get(self.learner.monitor.nonfinite_step)) >= 0:
                self._raise_nonfinite_update()  # the last update was not checked by a following step

        return step, finish

    def _diagnostics(self):
        return diagnostics(self.learner)

    # -- inference -------------------------------------------------------------------------
    def predict_q(self, observations, actions) -> np.ndarray:
        """The critics' Q(s, a) for observations and actions in the env's units, in reward units.

        observations (n, obs_dim), actions (n, act_dim) -> (n, n_critics); a single (obs_dim,) and
        (act_dim,) pair gives (n_critics,). Actions are mapped to [-1, 1] (clipped to the action
        space, as the env would receive them); the normaliser is frozen; values are divided by
        `reward_scale`. Online critics, in the order the agent keeps them (column 0 is Q_1).
        Discrete actions: (n,) action indices (or (n, 1)), one critic column (Q of the Q-network).
        """
        return critic_values(self, observations, actions)

    # -- checkpoints: the replay buffer is optional -------------------------------------------
    def replay_buffer_nbytes(self) -> int:
        row = jax.eval_shape(lambda: new_buffer(self.spec, 1).data)
        return self.config.buffer_size * sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(row))

    def _learner_to_save(self, include_buffer: bool) -> Learner:
        return self.learner if include_buffer else self.learner._replace(buffer=None)

    def _extra_metadata(self, include_buffer: bool) -> dict[str, Any]:
        return {"action_noise": noise_to_config(self.action_noise),
                "includes_buffer": bool(include_buffer and self.learner.buffer is not None)}

    def _checkpoint_template(self, metadata: dict[str, Any]) -> Learner:
        return self._init_learner(jax.random.PRNGKey(0), with_buffer=metadata["includes_buffer"])


def critic_values(model: Algorithm, observations, actions) -> np.ndarray:
    """`predict_q` of a model whose `_fns["q"]` evaluates its critics (the off-policy and offline families)."""
    obs = np.asarray(observations, np.float32)
    act = np.asarray(actions, np.float32)
    single = obs.ndim == 1
    obs, act = (obs[None], act[None]) if single else (obs, act)
    if isinstance(model.scaler, DiscreteActions) and act.ndim == 1:
        act = act[:, None]
    if obs.ndim != 2 or obs.shape[1] != model.agent.obs_dim or act.shape != (obs.shape[0], model.agent.act_dim):
        raise ValueError(f"predict_q needs observations (n, {model.agent.obs_dim}) and actions "
                         f"(n, {model.agent.act_dim}), got {np.shape(observations)} and {np.shape(actions)}")
    model._check_finite(obs, "observation passed to predict_q()")
    model._check_finite(act, "action passed to predict_q()")
    if isinstance(model.scaler, DiscreteActions):
        agent_act = model.scaler.to_agent(np.rint(act[:, 0]))
    else:
        agent_act = np.clip(model.scaler.to_agent(act), -1.0, 1.0)
    q = np.asarray(model._fns["q"](model.learner.agent, model.learner.obs_rms, obs, agent_act))
    return q[0] if single else q
