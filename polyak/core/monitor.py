"""Training diagnostics kept on the device: the first non-finite metric and the |Q| bound.

Pure functions of explicit values, so every loop (host, jitted, vmapped over seeds, offline) checks
alike and the host syncs only at log intervals. Nothing here knows an algorithm's metric names: the
metrics are checked as a whole, and |Q| and the soft bonus come from the update's `UpdateInfo`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from polyak.core.types import UpdateInfo


class Monitor(NamedTuple):
    """Diagnostics of a replay learner (`learner.monitor`; checkpoints name its fields)."""

    metrics: dict[str, jax.Array]  # of the latest training phase: means over its gradient steps
    reward_abs_max: jax.Array  # largest |scaled reward| seen: with gamma it bounds |Q|
    q_abs_max: jax.Array  # largest |Q(s, a)| on a training batch so far
    q_exceed_step: jax.Array  # first env step where |Q| exceeded the bound (-1: never)
    nonfinite_step: jax.Array  # first env step where a metric was NaN or inf (-1: never)
    nonfinite_code: jax.Array  # bit i set: sorted(metrics)[i] was not finite


def monitor_init(metrics: dict[str, jax.Array]) -> Monitor:
    minus_one = jnp.asarray(-1, jnp.int32)
    return Monitor(metrics, jnp.zeros(()), jnp.zeros(()), minus_one, minus_one, jnp.zeros((), jnp.int32))


# -- non-finite metrics --------------------------------------------------------------------------
def nonfinite_code(metrics: dict[str, jax.Array]) -> jax.Array:
    """An int32 with bit i set where sorted(metrics)[i] holds a NaN or inf (0: all finite)."""
    names = sorted(metrics)
    if not names:
        return jnp.zeros((), jnp.int32)
    bad = jnp.stack([~jnp.all(jnp.isfinite(metrics[k])) for k in names])
    return jnp.sum(jnp.where(bad, 2 ** jnp.arange(len(names)), 0)).astype(jnp.int32)


def record_nonfinite(metrics: dict[str, jax.Array], step, first_step, first_code) -> tuple[jax.Array, jax.Array]:
    """(first_step, first_code) updated: the first step whose metrics were not all finite, and which were."""
    code = nonfinite_code(metrics)
    first = (first_step < 0) & (code != 0)
    return jnp.where(first, step, first_step), jnp.where(first, code, first_code)


def nonfinite_names(metrics: dict, code: int) -> list[str]:
    """The metric names whose bit is set in `code` (on the host, for the error message)."""
    return [k for i, k in enumerate(sorted(metrics)) if int(code) >> i & 1]


# -- the |Q| bound -------------------------------------------------------------------------------
def observe_rewards(monitor: Monitor, reward: jax.Array, valid: jax.Array | None = None) -> Monitor:
    """Widen the reward bound with new (scaled) rewards; `valid` masks rows that are not transitions."""
    magnitude = jnp.abs(reward) if valid is None else jnp.where(valid, jnp.abs(reward), 0.0)
    return monitor._replace(reward_abs_max=jnp.maximum(monitor.reward_abs_max, magnitude.max()))


def check_update(monitor: Monitor, metrics: dict[str, jax.Array], info: UpdateInfo, step, gamma: float) -> Monitor:
    """Record a training phase: its metrics, the first non-finite one, and the first step where
    |Q| > (max |r| + soft bonus) / (1 - gamma), the largest return any policy can have."""
    bound = (monitor.reward_abs_max + info.soft_bonus) / (1.0 - gamma) if gamma < 1 else jnp.inf
    exceed = (monitor.q_exceed_step < 0) & (info.q_abs_max > bound)
    nonfinite_step, code = record_nonfinite(metrics, step, monitor.nonfinite_step, monitor.nonfinite_code)
    return monitor._replace(
        metrics=metrics, q_abs_max=jnp.maximum(monitor.q_abs_max, info.q_abs_max),
        q_exceed_step=jnp.where(exceed, step, monitor.q_exceed_step),
        nonfinite_step=nonfinite_step, nonfinite_code=code)


def q_divergence_message(monitor: Monitor, gamma: float) -> str | None:
    """The warning for a monitor (on the host) whose |Q| has exceeded max|r|/(1-gamma); None if it has not."""
    if int(monitor.q_exceed_step) < 0:
        return None
    bound = float(monitor.reward_abs_max) / (1 - gamma) if gamma < 1 else math.inf
    return (f"possible Q-value divergence: |Q| exceeded the bound max|r|/(1-gamma) ~ {bound:.4g} implied by the "
            f"rewards seen and gamma={gamma}, first at environment step {int(monitor.q_exceed_step)} "
            f"(max |Q| so far {float(monitor.q_abs_max):.4g})")


# -- what a loop reads at a log interval ---------------------------------------------------------
class Diagnostics(NamedTuple):
    """A learner's diagnostics in one shape for every family (device arrays; leading seed axis under vmap).

    Each family's `diagnostics(learner)` builds it; host loops and `train_seeds` log and check it alike.
    """

    metrics: dict[str, jax.Array]  # of the latest update; bit i of nonfinite_code is sorted(metrics)[i]
    nonfinite_step: jax.Array  # first env step with a non-finite metric (-1: never)
    nonfinite_code: jax.Array
    monitor: Monitor | None = None  # the |Q| bound (None: no Q critic)


def log_values(d: Diagnostics) -> dict[str, jax.Array]:
    """The metrics.csv columns: the update's metrics, and the largest |Q| so far where there is a critic."""
    if d.monitor is None:
        return dict(d.metrics)
    return dict(d.metrics, q_abs_max_so_far=d.monitor.q_abs_max)


def nonfinite_message(d: Diagnostics) -> str | None:
    """The error for diagnostics (on the host) that recorded a non-finite metric; None if none did."""
    if int(d.nonfinite_step) < 0:
        return None
    names = ", ".join(nonfinite_names(d.metrics, d.nonfinite_code)) or "metric"
    return (f"non-finite {names} in the update at environment step {int(d.nonfinite_step)} "
            "(training stopped; lower the learning rate or scale the rewards)")


def warning_message(d: Diagnostics, gamma: float) -> str | None:
    """The |Q| divergence warning for diagnostics (on the host); None without a critic or a divergence."""
    return None if d.monitor is None else q_divergence_message(d.monitor, gamma)
