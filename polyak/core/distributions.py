"""Action distributions of stochastic policies (on-policy methods), as pure functions on arrays.

`DiagGaussian` for Box actions (mean from the network, a state-independent log-std parameter;
actions are *not* squashed: the environment adapter clips them to [-1, 1] and rescales, and the
log-probability is that of the unclipped sample, as in Stable-Baselines3's PPO/A2C), and
`Categorical` for Discrete actions (logits; the action is stored as a float index in one column).
Both expose sample / log_prob / entropy / mode on a `dist` tuple produced by the policy network.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2.0 * math.pi)


class DiagGaussian:
    """dist = (mean, log_std), each (..., act_dim); log pi(a|s) = sum_i log N(a_i; mean_i, std_i)."""

    @staticmethod
    def sample(dist, key: jax.Array) -> jax.Array:
        mean, log_std = dist
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)

    @staticmethod
    def log_prob(dist, action: jax.Array) -> jax.Array:
        mean, log_std = dist
        z = (action - mean) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * z**2 - log_std - 0.5 * _LOG_2PI, axis=-1)

    @staticmethod
    def entropy(dist) -> jax.Array:
        mean, log_std = dist
        return jnp.sum(jnp.broadcast_to(log_std + 0.5 * (1.0 + _LOG_2PI), mean.shape), axis=-1)

    @staticmethod
    def mode(dist) -> jax.Array:
        return dist[0]


class Categorical:
    """dist = logits (..., n_actions); the action is a float index with a trailing axis of size 1."""

    @staticmethod
    def sample(logits, key: jax.Array) -> jax.Array:
        return jax.random.categorical(key, logits)[..., None].astype(jnp.float32)

    @staticmethod
    def log_prob(logits, action: jax.Array) -> jax.Array:
        log_p = jax.nn.log_softmax(logits)
        index = action[..., 0].astype(jnp.int32)
        return jnp.take_along_axis(log_p, index[..., None], axis=-1)[..., 0]

    @staticmethod
    def entropy(logits) -> jax.Array:
        log_p = jax.nn.log_softmax(logits)
        return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)

    @staticmethod
    def mode(logits) -> jax.Array:
        return jnp.argmax(logits, axis=-1)[..., None].astype(jnp.float32)
