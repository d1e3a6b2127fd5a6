"""The fully jitted training loop for JAX environments, vmapped over seeds.

One compiled function runs `chunk` vector-env steps under `lax.scan` for every seed at once:

    for t in chunk:                                        (lax.scan)
        for every seed:                                    (jax.vmap)
            env step + auto-reset                          boundaries.jax_envs_step (as the vector adapter)
            buffer write                                   base.store_step          (as the host loop)
            K gradient steps and the next action           base.train_step          (as the host loop)

The agent's `update`, the buffer, the normaliser, the exploration noise and the episode-boundary
logic are the very functions the Gymnasium host loop calls; only the loop around them moves from
Python into XLA. With seeds s0..sN-1 a run equals, seed for seed, the host loop of
`ALGO("MlpPolicy", gymnasium.make_vec(env_id, n_envs), seed=s)` (tested on scripted episodes).
Whether a step trains depends only on the step index, shared by all seeds, so warm-up steps run
no gradient step even under vmap.

`train_seeds` is the entry point of `polyak train ALGO --env polyak/... --seeds N`: it builds one
model per seed (for the configuration, saving and evaluation), trains all of them in one process,
and writes each seed's run folder as a single `polyak train` would.
"""

from __future__ import annotations

import functools
import json
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from polyak.algos import onpolicy
from polyak.algos.base import (LoopSpec, Learner, first_action, init_learner, q_divergence_message, store_step,
                               train_step)
from polyak.common.boundaries import jax_envs_reset, jax_envs_step


class LoopState(NamedTuple):
    """The scan carry of one seed."""

    learner: Learner
    env_key: jax.Array
    env_states: Any
    obs: jax.Array  # (n_envs, obs_dim): the observation the pending action was chosen for
    action: jax.Array  # (n_envs, act_dim): the pending action, in [-1, 1]
    episode_return: jax.Array  # (n_envs,) running (unscaled) return
    episode_length: jax.Array  # (n_envs,)


class StepLog(NamedTuple):
    """Per step and env, returned to the host for the episode log."""

    done: jax.Array
    episode_return: jax.Array  # the finished episode's return where done
    episode_length: jax.Array


def pack(spec: LoopSpec, obs, action, batch, random) -> jax.Array:
    """The host loop's packed array (same columns, `LoopSpec.columns`), built on the device."""
    n = obs.shape[0]
    parts = {"obs": obs, "action": action, "reward": batch.reward[:, None], "next_obs": batch.next_obs,
             "terminated": batch.terminated[:, None], "truncated": batch.truncated[:, None],
             "valid": batch.valid[:, None], "act_obs": batch.obs,
             "episode_start": batch.episode_start[:, None], "random": jnp.full((n, 1), random)}
    return jnp.concatenate([parts[name].astype(jnp.float32) for name in spec.columns()], axis=1)


def to_env_units(action, low, high):
    """`ActionScaler.to_env` on the device: [-1, 1] -> [low, high]."""
    return low + 0.5 * (jnp.clip(action, -1.0, 1.0) + 1.0) * (high - low)


def device_action_map(action_space):
    """The agent's action columns -> the env's actions, on the device (as `common.envs.action_map` on the host)."""
    import gymnasium as gym

    if isinstance(action_space, gym.spaces.Discrete):  # one float column holds the index
        start = int(action_space.start)
        return lambda action: action[..., 0].astype(jnp.int32) + start
    low = jnp.asarray(action_space.low, jnp.float32)
    high = jnp.asarray(action_space.high, jnp.float32)
    return lambda action: to_env_units(action, low, high)


def init_per_seed(init_one):
    """seeds (n,) -> stacked initial states, one seed after the other (`lax.map`, not `vmap`).

    Under vmap, orthogonal initialisation becomes batched QR factorisations, and jaxlib's CPU QR kernel
    spreads a batch over XLA's intra-op thread pool and waits for it. When the thunk executor runs two such
    kernels at once on a 2-thread pool, both threads wait for work that no free thread can run: the
    program hangs (observed with PPO's orthogonal init, 8 seeds, on 2 cores). One seed at a time keeps
    every QR unbatched; initialisation is a negligible part of a run.
    """
    return lambda seeds: jax.lax.map(init_one, seeds)


class JittedLoop:
    """Compiled init and chunk functions for one (LoopSpec, env, params)."""

    def __init__(self, spec: LoopSpec, env, params, chunk: int = 1000):
        self.spec, self.env, self.params, self.chunk = spec, env, params, int(chunk)
        cfg = spec.cfg
        self.n_grad = cfg.gradient_steps if cfg.gradient_steps > 0 else cfg.train_freq * spec.n_envs
        self.to_env = device_action_map(env.action_space)
        self.init = jax.jit(init_per_seed(self._init_one))
        self.run_chunk = jax.jit(self._run_chunk, donate_argnums=0)

    def _init_one(self, seed: jax.Array) -> LoopState:
        spec = self.spec
        learner = init_learner(spec, jax.random.PRNGKey(seed), with_buffer=True)
        env_key, env_states, obs = jax_envs_reset(self.env, self.params, jax.random.PRNGKey(seed), spec.n_envs)
        random = jnp.float32(spec.cfg.learning_starts > 0)
        learner, action = first_action(spec, learner, obs, random)
        zeros = jnp.zeros(spec.n_envs)
        return LoopState(learner, env_key, env_states, obs, action, zeros, zeros.astype(jnp.int32))

    def _step_one(self, state: LoopState, learning, train_now) -> tuple[LoopState, StepLog]:
        spec = self.spec
        env_key, env_states, batch, _ = jax_envs_step(
            self.env, self.params, state.env_key, state.env_states, self.to_env(state.action))
        packed = pack(spec, state.obs, state.action, batch, jnp.where(learning, 0.0, 1.0))
        buffer, window = store_step(spec, state.learner.buffer, state.learner.window, packed)
        learner = state.learner._replace(buffer=buffer, window=window)
        learner, next_action, _ = jax.lax.cond(
            train_now,
            lambda lr: train_step(spec, self.n_grad, lr, packed),
            lambda lr: train_step(spec, 0, lr, packed), learner)
        episode_return = state.episode_return + batch.reward
        episode_length = state.episode_length + 1
        done = batch.terminated | batch.truncated
        log = StepLog(done, episode_return, episode_length)
        state = LoopState(learner, env_key, env_states, batch.obs, next_action,
                          jnp.where(done, 0.0, episode_return), jnp.where(done, 0, episode_length))
        return state, log

    def _run_chunk(self, states: LoopState, first_vector_step: jax.Array) -> tuple[LoopState, StepLog]:
        cfg, n_envs = self.spec.cfg, self.spec.n_envs

        n_seeds = jax.tree.leaves(states)[0].shape[0]
        step_all = (jax.vmap(self._step_one, in_axes=(0, None, None)) if n_seeds > 1 else self._step_one)

        def body(states, t):
            # the host loop's rule, from the step index shared by all seeds (a real branch under vmap)
            vector_step = t + 1
            learning = vector_step * n_envs >= cfg.learning_starts
            train_now = learning & (vector_step % cfg.train_freq == 0)
            return step_all(states, learning, train_now)

        steps = first_vector_step + jnp.arange(self.chunk)
        if n_seeds == 1:  # vmap over a batch of one costs 4-7% per step (extra transposes): drop the axis
            states, logs = jax.lax.scan(body, jax.tree.map(lambda x: x[0], states), steps)
            return jax.tree.map(lambda x: x[None], states), jax.tree.map(lambda x: x[:, None], logs)
        return jax.lax.scan(body, states, steps)


class OnPolicyJittedLoop:
    """The same for on-policy agents: a chunk is a whole number of rollouts; per rollout, n_steps - 1
    `onpolicy.collect_step`s and one `onpolicy.collect_and_update_step` (the host loop's calls)."""

    def __init__(self, spec, env, params, chunk: int):
        self.spec, self.env, self.params = spec, env, params
        self.n_rollouts = max(1, int(chunk) // spec.cfg.n_steps)
        self.chunk = self.n_rollouts * spec.cfg.n_steps  # vector steps per call
        self.to_env = device_action_map(env.action_space)
        self.init = jax.jit(init_per_seed(self._init_one))
        self.run_chunk = jax.jit(self._run_chunk, donate_argnums=0)

    def _init_one(self, seed: jax.Array) -> LoopState:
        spec = self.spec
        learner = onpolicy.init_learner(spec, jax.random.PRNGKey(seed))
        env_key, env_states, obs = jax_envs_reset(self.env, self.params, jax.random.PRNGKey(seed), spec.n_envs)
        learner, action = onpolicy.start(spec, learner, obs)
        zeros = jnp.zeros(spec.n_envs)
        return LoopState(learner, env_key, env_states, obs, action, zeros, zeros.astype(jnp.int32))

    def _step_one(self, state: LoopState, finish_rollout: bool) -> tuple[LoopState, StepLog]:
        spec = self.spec
        env_key, env_states, batch, _ = jax_envs_step(
            self.env, self.params, state.env_key, state.env_states, self.to_env(state.action))
        parts = {"reward": batch.reward[:, None], "next_obs": batch.next_obs, "terminated": batch.terminated[:, None],
                 "truncated": batch.truncated[:, None], "act_obs": batch.obs, "episode_start": batch.episode_start[:, None]}
        packed = jnp.concatenate([parts[name].astype(jnp.float32) for name in spec.columns()], axis=1)
        step = onpolicy.collect_and_update_step if finish_rollout else onpolicy.collect_step
        learner, next_action = step(spec, state.learner, packed)
        episode_return = state.episode_return + batch.reward
        episode_length = state.episode_length + 1
        done = batch.terminated | batch.truncated
        state = LoopState(learner, env_key, env_states, batch.obs, next_action,
                          jnp.where(done, 0.0, episode_return), jnp.where(done, 0, episode_length))
        return state, StepLog(done, episode_return, episode_length)

    def _run_chunk(self, states: LoopState, first_vector_step: jax.Array) -> tuple[LoopState, StepLog]:
        n_seeds = jax.tree.leaves(states)[0].shape[0]
        one = n_seeds == 1  # as JittedLoop: no vmap over a batch of one
        collect = functools.partial(self._step_one, finish_rollout=False)
        finish = functools.partial(self._step_one, finish_rollout=True)
        collect, finish = (collect, finish) if one else (jax.vmap(collect), jax.vmap(finish))

        def rollout(states, _):
            states, logs = jax.lax.scan(lambda s, _: collect(s), states, None, length=self.spec.cfg.n_steps - 1)
            states, last = finish(states)
            return states, jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), logs, last)

        if one:
            states = jax.tree.map(lambda x: x[0], states)
        states, logs = jax.lax.scan(rollout, states, None, length=self.n_rollouts)
        logs = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), logs)  # (rollouts, n_steps, ...) -> steps
        if one:
            return jax.tree.map(lambda x: x[None], states), jax.tree.map(lambda x: x[:, None], logs)
        return states, logs


@functools.lru_cache(maxsize=8)
def _loop(spec, env, params, chunk: int):
    if isinstance(spec, onpolicy.OnPolicySpec):
        return OnPolicyJittedLoop(spec, env, params, chunk)
    return JittedLoop(spec, env, params, chunk)


def _monitor(learner) -> tuple[dict[str, np.ndarray], np.ndarray, Any]:
    """(metrics, first non-finite step, the off-policy Q monitor or None) per seed, for either family's learner."""
    if hasattr(learner, "monitor"):
        metrics = dict(learner.monitor.metrics, q_abs_max_so_far=learner.monitor.q_abs_max)
        return metrics, learner.monitor.nonfinite_step, learner.monitor
    return learner.metrics, learner.nonfinite_step, None


def train_seeds(algo: str, env_id: str, seeds: list[int], steps: int, hyperparameters: dict[str, Any],
                env_kwargs: dict[str, Any] | None = None, n_envs: int = 1, run_root: str | Path = "runs",
                run_dir: str | Path | None = None, chunk: int = 1000, eval_episodes: int = 10,
                progress_bar: bool = True, command: str = "") -> list[Path]:
    """Train `algo` on the JAX env `env_id` for every seed in one process (vmapped); one run folder per seed.

    Returns the run folders. Each holds what `polyak train` writes: config.json, metrics.csv,
    episodes.csv, tensorboard/, learning_curve.png, model.polyak and eval.json.
    """
    import gymnasium as gym

    from polyak import __version__
    from polyak.cli import MODEL_FILE, build_model, make_training_env
    from polyak.common.logger import RunLogger, plot_learning_curve
    from polyak.evaluation import evaluate_policy

    env_kwargs = dict(env_kwargs or {})
    vector_env = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **env_kwargs)
    jax_env, params = vector_env.env, vector_env.params
    models = [build_model(algo, vector_env, seed, hyperparameters) for seed in seeds]
    spec = models[0].spec
    vector_steps = -(-int(steps) // n_envs)
    if isinstance(spec, onpolicy.OnPolicySpec):  # whole rollouts: round the run up to them
        rollout = spec.cfg.n_steps
        vector_steps = -(-vector_steps // rollout) * rollout
        # at least two rollouts per call: XLA:CPU drops a loop of one trip, ~5% slower (BENCHMARKS.md)
        chunk = max(2 * rollout, chunk // rollout * rollout)
    chunk = min(chunk, vector_steps)
    full, rest = divmod(vector_steps, chunk)
    plan = [_loop(spec, jax_env, params, chunk)] * full + ([_loop(spec, jax_env, params, rest)] if rest else [])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dirs = []
    for seed in seeds:
        d = (Path(run_dir) / f"seed{seed}" if run_dir is not None else
             Path(run_root) / f"{algo}-{env_id.replace('/', '_')}-s{seed}-{stamp}")
        d.mkdir(parents=True, exist_ok=True)
        run_dirs.append(d)
    loggers = [RunLogger(d, verbose=0, progress_bar=False) for d in run_dirs]
    for d, seed, model, logger in zip(run_dirs, seeds, models, loggers):
        config = {"algorithm": algo, "env": env_id, "env_kwargs": env_kwargs, "n_envs": n_envs, "steps": steps,
                  "seed": seed, "library_version": __version__, "command": command, "overrides": hyperparameters,
                  "hyperparameters": model.config.to_dict(), "loop": f"jitted, {len(seeds)} seeds vmapped",
                  "action_noise": None if getattr(model, "action_noise", None) is None else repr(model.action_noise)}
        (d / "config.json").write_text(json.dumps(config, indent=2))
        logger.start(steps, 0)

    progress = None
    if progress_bar:
        from tqdm import tqdm

        progress = tqdm(total=vector_steps * n_envs, desc=f"{algo.upper()} x{len(seeds)} seeds (jitted)",
                        unit="step", mininterval=0.5)
    t0 = time.perf_counter()
    states = plan[0].init(jnp.asarray(seeds, jnp.uint32))
    if hasattr(spec.agent, "start_run"):  # e.g. the epsilon schedule's length, as model.learn(steps) sets it
        states = states._replace(learner=states.learner._replace(
            agent=spec.agent.start_run(states.learner.agent, int(steps))))
    done_steps, warned = 0, set()
    for loop in plan:
        states, logs = loop.run_chunk(states, jnp.int32(done_steps))
        logs, (metrics_all, nonfinite_step, q_monitor) = jax.device_get((logs, _monitor(states.learner)))
        for i, logger in enumerate(loggers):
            message = None if q_monitor is None else q_divergence_message(jax.tree.map(lambda x: x[i], q_monitor),
                                                                          spec.cfg.gamma)
            if message is not None and seeds[i] not in warned:  # as the host loop: once per run
                warned.add(seeds[i])
                warnings.warn(f"seed {seeds[i]}: {message}", RuntimeWarning, stacklevel=2)
            for t, e in zip(*np.nonzero(logs.done[:, i])):
                step = (done_steps + t + 1) * n_envs
                logger.episode(step, float(logs.episode_return[t, i, e]), int(logs.episode_length[t, i, e]))
            logger.metrics((done_steps + loop.chunk) * n_envs, {k: float(v[i]) for k, v in metrics_all.items()})
            if nonfinite_step[i] >= 0:
                raise FloatingPointError(f"seed {seeds[i]}: non-finite loss at environment step "
                                         f"{int(nonfinite_step[i])}")
        done_steps += loop.chunk
        if progress is not None:
            progress.update(loop.chunk * n_envs)
    jax.block_until_ready(states)
    train_s = time.perf_counter() - t0
    if progress is not None:
        progress.close()
    for logger in loggers:
        logger.close()

    for i, (d, seed, model) in enumerate(zip(run_dirs, seeds, models)):
        learner = jax.tree.map(lambda x, i=i: x[i], states.learner)
        model.learner = learner
        model.num_timesteps = int(learner.step)
        model.save(d / MODEL_FILE)
        returns, lengths = evaluate_policy(model, make_training_env(env_id, 1, env_kwargs), eval_episodes,
                                           seed=10_000 + seed, return_episode_rewards=True)
        result = {"eval_return_mean": float(np.mean(returns)), "eval_return_std": float(np.std(returns)),
                  "eval_returns": returns, "eval_lengths": lengths, "train_seconds": round(train_s, 2),
                  "steps_per_second": round(model.num_timesteps * len(seeds) / train_s, 1),
                  "steps": model.num_timesteps, "seeds_in_process": len(seeds)}
        (d / "eval.json").write_text(json.dumps(result, indent=2))
        plot_learning_curve(d, f"{algo.upper()} on {env_id} (seed {seed}, jitted)", result["eval_return_mean"])
    return run_dirs
