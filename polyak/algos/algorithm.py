"""The Stable-Baselines3-style model API that every deep-RL family shares, written once.

A family (`offpolicy.host.OffPolicyAlgorithm`: DDPG, TD3, SAC, DQN; `onpolicy.host.OnPolicyAlgorithm`:
REINFORCE, A2C, PPO, AWR; `onpolicy.a3c.A3C`) supplies
    _check_spaces(obs_space, act_space)      the spaces it accepts (raises SpaceError naming the problem)
    _build(obs_dim, action_space, n_envs)    self.agent, self.spec and the compiled functions self._fns
                                             (self._fns["predict"] acts for `predict`)
    _init_learner(key)                       a fresh learner pytree (the whole training state)
    _first_action(obs)                       the action for the first observations of a run
    _host_steps(total_timesteps)             the device side of one environment step, for `learn`
    _diagnostics()                           the learner's metrics and checks (`core.monitor.Diagnostics`)
and may extend `_configure` (family options), `_checkpoint_template` and `_extra_metadata` (A3C, whose
workers are threads, replaces `learn`). Everything else lives here: constructor checks, attaching an
env, the host loop (`learn`: env steps, episode bookkeeping, logging, callback, progress), `predict`,
`set_env`/`get_env`, and checkpoints (`save`/`load`: one atomic, code-free file).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, ClassVar

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak._version import __version__
from polyak.core.config import Config, HyperparameterError
from polyak.core.monitor import Diagnostics, log_values, nonfinite_message, warning_message
from polyak.envs.spaces import action_map, action_size, make_env
from polyak.envs.stepping import SingleEnvStepper, VectorEnvStepper
from polyak.io import checkpoint as ckpt
from polyak.io.logger import RunLogger

OBSERVATION_WARN_BOUND = 1e6  # |observation| beyond this warns once: rescale it before the normaliser sees it
MAX_ROWS_NAMED = 5  # rows a message about a batch names (then: "and N more rows")


def nonfinite_rows(values: np.ndarray, what: str) -> str | None:
    """None if `values` is all finite; else a message naming the rows of the batch (first axis) and, per row,
    the entries that are NaN or inf: `non-finite observation at environment step 7: row 1 entries [2] = [nan]`."""
    values = np.asarray(values)
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    if values.ndim == 0:
        return f"non-finite {what}: {values.item()}"
    per_row = bad.reshape(bad.shape[0], -1)
    rows = np.flatnonzero(per_row.any(axis=1))
    flat = values.reshape(values.shape[0], -1)
    parts = []
    for r in rows[:MAX_ROWS_NAMED]:
        entries = np.flatnonzero(per_row[r])
        shown = entries[:MAX_ROWS_NAMED]
        more = f" (+{len(entries) - len(shown)} more)" if len(entries) > len(shown) else ""
        parts.append(f"row {r} entries {shown.tolist()}{more} = {flat[r, shown].tolist()}")
    more_rows = f"; and {len(rows) - MAX_ROWS_NAMED} more rows" if len(rows) > MAX_ROWS_NAMED else ""
    return f"non-finite {what}: {'; '.join(parts)}{more_rows} (of {values.shape[0]} rows)"


class NonFiniteError(FloatingPointError):
    """NaN or inf appeared in an observation, reward or loss; the message names the step and quantity."""


Callback = Callable[[Any], Any]
HostStep = Callable[[Any], np.ndarray]  # one env step's device calls: the StepBatch -> the next action

_COMPILING: set = set()  # jitted functions compile_ahead has compiled (or is compiling) in this process


def compile_ahead(fn, *args) -> threading.Thread | None:
    """Compile the jitted `fn` for the shapes of `args` in a background thread, once per process.

    A later call of `fn` with arrays of these shapes finds the executable in JAX's cache. XLA compiles
    without holding the GIL, so the host loop meanwhile steps the environment (warm-up steps, the first
    rollout). Errors are left to that later call, which compiles again and raises them. Returns the
    thread, or None when `fn` was compiled ahead before.
    """
    if fn in _COMPILING:
        return None
    _COMPILING.add(fn)
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), args)  # no sharding: same cache key

    def work() -> None:
        try:
            fn.lower(*shapes).compile()
        except Exception:  # noqa: BLE001  (reported by the real call)
            pass

    thread = threading.Thread(target=work, name="polyak-compile-ahead", daemon=True)
    thread.start()
    return thread


class Algorithm:
    name: ClassVar[str]
    config_cls: ClassVar[type[Config]]
    agent_cls: ClassVar[type]
    example_env: ClassVar[str] = "Pendulum-v1"  # named in the error when no env is given
    default_policy: ClassVar[str] = "MlpPolicy"  # the policy argument the CLI passes
    jax_env_loop: ClassVar[type | None] = None  # the family's fully jitted loop over JAX envs (None: none)
    has_q_critic: ClassVar[bool] = False  # predict_q(obs, actions) exists: Q-value monitoring and bias evaluation

    def __init__(self, policy: str = "MlpPolicy", env: Any = None, *, policy_kwargs: dict | None = None,
                 seed: int | None = None, verbose: int = 0, tensorboard_log: str | None = None,
                 device: str = "auto", **hyperparameters: Any):
        if policy != self.default_policy:  # a family with another kind of policy checks its name first
            raise HyperparameterError(f"policy must be {self.default_policy!r} (got {policy!r}); network sizes go in "
                                      "policy_kwargs=dict(net_arch=[...])")
        if device not in ("auto", "cpu"):
            raise HyperparameterError(f"device must be 'auto' or 'cpu' (JAX picks its default device), got {device!r}")
        self.config = self.config_cls.from_kwargs(hyperparameters, policy_kwargs)
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
            raise HyperparameterError(f"seed must be an integer >= 0 (or None: random), got {seed!r}")
        self.seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        self.verbose, self.tensorboard_log = verbose, tensorboard_log
        self.num_timesteps = 0
        self.env = self.agent = None
        self._init_host_state()
        self._resume: dict | None = None
        self._configure()
        if env is None:
            raise ValueError(f"{type(self).__name__} needs an env (an id such as {self.example_env!r}, a "
                             "gymnasium.Env or a vector env); to load a saved model without one use "
                             f"{type(self).__name__}.load(path)")
        self._attach_env(env)
        self._build(self.observation_space.shape[0], self.action_space, self.n_envs)
        self.learner = self._init_learner(jax.random.PRNGKey(self.seed))

    # -- what a family supplies ----------------------------------------------------------------
    def _configure(self) -> None:
        """Family options that need self.config (e.g. the exploration noise); called before the env."""

    def _check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        raise NotImplementedError

    def _build(self, obs_dim: int, action_space: gym.Space, n_envs: int) -> None:
        raise NotImplementedError

    def _init_learner(self, key: jax.Array):
        raise NotImplementedError

    def _first_action(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _host_steps(self, total_timesteps: int) -> tuple[HostStep, Callable[[], None]]:
        """For `learn`: (step, finish). step(batch) makes the device calls of one environment step (the
        StepBatch just taken with the pending action) and returns the next action; it raises
        NonFiniteError when an update was not finite. finish() runs when the loop ends, also on errors (whose own
        exception is then the one raised)."""
        raise NotImplementedError

    def _diagnostics(self) -> Diagnostics:
        """The learner's metrics and checks, on the device."""
        raise NotImplementedError

    def _checkpoint_template(self, metadata: dict[str, Any]):
        """A learner with the saved one's structure, to read the checkpoint's arrays into."""
        return self._init_learner(jax.random.PRNGKey(0))

    def _extra_metadata(self, include_buffer: bool) -> dict[str, Any]:
        return {}

    def replay_buffer_nbytes(self) -> int:
        """Bytes a checkpoint's replay buffer takes (0: the algorithm keeps none)."""
        return 0

    def evaluation_extras(self) -> tuple[dict[str, Any], list[str]]:
        """Exact results an algorithm can add to eval.json (e.g. tabular: the gap to the optimal value),
        with lines to print; none by default."""
        return {}, []

    def _learner_to_save(self, include_buffer: bool):
        return self.learner

    # -- the environment ---------------------------------------------------------------------
    def _attach_env(self, env: Any) -> None:
        env = make_env(env)
        is_vector = isinstance(env, gym.vector.VectorEnv)
        obs_space = env.single_observation_space if is_vector else env.observation_space
        act_space = env.single_action_space if is_vector else env.action_space
        self._check_spaces(obs_space, act_space)
        self._check_fits_model(obs_space, act_space)
        stepper = VectorEnvStepper(env, self.seed) if is_vector else SingleEnvStepper(env, self.seed)
        self._check_stepper(stepper)
        self.env, self.stepper, self.n_envs = env, stepper, stepper.n_envs
        self.env_id = env.spec.id if getattr(env, "spec", None) is not None else None
        self.observation_space, self.action_space = obs_space, act_space
        self.scaler = action_map(act_space)

    def _check_fits_model(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        """A built model accepts an env only with its own observation size and kind and size of actions."""
        if self.agent is None:
            return
        signature = lambda obs, act: (obs.shape[0], type(act).__name__, action_size(act))  # noqa: E731
        if signature(observation_space, action_space) != signature(self.observation_space, self.action_space):
            raise ValueError(f"env spaces {observation_space}/{action_space} do not match the model's "
                             f"{self.observation_space}/{self.action_space}")

    def _check_stepper(self, stepper) -> None:
        """Refuse env kinds the training loop cannot use (on-policy: NEXT_STEP vector autoreset)."""

    def set_env(self, env: Any) -> None:
        self._attach_env(env)
        if self.n_envs != self.spec.n_envs:
            raise ValueError(f"the model was built for {self.spec.n_envs} env(s), this env has {self.n_envs}")
        self._obs = None

    def get_env(self):
        return self.env

    # -- the host side of a run: episodes, checks --------------------------------------------
    def _start_learn(self, total_timesteps: int, reset_num_timesteps: bool, logger: RunLogger | None,
                     run_dir: str | Path | None, progress_bar: bool,
                     needs_env: bool = True) -> tuple[RunLogger, bool]:
        """learn()'s argument checks; returns (logger, whether learn() owns it and must close it)."""
        if total_timesteps < 0:
            raise HyperparameterError(f"total_timesteps must be >= 0, got {total_timesteps}")
        if needs_env and self.env is None:
            raise ValueError("this model has no env: pass env= to load() or call set_env(env) before learn()")
        if reset_num_timesteps and self.num_timesteps:
            raise ValueError("reset_num_timesteps=True would restart counters of a trained model; create a new model")
        if logger is not None:
            return logger, False
        return RunLogger(run_dir if run_dir is not None else self.tensorboard_log, verbose=self.verbose,
                         progress_bar=progress_bar), True

    @contextmanager
    def _learning(self, total_timesteps: int, reset_num_timesteps: bool, logger: RunLogger | None,
                  run_dir: str | Path | None, progress_bar: bool, needs_env: bool = True) -> Iterator[RunLogger]:
        """The frame of a `learn`: its argument checks (`_start_learn`), then the logger it writes to, which
        is closed after the block (also on errors) when it was made here rather than given. The caller
        starts the logger's clock (`logger.start`) where its steps begin."""
        logger, own_logger = self._start_learn(total_timesteps, reset_num_timesteps, logger, run_dir, progress_bar,
                                               needs_env)
        try:
            yield logger
        finally:
            if own_logger:
                logger.close()

    def _callback_stops(self, callback: Callback | None) -> bool:
        """Run `callback(model)` (if any); True when it returned False: stop training."""
        return callback is not None and callback(self) is False

    def _init_host_state(self) -> None:
        """What the host keeps besides the learner, fresh (a new or a loaded model)."""
        self._forget_episodes()
        self._warned_q = False  # the |Q| divergence warning is given once per model
        self._warned_obs = False  # so is the warning about huge observations
        self._updates_from = 0  # no gradient step before this environment step (a refilled replay buffer)
        self._predict_key = jax.random.PRNGKey(self.seed + 1)

    def _forget_episodes(self) -> None:
        self._obs = self._pending_action = self._episode_return = self._episode_length = None

    def _start_episodes(self) -> None:
        """Resume the saved episode (single env) or reset the env(s), once per attached env."""
        if self._obs is not None:
            return
        n = self.n_envs
        self._episode_return, self._episode_length = np.zeros(n), np.zeros(n, np.int64)
        if self._resume is not None and isinstance(self.stepper, SingleEnvStepper):
            r, self._resume = self._resume, None
            self._obs = self.stepper.restore(r["episode"], r["episode_actions"])
            self._pending_action = r["pending_action"]
            self._episode_return, self._episode_length = r["episode_return"], r["episode_length"]
            return
        self._obs = self.stepper.reset()
        self._check_observations(self._obs, f"reset observation before environment step {self.num_timesteps + 1}")
        self._pending_action = self._first_action(self._obs)

    def _record_episodes(self, batch, logger: RunLogger) -> None:
        valid = batch.valid
        self._episode_return += np.where(valid, batch.reward, 0.0)
        self._episode_length += valid
        for i in np.flatnonzero(valid & (batch.terminated | batch.truncated)):
            logger.episode(self.num_timesteps, float(self._episode_return[i]), int(self._episode_length[i]))
            self._episode_return[i], self._episode_length[i] = 0.0, 0

    def _step_envs(self):
        """Send the pending action to the env(s); the StepBatch, with observations and rewards checked.

        If the env raises, the running episodes are forgotten (the env's state is unknown): a `save()`
        then records no running episode, and the next `learn()` starts fresh episodes.
        """
        try:
            batch = self.stepper.step(self.scaler.to_env(self._pending_action))
        except BaseException:
            self._forget_episodes()
            raise
        where = f"environment step {self.num_timesteps + 1}"
        self._check_observations(batch.next_obs, f"observation at {where}")
        self._check_finite(batch.reward, f"reward at {where}")
        if batch.episode_start.any():  # the reset observations the next actions are chosen for
            self._check_observations(batch.obs[batch.episode_start], f"reset observation after {where}")
        return batch

    def _check_observations(self, obs: np.ndarray, what: str) -> None:
        """Non-finite entries stop training (NonFiniteError naming the rows); entries beyond
        OBSERVATION_WARN_BOUND warn once (they dominate the running normaliser's statistics)."""
        self._check_finite(obs, what)
        big = np.abs(obs) > OBSERVATION_WARN_BOUND
        if big.any() and not self._warned_obs:
            self._warned_obs = True
            row = int(np.nonzero(big.any(axis=tuple(range(1, obs.ndim))))[0][0]) if obs.ndim > 1 else 0
            warnings.warn(f"{what}: entries up to {float(np.abs(obs).max()):.3g} (row {row}), beyond "
                          f"{OBSERVATION_WARN_BOUND:.0e}: rescale the observations (a wrapper) so that the running "
                          "normaliser's statistics stay meaningful", RuntimeWarning, stacklevel=4)

    def _check_finite(self, values: np.ndarray, what: str) -> None:
        """NonFiniteError naming `what` and the rows (and their entries) that hold NaN or inf."""
        message = nonfinite_rows(values, what)
        if message is not None:
            raise NonFiniteError(message)

    # -- training: the host loop over Gymnasium envs -------------------------------------------
    def learn(self, total_timesteps: int, callback: Callback | None = None, log_interval: int = 1000,
              progress_bar: bool = False, run_dir: str | Path | None = None, reset_num_timesteps: bool = False,
              logger: RunLogger | None = None):
        """Train for `total_timesteps` more environment steps (transitions, summed over the envs).

        `callback(model)` runs after every environment step; returning False stops training.
        Metrics are synced from the device and logged every `log_interval` steps.
        """
        with self._learning(total_timesteps, reset_num_timesteps, logger, run_dir, progress_bar) as logger:
            target = self.num_timesteps + int(total_timesteps)
            # schedules that depend on the run's length (e.g. DQN's epsilon), before the first action
            self.learner = self.learner._replace(agent=self.agent.start_run(self.learner.agent, target))
            step, finish = self._host_steps(int(total_timesteps))
            next_log = (self.num_timesteps // log_interval + 1) * log_interval
            try:
                self._start_episodes()
                logger.start(int(total_timesteps), self.num_timesteps)
                while self.num_timesteps < target:
                    batch = self._step_envs()
                    n = int(batch.valid.sum())
                    self.num_timesteps += n
                    self._pending_action = step(batch)
                    self._record_episodes(batch, logger)
                    self._obs = batch.obs
                    logger.progress(n)
                    if self.num_timesteps >= next_log:
                        self._log(logger)
                        next_log += log_interval
                    if self._callback_stops(callback):
                        break
            except BaseException:
                with suppress(Exception):  # the loop's own error is the one to raise, not a check after it
                    finish()
                raise
            finish()
        return self

    def _log(self, logger: RunLogger) -> None:
        diagnostics = jax.device_get(self._diagnostics())
        message = warning_message(diagnostics, self.config.gamma)
        if message is not None and not self._warned_q:
            self._warned_q = True
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        logger.metrics(self.num_timesteps, {k: float(v) for k, v in log_values(diagnostics).items()})

    def _raise_nonfinite_update(self) -> None:
        raise NonFiniteError(nonfinite_message(jax.device_get(self._diagnostics())))

    # -- inference -----------------------------------------------------------------------------
    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Action(s) in the env's units for one observation (obs_dim,) or a batch (n, obs_dim).

        Returns (action, None) like Stable-Baselines3. The normaliser is frozen here.
        """
        obs, single = self._predict_observations(observation)
        self._predict_key, key = jax.random.split(self._predict_key)
        action = np.asarray(self._fns["predict"](self.learner.agent, self.learner.obs_rms,
                                                 obs[None] if single else obs, key, deterministic))
        env_action = self.scaler.to_env(action)
        return (env_action[0] if single else env_action), None

    def _predict_observations(self, observation) -> tuple[np.ndarray, bool]:
        """`predict`'s observation as float32 with its shape and finiteness checked: (obs, whether it was one
        observation (obs_dim,) rather than a batch (n, obs_dim))."""
        obs = np.asarray(observation, np.float32)
        if obs.shape[-1:] != (self.agent.obs_dim,) or obs.ndim > 2:
            raise ValueError(f"observation shape {obs.shape} does not match the model's ({self.agent.obs_dim},) "
                             f"or (n, {self.agent.obs_dim})")
        self._check_finite(obs, "observation passed to predict()")
        return obs, obs.ndim == 1

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self, path: str | Path, include_buffer: bool = False) -> Path:
        """One atomic, code-free file with everything needed to predict or resume training.

        The running episodes' place is saved too (single Gymnasium env: an exact resume). What else
        `include_buffer` adds is the family's: the replay buffer for off-policy methods.
        """
        path = Path(path)
        arrays = _flatten_named(jax.device_get(self._learner_to_save(include_buffer)), prefix="learner")
        episode = int(getattr(self.stepper, "episode", 0)) if self.env is not None else 0
        if self._obs is not None:  # where the running episodes are, for an exact resume
            actions = getattr(self.stepper, "episode_actions", [])
            space = self.action_space
            host = {"pending_action": self._pending_action, "episode_return": self._episode_return,
                    "episode_length": self._episode_length,
                    "episode_actions": np.stack(actions) if actions else np.zeros((0,) + space.shape, space.dtype)}
        elif self._resume is not None:  # loaded but not trained since: pass the resume point on
            episode, host = self._resume["episode"], {k: v for k, v in self._resume.items() if k != "episode"}
        else:
            host = {}
        arrays.update({f"host/{k}": np.asarray(v) for k, v in host.items()})
        metadata = {
            "kind": "polyak-model", "library_version": __version__, "algorithm": self.name,
            "config": self.config.to_dict(), "obs_dim": self.agent.obs_dim, "n_envs": self.spec.n_envs,
            **_action_space_metadata(self.action_space),
            "env_id": self.env_id, "seed": self.seed, "num_timesteps": self.num_timesteps, "episode": episode,
            **self._extra_metadata(include_buffer),
        }
        ckpt.write_checkpoint(path, arrays, metadata)
        return path

    @classmethod
    def load(cls, path: str | Path, env: Any = None, **kwargs: Any):
        """Load a model written by `save`. With `env`, training can resume (`learn`)."""
        arrays, meta = ckpt.read_checkpoint(path)
        if meta.get("kind") != "polyak-model":
            raise ckpt.CheckpointError(f"{path}: not a polyak model file (kind={meta.get('kind')!r})")
        if meta["algorithm"] != cls.name:
            raise ckpt.CheckpointError(f"{path}: holds a {meta['algorithm'].upper()} model, not {cls.name.upper()}; "
                                       f"use polyak.load(path) or {meta['algorithm'].upper()}.load")
        if kwargs:
            raise HyperparameterError(f"load() takes no hyperparameter overrides, got {sorted(kwargs)}")
        model = cls.__new__(cls)
        model.config = cls.config_cls.from_kwargs(meta["config"])
        model.seed, model.verbose, model.tensorboard_log = int(meta["seed"]), 0, None
        model.num_timesteps = int(meta["num_timesteps"])
        model.env, model.env_id, model.agent = None, meta.get("env_id"), None
        model._init_host_state()
        model._restore_options(meta)
        model.action_space = _action_space_from_metadata(meta)
        model.scaler = action_map(model.action_space)
        model.observation_space = gym.spaces.Box(-np.inf, np.inf, (int(meta["obs_dim"]),), np.float32)
        model.n_envs = int(meta["n_envs"])
        model._build(int(meta["obs_dim"]), model.action_space, model.n_envs)
        # shapes and dtypes only: a header claiming a huge buffer allocates nothing before the check
        template = jax.eval_shape(lambda: model._checkpoint_template(meta))
        model.learner = _unflatten_named(template, arrays, prefix="learner", path=path)
        model._resume = None
        if "host/pending_action" in arrays:
            model._resume = {"episode": int(meta["episode"]),
                             **{k: arrays[f"host/{k}"] for k in ("pending_action", "episode_return",
                                                                  "episode_length", "episode_actions")}}
        if env is not None:
            model._attach_env(env)
            if model.n_envs != int(meta["n_envs"]):
                raise ValueError(f"the model was saved with {meta['n_envs']} env(s), the env given has {model.n_envs}")
        return model

    def _restore_options(self, metadata: dict[str, Any]) -> None:
        """load()'s counterpart of _configure: family options read back from the checkpoint's metadata."""


def _action_space_metadata(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Discrete):
        return {"action_space": "Discrete", "action_n": int(space.n), "action_start": int(space.start)}
    return {"action_low": np.asarray(space.low, np.float64).tolist(),
            "action_high": np.asarray(space.high, np.float64).tolist()}


def _action_space_from_metadata(meta: dict[str, Any]) -> gym.Space:
    if meta.get("action_space") == "Discrete":
        return gym.spaces.Discrete(int(meta["action_n"]), start=int(meta["action_start"]))
    low, high = np.asarray(meta["action_low"]), np.asarray(meta["action_high"])
    return gym.spaces.Box(low.astype(np.float32), high.astype(np.float32))


def _flatten_named(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {prefix + jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def _unflatten_named(template: Any, arrays: dict[str, np.ndarray], prefix: str, path) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for key_path, leaf in leaves:
        name = prefix + jax.tree_util.keystr(key_path)
        if name not in arrays:
            raise ckpt.CheckpointError(f"{path}: missing array {name!r} (saved by an incompatible version?)")
        value = arrays[name]
        if value.shape != leaf.shape or value.dtype != leaf.dtype:
            raise ckpt.CheckpointError(f"{path}: array {name!r} has shape {value.shape} {value.dtype}, "
                                       f"expected {leaf.shape} {leaf.dtype}")
        out.append(jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, out)
