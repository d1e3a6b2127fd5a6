"""What the families' fully jitted loops over JAX environments share (lax.scan over steps, vmap over seeds).

One compiled function runs `chunk` vector-env steps under `lax.scan` for every seed at once:

    for t in chunk:                                        (lax.scan)
        for every seed:                                    (jax.vmap)
            env step + auto-reset                          envs.stepping.jax_envs_step (as the vector adapter)
            the family's step                              off-policy: store_step + train_step;
                                                           on-policy: collect / collect-and-update step
                                                           (the functions the host loop calls)

The agent's `update`, the buffer or rollout, the normaliser, the exploration and the episode-boundary
logic are the very functions the Gymnasium host loop calls; only the loop around them moves from
Python into XLA. With seeds s0..sN-1 a run equals, seed for seed, the host loop of
`ALGO("MlpPolicy", GymnasiumVectorAdapter(env, n_envs), seed=s)` (tested on scripted episodes).
Whether a step trains depends only on the step index, shared by all seeds, so warm-up steps run
no gradient step even under vmap. `offpolicy.jitted.JittedLoop` and `onpolicy.jitted.OnPolicyJittedLoop`
are the loops; `polyak.runs.seeds.train_seeds` runs them for `polyak train ALGO --env JAX_ENV --seeds N`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp

from polyak.envs.stepping import jax_envs_reset, jax_envs_step


class LoopState(NamedTuple):
    """The scan carry of one seed."""

    learner: Any  # the family's learner pytree
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


def to_env_units(action, low, high):
    """`ActionScaler.to_env` on the device: [-1, 1] -> [low, high]."""
    return low + 0.5 * (jnp.clip(action, -1.0, 1.0) + 1.0) * (high - low)


def device_action_map(action_space):
    """The agent's action columns -> the env's actions, on the device (as `envs.spaces.action_map` on the host)."""
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


class JaxEnvLoop:
    """Compiled `init(seeds)` and `run_chunk(states, first_vector_step)` for one (spec, env, params, chunk):
    the env steps, the episode bookkeeping and the seed axis, around a family's step. A family supplies

        _start(key, obs) -> (learner, action)       a fresh learner and its first action, per seed
        _scan(states, first_vector_step, over_seeds) -> (states, logs)
                                                     `chunk` steps under lax.scan; over_seeds(f, in_axes)
                                                     maps a per-seed step over the seeds
        diagnostics(learner) -> core.monitor.Diagnostics
    """

    chunk: int  # vector-env steps per run_chunk call

    @classmethod
    def plan_steps(cls, spec, vector_steps: int, chunk: int) -> tuple[int, int]:
        """(vector steps to run, steps per compiled call) for a run of `vector_steps`; default: as asked."""
        return vector_steps, min(chunk, vector_steps)

    def __init__(self, spec, env, params):
        self.spec, self.env, self.params = spec, env, params
        self.to_env = device_action_map(env.action_space)
        self.init = jax.jit(init_per_seed(self._init_one))
        self.run_chunk = jax.jit(self._run_chunk, donate_argnums=0)

    def _start(self, key: jax.Array, obs: jax.Array):
        raise NotImplementedError

    def _scan(self, states: LoopState, first_vector_step: jax.Array, over_seeds: Callable):
        raise NotImplementedError

    def _init_one(self, seed: jax.Array) -> LoopState:
        env_key, env_states, obs = jax_envs_reset(self.env, self.params, jax.random.PRNGKey(seed), self.spec.n_envs)
        learner, action = self._start(jax.random.PRNGKey(seed), obs)
        zeros = jnp.zeros(self.spec.n_envs)
        return LoopState(learner, env_key, env_states, obs, action, zeros, zeros.astype(jnp.int32))

    def _env_step(self, state: LoopState):
        """(env_key, env_states, StepBatch): the pending actions sent to the envs, auto-reset as the adapter."""
        env_key, env_states, batch, _ = jax_envs_step(
            self.env, self.params, state.env_key, state.env_states, self.to_env(state.action))
        return env_key, env_states, batch

    @staticmethod
    def _advance(state: LoopState, env_key, env_states, batch, learner, next_action) -> tuple[LoopState, StepLog]:
        """The next carry after a step, and the step's episode log."""
        episode_return = state.episode_return + batch.reward
        episode_length = state.episode_length + 1
        done = batch.terminated | batch.truncated
        state = LoopState(learner, env_key, env_states, batch.obs, next_action,
                          jnp.where(done, 0.0, episode_return), jnp.where(done, 0, episode_length))
        return state, StepLog(done, episode_return, episode_length)

    def _run_chunk(self, states: LoopState, first_vector_step: jax.Array) -> tuple[LoopState, StepLog]:
        if jax.tree.leaves(states)[0].shape[0] > 1:
            return self._scan(states, first_vector_step, jax.vmap)
        # vmap over a batch of one is slower (BENCHMARKS.md, 'Pure-JAX SAC'): drop the seed axis instead
        states, logs = self._scan(jax.tree.map(lambda x: x[0], states), first_vector_step, lambda f, in_axes=0: f)
        return jax.tree.map(lambda x: x[None], states), jax.tree.map(lambda x: x[:, None], logs)
