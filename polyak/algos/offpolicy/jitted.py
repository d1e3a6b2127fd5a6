"""The off-policy family's fully jitted loop over a JAX environment (lax.scan over steps, vmap over seeds)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from polyak.algos.jitted import LoopState, StepLog, device_action_map, init_per_seed
from polyak.algos.offpolicy.learner import (
    LoopSpec,
    first_action,
    init_learner,
    store_step,
    train_step,
)
from polyak.envs.stepping import jax_envs_reset, jax_envs_step


def pack(spec: LoopSpec, obs, action, batch, random) -> jax.Array:
    """The host loop's packed array (same columns, `LoopSpec.columns`), built on the device."""
    n = obs.shape[0]
    parts = {"obs": obs, "action": action, "reward": batch.reward[:, None], "next_obs": batch.next_obs,
             "terminated": batch.terminated[:, None], "truncated": batch.truncated[:, None],
             "valid": batch.valid[:, None], "act_obs": batch.obs,
             "episode_start": batch.episode_start[:, None], "random": jnp.full((n, 1), random)}
    return jnp.concatenate([parts[name].astype(jnp.float32) for name in spec.columns()], axis=1)


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
