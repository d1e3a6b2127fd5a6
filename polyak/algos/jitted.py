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

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


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


