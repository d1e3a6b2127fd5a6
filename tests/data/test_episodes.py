"""The episode replay (polyak.data.episodes): episodes stored whole when they end, pieces at max_len, the ring's
overwrite order, sampling frequencies proportional to exp(lambda R), and d-step segments
(polyak.core.returns) against a loop by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from polyak.core.returns import dstep_segments, segment_last, segment_sum
from polyak.data.episodes import (
    EpisodeRows,
    episode_probabilities,
    episodes_init,
    episodes_push,
    episodes_push_many,
    episodes_sample,
    episodes_stored,
)

OBS, ACT = 2, 1
push, push_many = jax.jit(episodes_push), jax.jit(episodes_push_many)
sample = jax.jit(episodes_sample, static_argnums=(2, 3))


def steps(rewards, ends, terms=None):
    """(T, n_envs) rewards and end flags -> EpisodeRows whose obs hold (t, env) and the episode_end array."""
    r = jnp.asarray(rewards, jnp.float32)
    T, n = r.shape
    t = jnp.broadcast_to(jnp.arange(T, dtype=jnp.float32)[:, None], (T, n))
    e = jnp.broadcast_to(jnp.arange(n, dtype=jnp.float32)[None, :], (T, n))
    obs = jnp.stack([t, e], axis=-1)
    terms = jnp.zeros((T, n)) if terms is None else jnp.asarray(terms, jnp.float32)
    return EpisodeRows(obs, t[..., None], r, obs + 100.0, terms), jnp.asarray(ends, jnp.float32)


def test_episodes_are_stored_when_they_end_in_env_order():
    buf = episodes_init(capacity=4, max_len=5, n_envs=2, obs_dim=OBS, act_dim=ACT)
    # env 0: episode of 2 rows (terminated), then a running one; env 1: episode of 3 rows (time limit)
    rows, ends = steps([[1, 10], [2, 20], [3, 30]], [[0, 0], [1, 0], [0, 1]], terms=[[0, 0], [1, 0], [0, 0]])
    buf = push_many(buf, rows, ends)
    assert int(episodes_stored(buf)) == 2 and int(buf.ptr) == 2
    np.testing.assert_array_equal(buf.length, [2, 3, 0, 0])
    np.testing.assert_allclose(buf.episode_return, [3.0, 60.0, 0.0, 0.0])
    np.testing.assert_array_equal(buf.episodes.obs[0, :2], [[0, 0], [1, 0]])  # slot 0: env 0's rows t = 0, 1
    np.testing.assert_array_equal(buf.episodes.obs[1, :3], [[0, 1], [1, 1], [2, 1]])
    np.testing.assert_array_equal(buf.episodes.terminated[0, :2], [0, 1])
    np.testing.assert_array_equal(buf.episodes.next_obs[1, 2], [102, 101])  # the true final observation
    np.testing.assert_array_equal(buf.pending_length, [1, 0])  # env 0 is one row into its next episode


def test_long_episodes_are_stored_in_pieces_and_the_ring_overwrites_the_oldest():
    buf = episodes_init(capacity=3, max_len=2, n_envs=1, obs_dim=OBS, act_dim=ACT)
    rows, ends = steps([[1], [2], [3], [4], [5], [6], [7]], [[0]] * 6 + [[1]])
    for t in range(7):
        buf = push(buf, jax.tree.map(lambda x, t=t: x[t], rows), ends[t])
    # pieces (1, 2), (3, 4), (5, 6) fill the ring, then (7) (the episode's end) overwrites slot 0
    np.testing.assert_array_equal(buf.length, [1, 2, 2])
    np.testing.assert_allclose(buf.episode_return, [7.0, 7.0, 11.0])
    assert int(buf.ptr) == 1
    np.testing.assert_array_equal(buf.episodes.terminated, 0.0)  # a piece ends like a time limit: bootstrap


def test_sampling_frequencies_follow_exp_lambda_return():
    buf = episodes_init(capacity=6, max_len=1, n_envs=4, obs_dim=OBS, act_dim=ACT)
    rows, ends = steps([[0.0, 1.0, 2.0, 4.0]], [[1, 1, 1, 1]])  # four one-step episodes, slots 4 and 5 empty
    buf = push_many(buf, rows, ends)
    lam, n = 0.5, 200_000
    p = np.exp(lam * np.array([0.0, 1.0, 2.0, 4.0]))
    p /= p.sum()
    np.testing.assert_allclose(episode_probabilities(buf, lam), np.r_[p, 0.0, 0.0], rtol=1e-6)
    batch = sample(buf, jax.random.PRNGKey(0), n, lam)
    counts = np.bincount(np.asarray(batch.rows.reward[:, 0]).astype(int), minlength=5)[[0, 1, 2, 4]]
    # binomial standard error <= sqrt(p (1 - p) / n) <= 0.0012: 5 standard errors
    np.testing.assert_allclose(counts / n, p, atol=0.006)
    uniform = sample(buf, jax.random.PRNGKey(1), 40_000, 0.0)  # lambda = 0: uniform over the stored ones
    counts = np.bincount(np.asarray(uniform.rows.reward[:, 0]).astype(int), minlength=5)[[0, 1, 2, 4]]
    np.testing.assert_allclose(counts / 40_000, 0.25, atol=0.012)
    np.testing.assert_array_equal(uniform.valid, True)
    np.testing.assert_array_equal(uniform.episode_end, 1.0)


def test_sample_masks_mark_rows_and_the_last_one():
    buf = episodes_init(capacity=2, max_len=4, n_envs=1, obs_dim=OBS, act_dim=ACT)
    rows, ends = steps([[1], [1], [1]], [[0], [0], [1]])
    batch = sample(push_many(buf, rows, ends), jax.random.PRNGKey(0), 2, 1.0)
    np.testing.assert_array_equal(batch.valid, [[True, True, True, False]] * 2)
    np.testing.assert_array_equal(batch.episode_end, [[0, 0, 1, 0]] * 2)


def test_capacity_below_n_envs_is_refused():
    with pytest.raises(ValueError, match="capacity"):
        episodes_init(capacity=1, max_len=4, n_envs=2, obs_dim=OBS, act_dim=ACT)


@pytest.mark.parametrize("d", [1, 3, 5])
def test_segments_match_a_loop_by_hand(d):
    rng = np.random.default_rng(d)
    T, gamma = 9, 0.9
    end = np.zeros((T, 2))
    end[[2, 3], 0] = 1  # env 0: episodes end at rows 2 and 3 (a one-row episode between)
    end[6, 1] = 1
    x = rng.normal(size=(T, 2)).astype(np.float32)

    @jax.jit
    def sums(end, x):
        segments = dstep_segments(end, d)
        return segment_sum(x, segments, gamma), segment_last(x, segments)

    total, (last, k) = sums(jnp.asarray(end), jnp.asarray(x))
    for b in range(2):
        for i in range(T):
            rows = []
            for t in range(i, min(i + d, T)):  # the segment: up to d rows, ending at an episode's end or row T - 1
                rows.append(t)
                if end[t, b]:
                    break
            np.testing.assert_allclose(total[i, b], sum(gamma ** (t - i) * x[t, b] for t in rows), rtol=1e-5)
            assert int(k[i, b]) == len(rows) and float(last[i, b]) == x[rows[-1], b]
