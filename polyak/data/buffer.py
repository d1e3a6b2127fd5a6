"""Device-resident replay buffer: a pytree of fixed-size arrays with jittable add and sample.

Rows hold (obs, action, reward, next_obs, terminated), n-step rows also the bootstrap
discount gamma^k (`NStepTransition`). ``next_obs`` is always the true next observation (on truncation: the final
observation, never the auto-reset one), and only ``terminated`` stops bootstrapping; see
:mod:`polyak.common.boundaries`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from polyak.core.types import NStepTransition, Transition


class ReplayBuffer(NamedTuple):
    data: Transition  # each leaf has leading dimension `capacity`
    ptr: jax.Array  # next row to write
    size: jax.Array  # rows filled so far

    @property
    def capacity(self) -> int:
        return self.data.reward.shape[0]


def buffer_init(capacity: int, obs_dim: int, act_dim: int, with_discount: bool = False) -> ReplayBuffer:
    """An empty buffer of `Transition` rows, or of `NStepTransition` rows with `with_discount`."""
    f32 = jnp.float32
    data = Transition(
        obs=jnp.zeros((capacity, obs_dim), f32),
        action=jnp.zeros((capacity, act_dim), f32),
        reward=jnp.zeros((capacity,), f32),
        next_obs=jnp.zeros((capacity, obs_dim), f32),
        terminated=jnp.zeros((capacity,), f32),
    )
    if with_discount:
        data = NStepTransition(*data, discount=jnp.zeros((capacity,), f32))
    return ReplayBuffer(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def buffer_add(buffer: ReplayBuffer, rows: Transition, valid: jax.Array | None = None) -> ReplayBuffer:
    """Write a batch of rows (leading dim n) at the ring pointer; rows with valid=False are skipped.

    Valid rows are moved to the front of the batch (order kept) and written at ptr, ptr+1, ...;
    the slots after them are rewritten with their current contents, i.e. left unchanged.
    """
    n = rows.reward.shape[0]
    if valid is None:
        valid = jnp.ones((n,), bool)
    order = jnp.argsort(~valid, stable=True)
    rows = jax.tree.map(lambda x: x[order], rows)
    n_valid = valid.sum().astype(jnp.int32)
    idx = (buffer.ptr + jnp.arange(n, dtype=jnp.int32)) % buffer.capacity
    keep = jnp.arange(n) < n_valid

    def write(store, new):
        current = store[idx]
        new = jnp.where(keep.reshape((-1,) + (1,) * (new.ndim - 1)), new, current)
        return store.at[idx].set(new.astype(store.dtype))

    data = jax.tree.map(write, buffer.data, rows)
    ptr = (buffer.ptr + n_valid) % buffer.capacity
    size = jnp.minimum(buffer.size + n_valid, buffer.capacity)
    return ReplayBuffer(data, ptr, size)


def buffer_sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Transition:
    """Uniform sample of `batch_size` rows (with replacement) from the filled part."""
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda x: x[idx], buffer.data)
