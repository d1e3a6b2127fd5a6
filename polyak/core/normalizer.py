"""Running mean/std observation normaliser (Chan et al. parallel update), a pytree.

Updated only while training, frozen during evaluation, saved inside every model file.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class RunningMeanStd(NamedTuple):
    mean: jax.Array
    var: jax.Array
    count: jax.Array


def rms_init(dim: int) -> RunningMeanStd:
    return RunningMeanStd(jnp.zeros((dim,), jnp.float32), jnp.ones((dim,), jnp.float32), jnp.asarray(1e-4, jnp.float32))


def rms_update(rms: RunningMeanStd, batch: jax.Array, enabled: bool = True) -> RunningMeanStd:
    """Merge the moments of `batch` (n, dim) into the running moments."""
    if not enabled:
        return rms
    batch_mean, batch_var = batch.mean(0), batch.var(0)
    n = jnp.asarray(batch.shape[0], jnp.float32)
    total = rms.count + n
    delta = batch_mean - rms.mean
    mean = rms.mean + delta * n / total
    m2 = rms.var * rms.count + batch_var * n + delta**2 * rms.count * n / total
    return RunningMeanStd(mean, m2 / total, total)


def rms_normalize(rms: RunningMeanStd, obs: jax.Array, clip: float = 10.0, enabled: bool = True) -> jax.Array:
    """(obs - mean) / sqrt(var + eps), clipped to +-clip."""
    if not enabled:
        return obs
    return jnp.clip((obs - rms.mean) / jnp.sqrt(rms.var + 1e-8), -clip, clip)
