"""`polyak train ALGO --env JAX_ENV --seeds N`: every seed trained in one process by the jitted loop (vmapped)."""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from polyak.algos.algorithm import NonFiniteError
from polyak.core.monitor import log_values, nonfinite_message, warning_message
from polyak.envs.gym_compat import make_vector
from polyak.runs.run import RunFolder, build_model, run_folder_name, time_stamp


@functools.lru_cache(maxsize=8)
def _loop(loop_cls, spec, env, params, chunk: int):
    return loop_cls(spec, env, params, chunk)


def train_seeds(algo: str, env_id: str, seeds: list[int], steps: int, hyperparameters: dict[str, Any],
                env_kwargs: dict[str, Any] | None = None, n_envs: int = 1, run_root: str | Path = "runs",
                run_dir: str | Path | None = None, chunk: int = 1000, eval_episodes: int = 10,
                progress_bar: bool = True, command: str = "") -> list[Path]:
    """Train `algo` on the JAX env `env_id` for every seed in one process (vmapped); one run folder per seed.

    Returns the run folders. Each holds what `polyak train` writes: config.json, metrics.csv,
    episodes.csv, tensorboard/, learning_curve.png, model.polyak and eval.json.
    """
    env_kwargs = dict(env_kwargs or {})
    vector_env = make_vector(env_id, n_envs, **env_kwargs)
    jax_env, params = vector_env.env, vector_env.params
    models = [build_model(algo, vector_env, seed, hyperparameters) for seed in seeds]
    spec, loop_cls = models[0].spec, type(models[0]).jax_env_loop
    if loop_cls is None:
        raise ValueError(f"{algo} has no fully jitted loop: train its seeds in processes")
    vector_steps, chunk = loop_cls.plan_steps(spec, -(-int(steps) // n_envs), chunk)
    full, rest = divmod(vector_steps, chunk)
    plan = [_loop(loop_cls, spec, jax_env, params, chunk)] * full + (
        [_loop(loop_cls, spec, jax_env, params, rest)] if rest else [])
    stamp = time_stamp()
    folders = [RunFolder.create(Path(run_dir) / f"seed{seed}" if run_dir is not None else
                                Path(run_root) / run_folder_name(algo, env_id, seed, stamp=stamp)) for seed in seeds]
    loggers = [folder.logger() for folder in folders]
    for folder, seed, model, logger in zip(folders, seeds, models, loggers):
        folder.write_config(algo=algo, env_id=env_id, env_kwargs=env_kwargs, n_envs=n_envs, steps=steps, seed=seed,
                            overrides=hyperparameters, model=model, command=command,
                            loop=f"jitted, {len(seeds)} seeds vmapped")
        logger.start(steps, 0)

    progress = None
    if progress_bar:
        progress = tqdm(total=vector_steps * n_envs, desc=f"{algo.upper()} x{len(seeds)} seeds (jitted)",
                        unit="step", mininterval=0.5)
    t0 = time.perf_counter()
    states = plan[0].init(jnp.asarray(seeds, jnp.uint32))
    # schedules that depend on the run's length (DQN's epsilon), as model.learn(steps) sets them
    states = states._replace(learner=states.learner._replace(
        agent=spec.agent.start_run(states.learner.agent, int(steps))))
    done_steps, warned = 0, set()
    for loop in plan:
        states, logs = loop.run_chunk(states, jnp.int32(done_steps))
        logs, diagnostics = jax.device_get((logs, loop.diagnostics(states.learner)))
        for i, logger in enumerate(loggers):
            mine = jax.tree.map(lambda x, i=i: x[i], diagnostics)
            message = warning_message(mine, spec.cfg.gamma)
            if message is not None and seeds[i] not in warned:  # as the host loop: once per run
                warned.add(seeds[i])
                warnings.warn(f"seed {seeds[i]}: {message}", RuntimeWarning, stacklevel=2)
            for t, e in zip(*np.nonzero(logs.done[:, i])):
                step = (done_steps + t + 1) * n_envs
                logger.episode(step, float(logs.episode_return[t, i, e]), int(logs.episode_length[t, i, e]))
            logger.metrics((done_steps + loop.chunk) * n_envs, {k: float(v) for k, v in log_values(mine).items()})
            error = nonfinite_message(mine)
            if error is not None:
                raise NonFiniteError(f"seed {seeds[i]}: {error}")
        done_steps += loop.chunk
        if progress is not None:
            progress.update(loop.chunk * n_envs)
    jax.block_until_ready(states)
    train_s = time.perf_counter() - t0
    if progress is not None:
        progress.close()
    for logger in loggers:
        logger.close()

    for i, (folder, seed, model) in enumerate(zip(folders, seeds, models)):
        learner = jax.tree.map(lambda x, i=i: x[i], states.learner)
        model.learner = learner
        model.num_timesteps = int(learner.step)
        folder.finish(model, algo=algo, env_id=env_id, env_kwargs=env_kwargs, seed=seed, eval_episodes=eval_episodes,
                      train_seconds=train_s, steps_per_second=model.num_timesteps * len(seeds) / train_s,
                      extra={"seeds_in_process": len(seeds)},
                      title=f"{algo.upper()} on {env_id} (seed {seed}, jitted)")
    return [folder.path for folder in folders]
