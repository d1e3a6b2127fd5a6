"""The on-policy family's fully jitted loop over a JAX environment (lax.scan over rollouts, vmap over seeds)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from polyak.algos.jitted import JaxEnvLoop, LoopState, StepLog
from polyak.algos.onpolicy import learner as onpolicy
from polyak.core.monitor import Diagnostics


class OnPolicyJittedLoop(JaxEnvLoop):
    """A chunk is a whole number of rollouts; per rollout, n_steps - 1 `onpolicy.collect_step`s and one
    `onpolicy.collect_and_update_step` (the host loop's calls)."""

    @classmethod
    def plan_steps(cls, spec, vector_steps: int, chunk: int) -> tuple[int, int]:
        """Whole rollouts: the run rounded up to them, and at least two rollouts per call (XLA:CPU runs a
        one-trip loop's body at the program's top level, slower: BENCHMARKS.md)."""
        rollout = spec.cfg.n_steps
        vector_steps = -(-vector_steps // rollout) * rollout
        return vector_steps, min(max(2 * rollout, chunk // rollout * rollout), vector_steps)

    def __init__(self, spec, env, params, chunk: int):
        self.n_rollouts = max(1, int(chunk) // spec.cfg.n_steps)
        self.chunk = self.n_rollouts * spec.cfg.n_steps  # vector steps per call
        super().__init__(spec, env, params)

    @staticmethod
    def diagnostics(learner) -> Diagnostics:
        """The learners' metrics and checks (leading axis: seeds), as the host loop logs them."""
        return onpolicy.diagnostics(learner)

    def _start(self, key: jax.Array, obs: jax.Array):
        return onpolicy.start(self.spec, onpolicy.init_learner(self.spec, key), obs)

    def _step_one(self, state: LoopState, finish_rollout: bool) -> tuple[LoopState, StepLog]:
        spec = self.spec
        env_key, env_states, batch = self._env_step(state)
        packed = spec.columns.pack({
            "reward": batch.reward, "next_obs": batch.next_obs, "terminated": batch.terminated,
            "truncated": batch.truncated, "act_obs": batch.obs, "episode_start": batch.episode_start}, spec.n_envs)
        step = onpolicy.collect_and_update_step if finish_rollout else onpolicy.collect_step
        learner, next_action = step(spec, state.learner, packed)
        return self._advance(state, env_key, env_states, batch, learner, next_action)

    def _scan(self, states: LoopState, first_vector_step: jax.Array, over_seeds):
        collect = over_seeds(functools.partial(self._step_one, finish_rollout=False))
        finish = over_seeds(functools.partial(self._step_one, finish_rollout=True))

        def rollout(states, _):
            states, logs = jax.lax.scan(lambda s, _: collect(s), states, None, length=self.spec.cfg.n_steps - 1)
            states, last = finish(states)
            return states, jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), logs, last)

        states, logs = jax.lax.scan(rollout, states, None, length=self.n_rollouts)
        return states, jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), logs)  # (rollouts, n_steps) -> steps
