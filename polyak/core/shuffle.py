"""A random permutation of 0..n-1 without a sort, for shuffling minibatches inside jitted code.

`jax.random.permutation` draws random keys and sorts them, and XLA:CPU's sort made PPO's ten shuffles per
rollout a large part of its update (BENCHMARKS.md, "PPO and A2C speed"). Here the indices are
encrypted instead: a keyed Feistel network is a bijection on [0, 2^(2h)), and "cycle walking"
(Black & Rogaway 2002, "Ciphers with arbitrary finite domains") restricts it to [0, n): an index
whose image falls outside [0, n) is mapped again until it lands inside. Everything is element-wise
integer arithmetic.

Eight rounds with a hashed round function: the position of each element and the chance that two
given elements share a minibatch match those of a uniform permutation within sampling error
(tests/core/test_shuffle.py measures both).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

FEISTEL_ROUNDS = 8


def _hash32(x: jax.Array) -> jax.Array:
    """A 32-bit integer mixing function (xor-shift-multiply), the Feistel round function's core."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def shuffled_indices(key: jax.Array, n: int) -> jax.Array:
    """A pseudo-random permutation of 0..n-1 (int32), determined by `key`; n is static."""
    if n < 1:
        raise ValueError(f"shuffled_indices needs n >= 1, got {n}")
    half_bits = max(1, ((n - 1).bit_length() + 1) // 2)  # the domain [0, 4^half_bits) holds 0..n-1
    mask = jnp.uint32((1 << half_bits) - 1)
    round_keys = jax.random.bits(key, (FEISTEL_ROUNDS,), jnp.uint32)

    def encrypt(x: jax.Array) -> jax.Array:  # Feistel: (L, R) -> (R, L xor F_k(R)), a bijection per round
        left, right = x >> half_bits, x & mask
        for k in range(FEISTEL_ROUNDS):
            left, right = right, left ^ (_hash32(right ^ round_keys[k]) & mask)
        return (left << half_bits) | right

    def outside(y: jax.Array) -> jax.Array:
        return jnp.any(y >= n)

    image = encrypt(jnp.arange(n, dtype=jnp.uint32))
    image = jax.lax.while_loop(outside, lambda y: jnp.where(y >= n, encrypt(y), y), image)  # cycle walking
    return image.astype(jnp.int32)
