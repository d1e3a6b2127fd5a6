"""The off-policy family's fully jitted loop over a JAX environment (lax.scan over steps, vmap over seeds)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from polyak.algos.jitted import JaxEnvLoop, LoopState, StepLog
from polyak.algos.offpolicy.learner import (LoopSpec, diagnostics, first_action, init_learner, store_and_act,
                                            store_step, train_step, update_phase)
from polyak.core.monitor import Diagnostics


def pack(spec: LoopSpec, obs, action, batch, random) -> jax.Array:
    """The host loop's packed array (same columns, `LoopSpec.columns`), built on the device."""
    return spec.columns.pack({
        "obs": obs, "action": action, "reward": batch.reward, "next_obs": batch.next_obs,
        "terminated": batch.terminated, "truncated": batch.truncated, "valid": batch.valid, "act_obs": batch.obs,
        "episode_start": batch.episode_start, "random": random}, obs.shape[0])


class JittedLoop(JaxEnvLoop):
    """Per vector step the host loop's two calls, store_step and train_step (or the collect-only step);
    with `act_before_update` its other two, store_and_act and update_phase, in the same order."""

    def __init__(self, spec: LoopSpec, env, params, chunk: int = 1000):
        self.chunk = int(chunk)
        cfg = spec.cfg
        self.n_grad = cfg.gradient_steps if cfg.gradient_steps > 0 else cfg.train_freq * spec.n_envs
        super().__init__(spec, env, params)

    @staticmethod
    def diagnostics(learner) -> Diagnostics:
        """The learners' metrics and checks (leading axis: seeds), as the host loop logs them."""
        return diagnostics(learner)

    def _start(self, key: jax.Array, obs: jax.Array):
        spec = self.spec
        learner = init_learner(spec, key, with_buffer=True)
        return first_action(spec, learner, obs, jnp.float32(spec.cfg.learning_starts > 0))

    def _step_one(self, state: LoopState, learning, train_now) -> tuple[LoopState, StepLog]:
        spec = self.spec
        env_key, env_states, batch = self._env_step(state)
        packed = pack(spec, state.obs, state.action, batch, jnp.where(learning, 0.0, 1.0))
        if spec.cfg.act_before_update:
            learner, next_action, _ = store_and_act(spec, state.learner, packed)
            learner = jax.lax.cond(train_now, lambda lr: update_phase(spec, self.n_grad, lr), lambda lr: lr, learner)
            return self._advance(state, env_key, env_states, batch, learner, next_action)
        buffer, window = store_step(spec, state.learner.buffer, state.learner.window, packed)
        learner = state.learner._replace(buffer=buffer, window=window)
        learner, next_action, _ = jax.lax.cond(
            train_now,
            lambda lr: train_step(spec, self.n_grad, lr, packed),
            lambda lr: train_step(spec, 0, lr, packed), learner)
        return self._advance(state, env_key, env_states, batch, learner, next_action)

    def _scan(self, states: LoopState, first_vector_step: jax.Array, over_seeds):
        cfg, n_envs = self.spec.cfg, self.spec.n_envs
        step_all = over_seeds(self._step_one, in_axes=(0, None, None))

        def body(states, t):
            # the host loop's rule, from the step index shared by all seeds (a real branch under vmap)
            vector_step = t + 1
            learning = vector_step * n_envs >= cfg.learning_starts
            train_now = learning & (vector_step % cfg.train_freq == 0)
            return step_all(states, learning, train_now)

        return jax.lax.scan(body, states, first_vector_step + jnp.arange(self.chunk))
