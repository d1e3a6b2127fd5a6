"""Asynchronous advantage actor-critic (A3C; Mnih et al. 2016, Algorithm S3).

n_workers actor-learner threads share one set of parameters theta and one RMSprop state. Each
worker owns a Gymnasium env (its own reset seeds), an RNG key and a copy theta' of the parameters,
and loops:
  1. sync          theta' <- theta                      (and the observation normaliser)
  2. collect       n_steps transitions with pi(.|s; theta')
  3. advantages    A_t = sum_{k<m} gamma^k r_{t+k} + gamma^m V(s_{t+m}; theta') - V(s_t; theta')
                   (A2C's n-step advantages: GAE with lambda = 1, cut at episode ends)
  4. gradient      g = grad_theta' [-mean log pi(a_t|s_t) A_t + c_v mean (V(s_t) - R_t)^2 - c_H H[pi]]
                   (A2C's loss, `onpolicy.actor_critic.actor_critic_loss`)
  5. push          theta <- theta + RMSprop(g)           under a lock, shared optimiser statistics
Between a worker's sync and its push other workers may have pushed: its gradient is *stale*, taken
at parameters older than the ones it is applied to. That is what makes A3C asynchronous; the
number of pushes in between (the staleness) is counted and logged.

Threads, not processes: JAX releases the GIL while XLA runs, so the workers overlap their
compute and their env steps, but the Python parts (env step, dispatch) still take turns. The push
is serialised by a lock (the paper's Hogwild-style lock-free updates are not needed: a push is one
small jitted call). The normaliser is shared: a worker normalises with the statistics it synced
(frozen during its rollout, like theta') and merges its rollout's observations into the shared
statistics when it pushes. Rewards are not normalised (`normalize_reward` is refused).

Checkpoints hold the shared parameters, optimiser state and normaliser, each worker's RNG key and
next episode index, and the counters. A resumed run starts every worker on a new episode with an
empty rollout; it cannot repeat an uninterrupted run bit for bit, because the order in which
threads push is up to the scheduler (so is an uninterrupted run: A3C is not reproducible).

When is it faster than A2C on a CPU? Worker threads pay off when the time of a step is spent
outside the GIL: an env that waits for a simulator, a control system or a C extension, with
cores to spare. Then one worker's wait overlaps another's step, while A2C's synchronous vector env
waits for its envs one after the other. They do not pay off for a small MLP on a fast pure-Python
env (CartPole as is): per env step a worker makes one jitted call for one observation where A2C
makes one for all its envs, the Python around it holds the GIL and so runs one thread at a time,
and XLA's own threads already use the cores inside each call (BENCHMARKS.md, 'A2C and A3C').
"""

from __future__ import annotations

import functools
import queue
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax

from polyak.algos.algorithm import Callback, NonFiniteError
from polyak.algos.onpolicy.actor_critic import A2CConfig, actor_critic_loss
from polyak.algos.onpolicy.host import OnPolicyAlgorithm
from polyak.algos.onpolicy.learner import (
    PGState,
    PolicyGradientAgent,
    Rollout,
    explained_variance,
    normalize_advantages,
)
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.monitor import nonfinite_code, nonfinite_names
from polyak.core.normalizer import RunningMeanStd, rms_init, rms_normalize, rms_update
from polyak.core.optim import apply_gradients
from polyak.core.returns import gae_advantages
from polyak.envs.spaces import action_map
from polyak.envs.stepping import SingleEnvStepper
from polyak.io.logger import RunLogger


@dataclass(frozen=True)
class A3CConfig(A2CConfig):
    """A2C's hyperparameters (RMSprop 7e-4, n_steps 5, lambda 1) and the number of worker threads."""

    n_workers: int = 2

    def validate(self) -> None:
        super().validate()
        need(self.n_workers >= 1, f"n_workers must be >= 1, got {self.n_workers}")
        need(not self.normalize_reward, "A3C does not support normalize_reward=True (a return normaliser shared "
                                        "by asynchronous workers); scale rewards with a wrapper instead")


@dataclass(frozen=True)
class A3CAgent(PolicyGradientAgent):
    cfg: A3CConfig

    def gradient(self, params: dict, rollout: Rollout) -> tuple[dict, dict]:
        """A worker's gradient g of the actor-critic loss at its parameters theta', on its own rollout."""
        cfg = self.cfg
        # 3. n-step advantages (GAE with lambda = 1), bootstrapped from V(s') at cuts, none at terminations
        value, next_value = self.rollout_values(params, rollout)
        advantage, value_target = gae_advantages(rollout.reward, value, next_value, rollout.terminated,
                                                 rollout.episode_end, cfg.gamma, cfg.gae_lambda)
        if cfg.normalize_advantage:
            advantage = normalize_advantages(advantage)
        # 4. g = grad of A2C's loss
        (loss, metrics), grads = jax.value_and_grad(actor_critic_loss, argnums=1, has_aux=True)(
            self, params, rollout.obs, rollout.action, advantage, value_target)
        metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads),
                       explained_variance=explained_variance(value, value_target))
        return grads, metrics

    def apply_gradient(self, state: PGState, grads: dict) -> PGState:
        """5. theta <- theta + RMSprop(g) (global-norm clipped), with the shared optimiser statistics."""
        params, opt_state = apply_gradients(self.optimizer, state.params, grads, state.opt_state)
        return state._replace(params=params, opt_state=opt_state, n_updates=state.n_updates + 1)

    def update(self, state: PGState, rollout: Rollout, key: jax.Array):
        """The synchronous special case (gradient and push at the same parameters): A2C's update."""
        grads, metrics = self.gradient(state.params, rollout)
        return self.apply_gradient(state, grads), metrics


class A3CLearner(NamedTuple):
    """Everything the workers share, and what a checkpoint holds."""

    agent: PGState  # theta, the shared RMSprop state, the number of pushes
    obs_rms: RunningMeanStd  # the shared observation normaliser
    worker_keys: jax.Array  # (n_workers, 2) each worker's RNG key (written at save)
    worker_episodes: jax.Array  # (n_workers,) int32: the episode index each worker starts next (its reset seed)
    staleness: jax.Array  # (2,) int32: sum and max over all pushes of (pushes between sync and push)


@functools.lru_cache(maxsize=32)
def worker_functions(agent: A3CAgent, n_workers: int) -> dict[str, Any]:
    """The jitted functions of the workers, compiled once and shared by all of them (and by equal models)."""
    normalize_obs = agent.cfg.normalize_obs

    def init(key: jax.Array) -> A3CLearner:
        k_agent, k_workers = jax.random.split(key)
        return A3CLearner(agent.init(k_agent), rms_init(agent.obs_dim), jax.random.split(k_workers, n_workers),
                          jnp.zeros((n_workers,), jnp.int32), jnp.zeros((2,), jnp.int32))

    def act(params: dict, obs_rms: RunningMeanStd, obs: jax.Array, key: jax.Array):
        """a_t ~ pi(.|s_t; theta') with the worker's snapshot of theta and of the normaliser."""
        key, k_act = jax.random.split(key)
        action, log_prob = agent.act(PGState(params, None, None), rms_normalize(obs_rms, obs, enabled=normalize_obs),
                                     k_act, False)
        return key, action, log_prob

    def gradient(params: dict, obs_rms: RunningMeanStd, raw: Rollout):
        """The worker's gradient on its rollout of raw observations, normalised with its snapshot;
        its metrics, and which of them were not finite (`core.monitor.nonfinite_code`)."""
        normalize = functools.partial(rms_normalize, obs_rms, enabled=normalize_obs)
        grads, metrics = agent.gradient(params, raw._replace(obs=normalize(raw.obs), next_obs=normalize(raw.next_obs)))
        return grads, metrics, nonfinite_code(metrics)

    def push(learner: A3CLearner, grads: dict, obs: jax.Array) -> A3CLearner:
        """Apply a gradient to the shared state and merge the rollout's observations into the normaliser."""
        return learner._replace(agent=agent.apply_gradient(learner.agent, grads),
                                obs_rms=rms_update(learner.obs_rms, obs, normalize_obs))

    return {"init": jax.jit(init), "act": jax.jit(act), "gradient": jax.jit(gradient), "push": jax.jit(push)}


def host_rollout(n_steps: int, obs_dim: int, act_dim: int) -> dict[str, np.ndarray]:
    """Zeroed host arrays for one worker's rollout: the fields of `Rollout`, shape (n_steps, 1, ...)."""
    width = {"obs": obs_dim, "action": act_dim, "next_obs": obs_dim}
    return {k: np.zeros((n_steps, 1, width[k]) if k in width else (n_steps, 1), np.float32) for k in Rollout._fields}


class Worker:
    """One actor-learner's own state: env, RNG key, snapshot of theta, the rollout being collected."""

    def __init__(self, index: int, env: gym.Env, seed: int, key: jax.Array, episode: int, n_steps: int,
                 obs_dim: int, act_dim: int):
        self.index, self.env = index, env
        self.stepper = SingleEnvStepper(env, seed, env_index=index)
        self.stepper.episode = int(episode)
        self.key = key
        self.n_steps, self.obs_dim, self.act_dim = n_steps, obs_dim, act_dim
        self.obs: np.ndarray | None = None  # raw observation to act on next (None: no episode running)
        self.time_in_episode = 0
        self.episode_return, self.episode_length = 0.0, 0
        self.params = self.obs_rms = None  # snapshot of the shared state, taken at the rollout's start
        self.synced_at = 0  # number of pushes to theta when the snapshot was taken
        self.row = 0
        self.steps = 0  # environment steps taken by this worker
        self.rollout: dict[str, np.ndarray] = {}

    def new_rollout(self) -> None:
        """Fresh host arrays: a jitted call may still read the previous ones."""
        self.rollout = host_rollout(self.n_steps, self.obs_dim, self.act_dim)

    def next_episode(self) -> int:
        """The episode index to start after a resume (the running one, if any, is abandoned)."""
        return self.stepper.episode + (self.obs is not None)


class _Run:
    """What the threads of one `learn` call share besides the model."""

    def __init__(self, target: int):
        self.target = target
        self.stop = threading.Event()
        self.events: queue.Queue = queue.Queue()  # ("episode", step, return, length) and ("push",)
        self.errors: list[BaseException] = []


@register(family="onpolicy", action_kinds=("Box", "Discrete"), jitted_loop=False)
class A3C(OnPolicyAlgorithm):
    """A3C. ``A3C("MlpPolicy", "CartPole-v1", n_workers=4, n_steps=5, ...)``.

    `env` is an environment id, a registered `gymnasium.Env` (the workers use it and copies made from
    its spec) or a function returning a new env; each of the `n_workers` threads steps its own env.
    """

    name = "a3c"
    config_cls = A3CConfig
    agent_cls = A3CAgent

    # -- construction ----------------------------------------------------------------------
    def _attach_env(self, env: Any) -> None:
        envs = self._make_worker_envs(env)
        obs_space, act_space = envs[0].observation_space, envs[0].action_space
        self._check_spaces(obs_space, act_space)
        for other in envs[1:]:
            if (other.observation_space, other.action_space) != (obs_space, act_space):
                raise ValueError(f"the workers' envs have different spaces: {other.observation_space}/"
                                 f"{other.action_space} vs {obs_space}/{act_space}")
        self._check_fits_model(obs_space, act_space)
        self.env, self.worker_envs, self.stepper = envs[0], envs, None
        self.n_envs = len(envs)
        spec = getattr(envs[0], "spec", None)
        self.env_id = spec.id if spec is not None else None
        self.observation_space, self.action_space = obs_space, act_space
        self.scaler = action_map(act_space)
        self.workers: list[Worker] | None = None  # built at the first learn(), from the learner's keys

    def _make_worker_envs(self, env: Any) -> list[gym.Env]:
        n = self.config.n_workers
        if isinstance(env, gym.vector.VectorEnv):
            raise ValueError(f"A3C steps one environment per worker thread, not a vector env: pass the env id "
                             f"and set n_workers (now {n}), e.g. A3C('MlpPolicy', 'CartPole-v1', n_workers=4)")
        if isinstance(env, (str, gym.envs.registration.EnvSpec)):
            return [gym.make(env) for _ in range(n)]
        if isinstance(env, gym.Env):
            if n == 1:
                return [env]
            if env.spec is None:
                raise ValueError(f"A3C needs {n} copies of the env (one per worker) but this "
                                 f"{type(env).__name__} has no spec to make them from: pass an env id or a "
                                 "function that returns a new env")
            return [env] + [gym.make(env.spec) for _ in range(n - 1)]
        if callable(env):
            envs = [env() for _ in range(n)]
            if not all(isinstance(e, gym.Env) for e in envs):
                raise TypeError(f"the env function must return a gymnasium.Env, got {type(envs[0]).__name__}")
            return envs
        raise TypeError(f"env must be an environment id, a gymnasium.Env or a function returning one, "
                        f"got {type(env).__name__}")

    def _init_host_state(self) -> None:
        super()._init_host_state()
        self._latest_metrics: dict[str, float] | None = None  # of the latest push

    def _build(self, obs_dim: int, action_space: gym.Space, n_envs: int) -> None:
        super()._build(obs_dim, action_space, n_envs)  # agent, spec; predict and value functions
        self._fns = {**self._fns, **worker_functions(self.agent, n_envs)}
        self._lock = threading.Lock()  # guards the shared learner and the push counters
        self._count_lock = threading.Lock()  # guards num_timesteps
        self.workers = None

    def _ensure_workers(self) -> list[Worker]:
        if self.workers is None:
            keys, episodes = self.learner.worker_keys, np.asarray(self.learner.worker_episodes)
            a = self.agent
            self.workers = [Worker(i, env, self.seed, keys[i], int(episodes[i]), self.config.n_steps, a.obs_dim,
                                   a.act_dim) for i, env in enumerate(self.worker_envs)]
            self._pushes = int(self.learner.agent.n_updates)
            self._staleness = [int(v) for v in np.asarray(self.learner.staleness)]  # [sum, max]
        return self.workers

    # -- training --------------------------------------------------------------------------
    def learn(self, total_timesteps: int, callback: Callback | None = None, log_interval: int = 1000,
              progress_bar: bool = False, run_dir=None, reset_num_timesteps: bool = False,
              logger: RunLogger | None = None) -> "A3C":
        """Train for `total_timesteps` more environment steps, summed over the workers (counted exactly).

        `callback(model)` runs in the calling thread after each push (not after every env step);
        returning False stops all workers. A worker's unfinished rollout is kept for the next call.
        Metrics of the latest push and the staleness since the last log are logged every
        `log_interval` steps.
        """
        with self._learning(total_timesteps, reset_num_timesteps, logger, run_dir, progress_bar) as logger:
            run = _Run(self.num_timesteps + int(total_timesteps))
            self.learner = self.learner._replace(agent=self.agent.start_run(self.learner.agent, run.target))
            workers = self._ensure_workers()
            self._compile()
            threads = [threading.Thread(target=self._work, args=(w, run), name=f"a3c-worker-{w.index}", daemon=True)
                       for w in workers]
            next_log = (self.num_timesteps // log_interval + 1) * log_interval
            shown, logged = self.num_timesteps, (self._pushes, self._staleness[0])
            logger.start(int(total_timesteps), self.num_timesteps)  # after compiling: steps/s counts steps only
            try:
                for t in threads:
                    t.start()
                while any(t.is_alive() for t in threads) or not run.events.empty():
                    try:
                        event = run.events.get(timeout=0.05)
                    except queue.Empty:
                        event = ("idle",)
                    if event[0] == "episode":
                        logger.episode(*event[1:])
                    logger.progress(self.num_timesteps - shown)
                    shown = self.num_timesteps
                    if shown >= next_log:
                        values, logged = self._log_values(logged)
                        logger.metrics(shown, values)
                        next_log = (shown // log_interval + 1) * log_interval
                    if event[0] == "push" and self._callback_stops(callback):
                        run.stop.set()
            finally:
                run.stop.set()
                for t in threads:
                    t.join()
                self._store_worker_state()
        if run.errors:
            raise run.errors[0]
        return self

    def _compile(self) -> None:
        """Compile the workers' functions once, here, rather than in several threads at once."""
        f, a = self._fns, self.agent
        params, rms = self.learner.agent.params, self.learner.obs_rms
        f["act"](params, rms, np.zeros((1, a.obs_dim), np.float32), self.workers[0].key)
        rollout = Rollout(**host_rollout(self.config.n_steps, a.obs_dim, a.act_dim))
        grads, metrics, _ = f["gradient"](params, rms, rollout)
        f["push"](self.learner, grads, rollout.obs[:, 0])  # pure: the result is discarded
        if self._latest_metrics is None:  # the same columns in metrics.csv before the first push
            self._latest_metrics = {k: float("nan") for k in metrics}

    def _claim_step(self, run: _Run) -> bool:
        """Reserve one environment step of the budget (exact count across threads)."""
        with self._count_lock:
            if run.stop.is_set() or self.num_timesteps >= run.target:
                return False
            self.num_timesteps += 1
            return True

    def _work(self, w: Worker, run: _Run) -> None:
        try:
            while self._claim_step(run):
                self._worker_step(w, run)
        except BaseException as exc:  # re-raised by learn() in the calling thread
            run.errors.append(exc)
            run.stop.set()

    def _worker_step(self, w: Worker, run: _Run) -> None:
        """One environment step of worker w; at the end of its rollout, its gradient is pushed."""
        f = self._fns
        if w.obs is None:  # start an episode
            w.obs, w.time_in_episode = w.stepper.reset(), 0
        if w.row == 0:  # 1. sync: theta' <- theta (a reference: JAX arrays are immutable)
            with self._lock:
                w.params, w.obs_rms, w.synced_at = self.learner.agent.params, self.learner.obs_rms, self._pushes
            w.new_rollout()
        # 2. collect one transition with pi(.|s; theta')
        w.key, action, log_prob = f["act"](w.params, w.obs_rms, w.obs, w.key)
        action = np.asarray(action)
        batch = w.stepper.step(self.scaler.to_env(action))
        step = self.num_timesteps
        if not (np.all(np.isfinite(batch.next_obs)) and np.all(np.isfinite(batch.reward))):
            raise NonFiniteError(f"worker {w.index}: non-finite observation or reward near environment step {step}: "
                                 f"obs {batch.next_obs.tolist()}, reward {batch.reward.tolist()}")
        r, t = w.rollout, w.row
        r["obs"][t], r["action"][t], r["log_prob"][t] = w.obs, action, np.asarray(log_prob)
        r["reward"][t], r["next_obs"][t], r["terminated"][t] = batch.reward, batch.next_obs, batch.terminated
        r["episode_end"][t] = batch.terminated | batch.truncated
        r["time_in_episode"][t] = w.time_in_episode
        w.row, w.steps = w.row + 1, w.steps + 1
        w.episode_return += float(batch.reward[0])
        w.episode_length += 1
        if r["episode_end"][t, 0]:
            run.events.put(("episode", step, w.episode_return, w.episode_length))
            w.episode_return, w.episode_length = 0.0, 0
        w.obs = batch.obs
        w.time_in_episode = 0 if batch.episode_start[0] else w.time_in_episode + 1
        if w.row < w.n_steps:
            return
        # 3.-4. advantages and gradient at theta' (outside the lock: workers overlap here)
        w.row = 0
        grads, metrics, code = f["gradient"](w.params, w.obs_rms, Rollout(**r))
        metrics, code = jax.device_get((metrics, code))
        if code:
            raise NonFiniteError(f"worker {w.index}: non-finite {', '.join(nonfinite_names(metrics, code))} in the "
                                 f"gradient after environment step {step} (training stopped; lower the learning "
                                 "rate or scale the rewards)")
        metrics = {k: float(v) for k, v in metrics.items()}
        # 5. push: theta <- theta + RMSprop(g); the gradient is `staleness` pushes old
        with self._lock:
            staleness = self._pushes - w.synced_at
            self.learner = f["push"](self.learner, grads, r["obs"][:, 0])
            self._pushes += 1
            self._staleness = [self._staleness[0] + staleness, max(self._staleness[1], staleness)]
            self._latest_metrics = metrics
        run.events.put(("push",))

    def _log_values(self, since: tuple[int, int]) -> tuple[dict[str, float], tuple[int, int]]:
        """Metrics of the latest push and the mean staleness of the pushes since the previous log
        (`since`: the push count and staleness sum then); returns them and the new `since`."""
        with self._lock:
            pushes, (total, worst) = self._pushes, self._staleness
            values = dict(self._latest_metrics)
        n = pushes - since[0]
        values.update(updates=float(pushes), staleness_mean=(total - since[1]) / n if n else float("nan"),
                      staleness_max=float(worst))
        return values, (pushes, total)

    def _store_worker_state(self) -> None:
        """Write the workers' keys, next episodes and the staleness counters into the learner (for save)."""
        if self.workers is None:
            return
        with self._lock:
            self.learner = self.learner._replace(
                worker_keys=jnp.stack([w.key for w in self.workers]),
                worker_episodes=jnp.asarray([w.next_episode() for w in self.workers], jnp.int32),
                staleness=jnp.asarray(self._staleness, jnp.int32))

    # -- checkpoints -----------------------------------------------------------------------
    def save(self, path, include_buffer: bool = False):
        """One atomic, code-free file: shared parameters, RMSprop state, normaliser, worker keys and
        episode indices, counters, hyperparameters. Unfinished rollouts and running episodes are not
        saved (a resumed run starts each worker on a new episode)."""
        self._store_worker_state()
        return super().save(path, include_buffer)

    def set_env(self, env: Any) -> None:
        self._store_worker_state()
        super().set_env(env)
