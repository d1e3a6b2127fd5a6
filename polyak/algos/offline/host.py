"""The offline family's model class: learn from a fixed dataset, evaluate online in the dataset's environment.

    model = TD3BC("MlpPolicy", dataset="polyak/Pendulum-v1/medium-v0")   # env: the dataset's, or env=...
    model.learn(100_000)                                                   # gradient steps
    model.predict(obs, deterministic=True); model.save("td3bc.polyak"); TD3BC.load("td3bc.polyak")

`dataset` is a local Minari dataset id (`polyak.data.datasets`), an `OfflineData`, or a `ReplayBuffer`
whose rows are already in the agent's units (actions in [-1, 1]). The dataset's actions are rescaled to
[-1, 1] with the env's action space, its rewards multiplied by `reward_scale`, and the observation
normaliser is fitted on its observations once. `learn(n)` runs n gradient steps in donated, jitted chunks
that end at multiples of `log_interval` and of MAX_CHUNK (`learner.train_chunk`); between chunks the host
logs the metrics, runs `eval_episodes` deterministic episodes in the env (episodes.csv: the learning curve),
checks for non-finite losses and calls the callback. `num_timesteps` counts gradient steps.

A model file holds the learner without the dataset, with the dataset's id and SHA-256: training resumes
(bit-exactly, chunks aligned to the same `log_interval`) after the dataset is read again and found
unchanged. A model built from an in-memory dataset saves it with `include_buffer=True`.

Offline-to-online: `learn(n, online=True)` continues in the env (the constructor's or `set_env`'s) for n
environment steps with the shared host loop (`Algorithm.learn`: `envs.stepping`, episode bookkeeping, logging,
callback). The first online call seeds the replay buffer with exactly the dataset's transitions; each env step
then appends its transition (`offpolicy.learner.store_step`: terminated and truncated kept apart) and runs one
`offpolicy.learner.train_step` — the algorithm's own update on batches from dataset + online rows, and the next
action from the policy: sampled for stochastic policies, mu(s) + N(0, exploration_noise^2) for TD3+BC
(`gaussian_exploration`). The buffer grows to hold every row (nothing is evicted); the observation normaliser
keeps updating from the dataset's statistics, as every family's does while training. `num_timesteps` counts
gradient steps offline and environment steps online (one gradient step each). Checkpoints saved with
`include_buffer=True` carry the whole buffer and the running episode: an online run resumes bit-exactly.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak.algos import registry
from polyak.algos.algorithm import Algorithm, Callback, NonFiniteError
from polyak.algos.offline.learner import OfflineConfig, compiled, fit_normalizer, grown, with_dataset
from polyak.algos.offpolicy import learner as offpolicy_learner
from polyak.algos.offpolicy.host import critic_values
from polyak.algos.offpolicy.learner import Learner, LoopSpec, diagnostics
from polyak.core.config import HyperparameterError
from polyak.core.noise import NormalActionNoise
from polyak.core.monitor import nonfinite_names
from polyak.core.types import Transition
from polyak.data.buffer import ReplayBuffer, buffer_init
from polyak.data.datasets import OfflineData, load_dataset
from polyak.envs.spaces import SpaceError, action_size, check_spaces
from polyak.io.logger import RunLogger

MAX_CHUNK = 1000  # gradient steps per jitted call at most (their batches are sampled up front: 1000 x batch rows)
EVAL_SEED_OFFSET = 20_000  # evaluation episodes during learn() are reset with seeds 20_000 + 1000 seed + k


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


class OfflineAlgorithm(Algorithm):
    """Offline family: a fixed dataset instead of an env in the training loop; the env only evaluates."""

    config_cls: ClassVar[type[OfflineConfig]] = OfflineConfig
    has_q_critic: ClassVar[bool] = True
    # online fine-tuning adds N(0, config.exploration_noise^2) to the policy's actions (deterministic policies)
    gaussian_exploration: ClassVar[bool] = False

    def __init__(self, policy: str = "MlpPolicy", env: Any = None, *, dataset: Any = None, eval_episodes: int = 2,
                 **kwargs: Any):
        if dataset is None:
            raise HyperparameterError(f"{type(self).__name__} learns from a dataset: pass dataset=ID (a local "
                                      "Minari dataset, e.g. made by `polyak data collect`), an OfflineData or a "
                                      "ReplayBuffer")
        if not isinstance(eval_episodes, int) or isinstance(eval_episodes, bool) or eval_episodes < 0:
            raise HyperparameterError(f"eval_episodes must be an integer >= 0, got {eval_episodes!r}")
        self.eval_episodes = eval_episodes
        self.data = load_dataset(dataset) if isinstance(dataset, str) else dataset
        if not isinstance(self.data, (OfflineData, ReplayBuffer)):
            raise HyperparameterError(f"dataset must be a dataset id, an OfflineData or a ReplayBuffer, got "
                                      f"{type(dataset).__name__}")
        is_data = isinstance(self.data, OfflineData)
        self.dataset_id = self.data.dataset_id if is_data else None
        self.dataset_digest = self.data.digest() if is_data else None
        if env is None:
            env = self.data.env_id if is_data else None
            if env is None:
                raise ValueError(f"{type(self).__name__}: the dataset names no environment; pass env= (the env "
                                 "the policy is evaluated in)")
            if is_data and self.data.env_kwargs:  # made as the data was collected (e.g. action_mode="direct")
                env = gym.make(env, **self.data.env_kwargs)
        super().__init__(policy, env, **kwargs)
        self.learner = self._with_data(self.learner)

    # -- construction ----------------------------------------------------------------------
    def _check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        check_spaces(observation_space, action_space, type(self).__name__, "Box", registry.by_action_kind())
        data = getattr(self, "data", None)
        if not isinstance(data, OfflineData):
            return
        collected = f" (collected on {data.env_id}: pass env={data.env_id!r} or --env {data.env_id})" \
            if data.env_id else ""
        if data.observation_space.shape != observation_space.shape:
            raise SpaceError(f"dataset {data.dataset_id} has observations of shape {data.observation_space.shape}, "
                             f"the env {observation_space.shape}{collected}")
        if data.action_space.shape != action_space.shape or not (
                np.allclose(data.action_space.low, action_space.low)
                and np.allclose(data.action_space.high, action_space.high)):
            raise SpaceError(f"dataset {data.dataset_id} has the action space {data.action_space}, the env "
                             f"{action_space}{collected}")

    def _build(self, obs_dim: int, action_space: gym.Space, n_envs: int) -> None:
        self.agent = self.agent_cls(self.config, obs_dim, action_size(action_space))
        noise = NormalActionNoise(0.0, self.config.exploration_noise) if self.gaussian_exploration else None
        self.spec = LoopSpec(self.agent, noise, 1)  # the noise acts only online
        self._fns = {**offpolicy_learner.compiled(self.spec), **compiled(self.spec)}

    def _init_learner(self, key: jax.Array) -> Learner:
        # distinct arrays for every leaf (targets start as copies), so donating the learner donates each once
        return jax.tree.map(jnp.array, self._fns["init"](key, False))

    def _dataset_rows(self) -> Transition:
        """The dataset as buffer rows: actions rescaled to [-1, 1], rewards scaled."""
        if isinstance(self.data, ReplayBuffer):
            n = int(self.data.size)
            return jax.tree.map(lambda x: np.asarray(x)[:n], self.data.data)
        d = self.data
        action = np.clip(self.scaler.to_agent(d.action), -1.0, 1.0)
        reward = d.reward.astype(np.float32) * np.float32(self.config.reward_scale)
        return Transition(d.obs, action, reward, d.next_obs, d.terminated.astype(np.float32))

    def _with_data(self, learner: Learner, refit: bool = True) -> Learner:
        rows = self._dataset_rows()
        if len(rows.reward) < 1:
            raise ValueError("the dataset holds no transition")
        agent_dim = (self.agent.obs_dim, self.agent.act_dim)
        if (rows.obs.shape[1], rows.action.shape[1]) != agent_dim:
            raise SpaceError(f"dataset rows have observation/action sizes {rows.obs.shape[1]}/{rows.action.shape[1]}"
                             f", the model {agent_dim[0]}/{agent_dim[1]}")
        normalizer = fit_normalizer(rows.obs) if refit else learner.obs_rms
        return jax.tree.map(jnp.array, with_dataset(learner, rows, normalizer))

    def _ensure_data(self) -> None:
        """After load(): read the dataset again (by its id) and check it is the one the model was trained on."""
        if self.learner.buffer is not None:
            return
        if self.dataset_id is None:
            raise ValueError("this model was saved without its in-memory dataset: save with include_buffer=True "
                             "to continue training")
        self.data = load_dataset(self.dataset_id)
        if self.data.digest() != self.dataset_digest:
            raise ValueError(f"dataset {self.dataset_id} has changed since this model was trained on it "
                             "(its SHA-256 differs): train a new model")
        self._check_spaces(self.observation_space, self.action_space)
        self.learner = self._with_data(self.learner, refit=False)
        if self.online_from is not None:
            warnings.warn(f"resuming online fine-tuning at step {self.num_timesteps} from a checkpoint saved without "
                          "its replay buffer: the online transitions are lost and the buffer restarts from the dataset "
                          "(save with include_buffer=True, or --save-buffer, for an exact resume)", RuntimeWarning,
                          stacklevel=4)

    # -- training: jitted chunks of gradient steps, no environment ------------------------------
    def learn(self, total_timesteps: int, callback: Callback | None = None, log_interval: int = 1000,
              progress_bar: bool = False, run_dir: str | Path | None = None, reset_num_timesteps: bool = False,
              logger: RunLogger | None = None, online: bool = False):
        """Run `total_timesteps` more gradient steps over the dataset, in jitted chunks ending at multiples of
        `log_interval` and of MAX_CHUNK (the same boundaries whenever a run stops and resumes); after each chunk:
        metrics, evaluation episodes, non-finite check, `callback(model)` (returning False stops).

        online=True: `total_timesteps` environment steps of online fine-tuning instead (module docstring), with
        `callback(model)` after every step and metrics every `log_interval` steps."""
        if online:
            return self._learn_online(total_timesteps, callback, log_interval, progress_bar, run_dir,
                                      reset_num_timesteps, logger)
        if log_interval < 1:
            raise HyperparameterError(f"log_interval must be >= 1, got {log_interval}")
        with self._learning(total_timesteps, reset_num_timesteps, logger, run_dir, progress_bar,
                            needs_env=False) as logger:  # the dataset is the data: the env is for evaluation
            self._ensure_data()
            target = self.num_timesteps + int(total_timesteps)
            logger.start(int(total_timesteps), self.num_timesteps)
            while self.num_timesteps < target:
                end = min(target, _next_multiple(self.num_timesteps, log_interval),
                          _next_multiple(self.num_timesteps, MAX_CHUNK))
                n = end - self.num_timesteps
                self.learner = self._fns["chunk"](n)(self.learner)
                self.num_timesteps = end
                if int(self.learner.monitor.nonfinite_step) >= 0:
                    raise NonFiniteError(self._nonfinite_message())
                logger.progress(n)
                if end % log_interval == 0:
                    self._evaluate_into(logger)
                    self._log(logger)
                if self._callback_stops(callback):
                    break
        return self

    def _evaluate_into(self, logger: RunLogger) -> None:
        """`eval_episodes` deterministic episodes in the env, logged as episodes at this gradient step."""
        if self.env is None or self.eval_episodes == 0 or isinstance(self.env, gym.vector.VectorEnv):
            return
        self._forget_episodes()  # the env is reset below: a later online phase starts fresh episodes
        base = EVAL_SEED_OFFSET + 1000 * self.seed + (self.num_timesteps * self.eval_episodes) % 997
        for k in range(self.eval_episodes):
            obs, _ = self.env.reset(seed=base + k)
            done, total, length = False, 0.0, 0
            while not done:
                action, _ = self.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = self.env.step(action)
                total, length, done = total + float(reward), length + 1, terminated or truncated
            logger.episode(self.num_timesteps, total, length)

    # -- offline-to-online: the shared host loop over the env --------------------------------------
    def _learn_online(self, total_timesteps: int, callback, log_interval: int, progress_bar: bool, run_dir,
                      reset_num_timesteps: bool, logger):
        if total_timesteps < 0:
            raise HyperparameterError(f"total_timesteps must be >= 0, got {total_timesteps}")
        if self.env is None:
            raise ValueError("online fine-tuning needs an env: pass env= to the constructor or load(), or call "
                             "set_env(env)")
        if self.n_envs != 1:
            raise ValueError(f"online fine-tuning steps one env; this env has {self.n_envs} copies")
        self._ensure_data()
        if self.online_from is None:  # the first online step: the buffer holds exactly the dataset's rows
            self.online_from = self.num_timesteps
            self._forget_episodes()
        buffer = self.learner.buffer
        self.learner = self.learner._replace(buffer=grown(buffer, int(buffer.size) + int(total_timesteps)))
        return super().learn(total_timesteps, callback=callback, log_interval=log_interval, progress_bar=progress_bar,
                             run_dir=run_dir, reset_num_timesteps=reset_num_timesteps, logger=logger)

    def _first_action(self, obs: np.ndarray) -> np.ndarray:
        self.learner, action = self._fns["first_action"](self.learner, jnp.asarray(obs), jnp.float32(0.0))
        return np.asarray(action)

    def _host_steps(self, total_timesteps: int):
        """Per env step (`Algorithm.learn`) the off-policy learner's two donated jitted calls: store_step (append
        the transition) and train_step (one gradient step of the algorithm's update, then the next action)."""
        columns, store_fn, train_fn = self.spec.columns, self._fns["store"], self._fns["train"](1)
        packed = columns.zeros(1)

        def step(batch) -> np.ndarray:
            columns.fill(packed, {
                "obs": self._obs, "action": self._pending_action, "reward": batch.reward, "next_obs": batch.next_obs,
                "terminated": batch.terminated, "truncated": batch.truncated, "valid": batch.valid,
                "act_obs": batch.obs, "episode_start": batch.episode_start, "random": 0.0})
            buffer, window = store_fn(self.learner.buffer, self.learner.window, packed)
            self.learner = self.learner._replace(buffer=buffer, window=window)
            self.learner, next_action, bad_step = train_fn(self.learner, packed)
            next_action, bad_step = jax.device_get((next_action, bad_step))
            if bad_step >= 0:
                raise NonFiniteError(self._nonfinite_message())
            return np.asarray(next_action)

        return step, lambda: None

    def _init_host_state(self) -> None:
        super()._init_host_state()
        self.online_from: int | None = None  # num_timesteps when online fine-tuning began (None: offline so far)

    def _nonfinite_message(self) -> str:
        d = jax.device_get(self._diagnostics())
        names = ", ".join(nonfinite_names(d.metrics, d.nonfinite_code)) or "metric"
        return (f"non-finite {names} in the chunk of gradient steps ending at gradient step {int(d.nonfinite_step)} "
                "(training stopped; lower the learning rate or scale the rewards)")

    def _diagnostics(self):
        return diagnostics(self.learner)

    # -- inference -------------------------------------------------------------------------
    def predict_q(self, observations, actions) -> np.ndarray:
        """The critics' Q(s, a), (n, n_critics), for observations and actions in the env's units (reward units)."""
        return critic_values(self, observations, actions)

    # -- checkpoints: the dataset is read again from its id ---------------------------------------
    def replay_buffer_nbytes(self) -> int:
        """A dataset with an id is never copied into checkpoints; once online, the buffer (dataset + online rows) is."""
        if self.online_from is None or self.learner.buffer is None:
            return 0
        return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(self.learner.buffer.data))

    def _keeps_buffer(self, include_buffer: bool) -> bool:
        return include_buffer and self.learner.buffer is not None and (
            self.dataset_id is None or self.online_from is not None)

    def _learner_to_save(self, include_buffer: bool) -> Learner:
        return self.learner if self._keeps_buffer(include_buffer) else self.learner._replace(buffer=None)

    def _extra_metadata(self, include_buffer: bool) -> dict[str, Any]:
        keep = self._keeps_buffer(include_buffer)
        return {"dataset_id": self.dataset_id, "dataset_digest": self.dataset_digest, "includes_buffer": keep,
                "buffer_rows": int(self.learner.buffer.capacity) if keep else 0, "eval_episodes": self.eval_episodes,
                "online_from": self.online_from}

    def _restore_options(self, metadata: dict[str, Any]) -> None:
        self.dataset_id, self.dataset_digest = metadata["dataset_id"], metadata["dataset_digest"]
        self.eval_episodes, self.data = int(metadata["eval_episodes"]), None
        self.online_from = metadata.get("online_from")  # absent from files written before offline-to-online

    def _checkpoint_template(self, metadata: dict[str, Any]) -> Learner:
        learner = self._fns["init"](jax.random.PRNGKey(0), False)
        if metadata["includes_buffer"]:
            learner = learner._replace(buffer=buffer_init(metadata["buffer_rows"], self.agent.obs_dim,
                                                          self.agent.act_dim))
        return learner

    def _check_stepper(self, stepper) -> None:
        if stepper.n_envs != 1:
            warnings.warn("offline algorithms evaluate in one env; the vector env's copies are not used together",
                          RuntimeWarning, stacklevel=4)
