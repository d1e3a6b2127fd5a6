"""The on-policy family's fully jitted loop over a JAX environment (lax.scan over rollouts, vmap over seeds)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from polyak.algos.jitted import LoopState, StepLog, device_action_map, init_per_seed
from polyak.algos.onpolicy import learner as onpolicy
from polyak.envs.stepping import jax_envs_reset, jax_envs_step


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
