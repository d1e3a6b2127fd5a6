"""The data types every layer shares: replay rows (one-step and n-step)."""

from __future__ import annotations

from typing import NamedTuple

import jax


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array  # 1.0 where the episode ended in a terminal state (no bootstrap)


class NStepTransition(NamedTuple):
    """An n-step row (`boundaries.nstep_push`): `reward` is the discounted sum of k <= n rewards (fewer
    where the episode ended inside the window), `next_obs` the observation k steps later."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    discount: jax.Array  # gamma^k: the bootstrap discount of this row
