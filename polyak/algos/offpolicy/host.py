"""The off-policy family's model class: the SB3-style API and the host loop over Gymnasium envs."""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak.algos import registry
from polyak.algos.algorithm import Algorithm, Callback, NonFiniteError
from polyak.algos.offpolicy.learner import (
    Learner,
    LoopSpec,
    compiled,
    new_buffer,
    q_divergence_message,
)
from polyak.core.config import HyperparameterError
from polyak.core.noise import NormalActionNoise, noise_from_config, noise_to_config
from polyak.core.returns import nstep_clear
from polyak.envs.spaces import DiscreteActions, action_size, check_spaces
from polyak.io.logger import RunLogger


class OffPolicyAlgorithm(Algorithm):
    """The off-policy family's part of the model API: replay buffer, warm-up, exploration noise or epsilon,
    K gradient steps per env step in one donated jitted call, Q-value monitoring."""

    has_q_critic: ClassVar[bool] = True
    action_space_kind: ClassVar[str] = "Box"  # the gymnasium action space the algorithm handles ("Discrete": DQN)

    def __init__(self, policy: str = "MlpPolicy", env: Any = None, *, action_noise=None, **kwargs: Any):
        self.action_noise = action_noise  # checked in _configure, once the config exists
        super().__init__(policy, env, **kwargs)

    # -- construction ----------------------------------------------------------------------
    def _configure(self) -> None:
        if self.action_noise is None and hasattr(self.config, "exploration_noise"):
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

    # -- training --------------------------------------------------------------------------
    def learn(self, total_timesteps: int, callback: Callback | None = None, log_interval: int = 1000,
              progress_bar: bool = False, run_dir: str | Path | None = None, reset_num_timesteps: bool = False,
              logger: RunLogger | None = None) -> "OffPolicyAlgorithm":
        """Train for `total_timesteps` more environment steps.

        `callback(model)` runs after every environment step; returning False stops training.
        Metrics are synced from the device every `log_interval` steps.
        """
        logger, own_logger = self._start_learn(total_timesteps, reset_num_timesteps, logger, run_dir, progress_bar)
        if self.learner.buffer is None:
            self.learner = self.learner._replace(buffer=jax.tree.map(jnp.array, new_buffer(
                self.spec, self.config.buffer_size)))
        if hasattr(self.agent, "start_run"):  # e.g. the epsilon schedule's length (kept if already set)
            self.learner = self.learner._replace(agent=self.agent.start_run(
                self.learner.agent, self.num_timesteps + int(total_timesteps)))
        self._start_episodes()
        cfg, n_envs = self.config, self.n_envs
        n_grad = cfg.gradient_steps if cfg.gradient_steps > 0 else cfg.train_freq * n_envs
        store_fn, train_fn, collect_fn = self._fns["store"], self._fns["train"](n_grad), self._fns["train"](0)
        cols = self.spec.columns()
        packed = np.zeros((n_envs, max(s.stop for s in cols.values())), np.float32)
        if self.num_timesteps < cfg.learning_starts and not getattr(self, "_compile_started", False):
            self._compile_started = True  # once per model: later learn() calls hit JAX's cache
            self._compile_in_background(train_fn, packed)
        target = self.num_timesteps + int(total_timesteps)
        next_log = (self.num_timesteps // log_interval + 1) * log_interval
        logger.start(int(total_timesteps), self.num_timesteps)
        try:
            while self.num_timesteps < target:
                action = self._pending_action
                batch = self._step_envs()
                self.num_timesteps += int(batch.valid.sum())
                vector_step = self.num_timesteps // n_envs
                learning = self.num_timesteps >= cfg.learning_starts
                packed[:, cols["obs"]] = self._obs
                packed[:, cols["action"]] = action
                packed[:, cols["reward"]] = batch.reward[:, None]
                packed[:, cols["next_obs"]] = batch.next_obs
                packed[:, cols["terminated"]] = batch.terminated[:, None]
                packed[:, cols["truncated"]] = batch.truncated[:, None]
                packed[:, cols["valid"]] = batch.valid[:, None]
                packed[:, cols["act_obs"]] = batch.obs
                packed[:, cols["episode_start"]] = batch.episode_start[:, None]
                packed[:, cols["random"]] = 0.0 if learning else 1.0
                fn = train_fn if learning and vector_step % cfg.train_freq == 0 else collect_fn
                buffer, window = store_fn(self.learner.buffer, self.learner.window, packed)
                self.learner = self.learner._replace(buffer=buffer, window=window)
                self.learner, next_action, bad_step = fn(self.learner, packed)
                next_action, bad_step = jax.device_get((next_action, bad_step))
                if bad_step >= 0:
                    self._raise_nonfinite_loss()
                self._record_episodes(batch, logger)
                self._obs, self._pending_action = batch.obs, np.asarray(next_action)
                logger.progress(int(batch.valid.sum()))
                if self.num_timesteps >= next_log:
                    self._log(logger)
                    next_log += log_interval
                if callback is not None and callback(self) is False:
                    break
        finally:
            if own_logger:
                logger.close()
        return self

    def _compile_in_background(self, train_fn, packed: np.ndarray) -> None:
        """Compile the training step on a second thread while warm-up steps run on this one
        (XLA releases the GIL); the first training call then finds it in JAX's cache (~2 s saved)."""
        shapes = jax.eval_shape(lambda learner: learner, self.learner)

        def compile_quietly() -> None:
            try:
                train_fn.lower(shapes, packed).compile()
            except Exception:  # the real call will raise the same error where it can be handled
                pass

        threading.Thread(target=compile_quietly, name="polyak-compile", daemon=True).start()

    def _raise_nonfinite_loss(self) -> None:
        mon = jax.device_get(self.learner.monitor)
        names = [k for i, k in enumerate(sorted(mon.metrics)) if int(mon.nonfinite_code) >> i & 1]
        raise NonFiniteError(f"non-finite {', '.join(names)} at environment step {int(mon.nonfinite_step)} "
                             "(training stopped; lower the learning rate or scale rewards)")

    def _log(self, logger: RunLogger) -> dict[str, float]:
        mon = jax.device_get(self.learner.monitor)
        values = {k: float(v) for k, v in mon.metrics.items()}
        values["q_abs_max_so_far"] = float(mon.q_abs_max)
        message = q_divergence_message(mon, self.config.gamma)
        if message is not None and not getattr(self, "_warned_q", False):
            self._warned_q = True
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        return logger.metrics(self.num_timesteps, values)

    # -- inference -------------------------------------------------------------------------
    def predict_q(self, observations, actions) -> np.ndarray:
        """The critics' Q(s, a) for observations and actions in the env's units, in reward units.

        observations (n, obs_dim), actions (n, act_dim) -> (n, n_critics); a single (obs_dim,) and
        (act_dim,) pair gives (n_critics,). Actions are mapped to [-1, 1] (clipped to the action
        space, as the env would receive them); the normaliser is frozen; values are divided by
        `reward_scale`. Online critics, in the order the agent keeps them (column 0 is Q_1).
        Discrete actions: (n,) action indices (or (n, 1)), one critic column (Q of the Q-network).
        """
        obs = np.asarray(observations, np.float32)
        act = np.asarray(actions, np.float32)
        single = obs.ndim == 1
        obs, act = (obs[None], act[None]) if single else (obs, act)
        if isinstance(self.scaler, DiscreteActions) and act.ndim == 1:
            act = act[:, None]
        if obs.ndim != 2 or obs.shape[1] != self.agent.obs_dim or act.shape != (obs.shape[0], self.agent.act_dim):
            raise ValueError(f"predict_q needs observations (n, {self.agent.obs_dim}) and actions "
                             f"(n, {self.agent.act_dim}), got {np.shape(observations)} and {np.shape(actions)}")
        self._check_finite(obs, "observation passed to predict_q()")
        self._check_finite(act, "action passed to predict_q()")
        if isinstance(self.scaler, DiscreteActions):
            agent_act = self.scaler.to_agent(np.rint(act[:, 0]))
        else:
            agent_act = np.clip(self.scaler.to_agent(act), -1.0, 1.0)
        q = np.asarray(self._fns["q"](self.learner.agent, self.learner.obs_rms, obs, agent_act))
        return q[0] if single else q

    # -- checkpoints: the replay buffer is optional -------------------------------------------
    def _learner_to_save(self, include_buffer: bool) -> Learner:
        return self.learner if include_buffer else self.learner._replace(buffer=None)

    def _extra_metadata(self, include_buffer: bool) -> dict[str, Any]:
        return {"action_noise": noise_to_config(self.action_noise),
                "includes_buffer": bool(include_buffer and self.learner.buffer is not None)}

    def _checkpoint_template(self, metadata: dict[str, Any]) -> Learner:
        return self._init_learner(jax.random.PRNGKey(0), with_buffer=metadata["includes_buffer"])
