"""Loss building blocks shared by every family (pure JAX)."""

from __future__ import annotations

import jax


def bootstrap_target(reward, terminated, gamma: float, next_value):
    """y = r + gamma (1 - terminated) V(s'): no bootstrap after termination; after truncation
    s' is the true final observation and we bootstrap from it. For n-step rows (`nstep_push`)
    r is the discounted k-step sum, s' the observation k steps later and `gamma` the per-row gamma^k."""
    return reward + gamma * (1.0 - terminated) * next_value


def polyak_average(online, target, tau: float):
    """theta' <- tau * theta + (1 - tau) * theta'   (the library's namesake)."""
    return jax.tree.map(lambda p, t: tau * p + (1.0 - tau) * t, online, target)
