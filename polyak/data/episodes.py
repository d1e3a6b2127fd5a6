"""Whole episodes on the device, sampled by return (pure, jittable).

Path consistency learning (PCL) replays *whole episodes* and learns from every d-step segment of them:

* `EpisodeBuffer`: a ring of `capacity` stored episodes, each padded to `max_len` rows, plus the episode
  each env is still collecting (`pending`, not sampled until it ends). `episodes_push` appends one step
  per env, the same (n_envs, ...) rows a vector env produces; `episodes_push_many` a whole (T, n_envs)
  rollout under `lax.scan`. An episode is stored when it ends (terminated or truncated) or when it
  reaches `max_len` rows; the latter is stored like a time-limit cut (its last row bootstraps from
  V(s')) and the rest of the episode continues as a new piece. The oldest slot is overwritten first.
* `episodes_sample`: B episodes drawn with replacement, P(episode k) proportional to exp(lambda R_k),
  R_k its undiscounted return (lambda = 0: uniform). Empty slots are never drawn.
The d-step segments PCL reads from a trajectory are cut at episode ends in `polyak.core.returns`
(`dstep_segments`, `segment_sum`, `segment_last`), with every other return.

Rows hold the true next observation s'_t (the final one at a time limit, never the auto-reset one)
and `terminated` apart from the episode's end, as every polyak buffer does (`polyak.core.returns`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class EpisodeRows(NamedTuple):
    """Rows of trajectories; leading dimensions (capacity, max_len) in the buffer, (n_envs, ...) per step."""

    obs: jax.Array  # s_t
    action: jax.Array  # a_t
    reward: jax.Array  # r_t
    next_obs: jax.Array  # s'_t, the true next observation
    terminated: jax.Array  # 1.0: s'_t is terminal (no bootstrap)


class EpisodeBuffer(NamedTuple):
    episodes: EpisodeRows  # (capacity, max_len, ...): stored episodes, rows past `length` are padding
    length: jax.Array  # (capacity,) int32: rows of each stored episode; 0: an empty slot
    episode_return: jax.Array  # (capacity,) undiscounted sum of the episode's rewards: R in exp(lambda R)
    ptr: jax.Array  # the slot the next finished episode goes to
    pending: EpisodeRows  # (n_envs, max_len, ...): the episode each env is collecting
    pending_length: jax.Array  # (n_envs,) int32: its rows so far

    @property
    def capacity(self) -> int:
        return self.length.shape[0]

    @property
    def max_len(self) -> int:
        return self.episodes.reward.shape[1]


class EpisodeBatch(NamedTuple):
    """B sampled episodes, each (B, max_len, ...), with the row masks the segments need."""

    rows: EpisodeRows
    valid: jax.Array  # (B, max_len) bool: the row belongs to the episode
    episode_end: jax.Array  # (B, max_len) float: 1.0 on the episode's last row


def _rows(lead: tuple[int, ...], obs_dim: int, act_dim: int) -> EpisodeRows:
    z = lambda *shape: jnp.zeros(lead + shape, jnp.float32)  # noqa: E731
    return EpisodeRows(z(obs_dim), z(act_dim), z(), z(obs_dim), z())


def episodes_init(capacity: int, max_len: int, n_envs: int, obs_dim: int, act_dim: int) -> EpisodeBuffer:
    """An empty buffer of `capacity` episodes of at most `max_len` rows, collected from `n_envs` envs."""
    if capacity < n_envs:
        raise ValueError(f"the episode buffer's capacity ({capacity}) must be >= n_envs ({n_envs}): "
                         "all envs may finish an episode at the same step")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    return EpisodeBuffer(_rows((capacity, max_len), obs_dim, act_dim), jnp.zeros((capacity,), jnp.int32),
                         jnp.zeros((capacity,)), jnp.zeros((), jnp.int32), _rows((n_envs, max_len), obs_dim, act_dim),
                         jnp.zeros((n_envs,), jnp.int32))


def episodes_push(buffer: EpisodeBuffer, step: EpisodeRows, episode_end: jax.Array) -> EpisodeBuffer:
    """Append one row per env (leaves (n_envs, ...)); store the episodes that end here or fill `max_len`.

    Episodes stored at the same step go to slots ptr, ptr + 1, ... in env order.
    """
    n, max_len = buffer.pending_length.shape[0], buffer.max_len
    envs = jnp.arange(n)
    at = buffer.pending_length
    pending = jax.tree.map(lambda p, x: p.at[envs, at].set(x.astype(p.dtype)), buffer.pending, step)
    length = at + 1
    done = (episode_end > 0) | (length >= max_len)
    # the stored piece: a piece cut at max_len ends like a time limit (bootstrap from V(s'))
    # store: valid pieces first (env order kept) into ptr, ptr + 1, ...; the other slots rewritten unchanged
    order = jnp.argsort(~done, stable=True)
    n_done = done.sum().astype(jnp.int32)
    slots = (buffer.ptr + jnp.arange(n, dtype=jnp.int32)) % buffer.capacity
    keep = jnp.arange(n) < n_done
    valid_rows = jnp.arange(max_len)[None, :] < length[:, None]

    def store(stored, new):
        new = new[order]
        current = stored[slots]
        return stored.at[slots].set(jnp.where(keep.reshape((-1,) + (1,) * (new.ndim - 1)), new, current))

    episode_return = jnp.sum(jnp.where(valid_rows, pending.reward, 0.0), axis=1)
    episodes = jax.tree.map(store, buffer.episodes, pending)
    return EpisodeBuffer(episodes, store(buffer.length, length), store(buffer.episode_return, episode_return),
                         (buffer.ptr + n_done) % buffer.capacity, pending,
                         jnp.where(done, 0, length).astype(jnp.int32))


def episodes_push_many(buffer: EpisodeBuffer, steps: EpisodeRows, episode_end: jax.Array) -> EpisodeBuffer:
    """`episodes_push` for every row of a time-major (T, n_envs, ...) rollout, in order."""
    def push(buffer, x):
        return episodes_push(buffer, *x), None

    return jax.lax.scan(push, buffer, (steps, episode_end))[0]


def episodes_stored(buffer: EpisodeBuffer) -> jax.Array:
    """How many slots hold a finished episode."""
    return (buffer.length > 0).sum()


def episode_probabilities(buffer: EpisodeBuffer, priority_temperature: float) -> jax.Array:
    """P(slot k) = exp(lambda R_k) / sum_j exp(lambda R_j) over the stored episodes, 0 for empty slots."""
    logits = jnp.where(buffer.length > 0, priority_temperature * buffer.episode_return, -jnp.inf)
    return jax.nn.softmax(logits)


def episodes_sample(buffer: EpisodeBuffer, key: jax.Array, batch_size: int,
                    priority_temperature: float) -> EpisodeBatch:
    """B episodes drawn with replacement, P proportional to exp(lambda R) (`episode_probabilities`).

    The buffer must hold at least one episode (`episodes_stored` > 0); callers check it.
    """
    logits = jnp.where(buffer.length > 0, priority_temperature * buffer.episode_return, -jnp.inf)
    idx = jax.random.categorical(key, logits, shape=(batch_size,))
    rows = jax.tree.map(lambda x: x[idx], buffer.episodes)
    length = buffer.length[idx]
    t = jnp.arange(buffer.max_len)[None, :]
    return EpisodeBatch(rows, t < length[:, None], (t == length[:, None] - 1).astype(jnp.float32))
