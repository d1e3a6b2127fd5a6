"""The best MAE reachable in a TransverseTuning trial: a floor for every controller, trial by trial.

A trial fixes the incoming beam, the quadrupole misalignments and the target. The beam on the screen is
a differentiable function of the five magnet settings (`envs.beam_optics`, JAX), so the floor is found by
optimisation with full knowledge of the trial, which no controller has:

    minimise  MAE(m) = mean_j |beam_j(m) - target_j|   over  |m_i| <= limit_i
    u = m / limit in [-1, 1]^5;  Adam (cosine-decayed step size) on MAE(u) from `restarts` starting points (the challenge's start,
    then uniform draws), each iterate projected back into the box; the floor is the smallest MAE met
    by any restart at any iterate.

The beam sizes cannot be focused to zero (emittance), so the floor is positive even for a centred
target. It is the best MAE found, an upper bound on the true minimum (the MAE is not convex in the
magnets; more restarts can find a lower one). Restarts and trials run vmapped in one compiled call.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from polyak.envs.beam_optics import IncomingBeam, clara_s04_screen_beam
from polyak.envs.protocol import GymnasiumAdapter
from polyak.envs.transverse_tuning import CHALLENGE_START, MAGNET_LIMITS, TransverseTuning, TransverseTuningParams

SCALE = 1e-3  # the objective in millimetres, so Adam's step sizes are O(1)


@partial(jax.jit, static_argnames=("restarts", "steps"))
def trial_floor(incoming: jax.Array, misalignments: jax.Array, target: jax.Array, key: jax.Array,
                restarts: int = 128, steps: int = 600, learning_rate: float = 0.05) -> tuple[jax.Array, jax.Array]:
    """(floor MAE [m], magnets reaching it) for one trial, by projected Adam from `restarts` starts."""
    limits = jnp.asarray(MAGNET_LIMITS, jnp.float32)
    beam_in = IncomingBeam(*incoming)

    def mae(u):
        beam = clara_s04_screen_beam(u * limits, misalignments, beam_in)
        return jnp.mean(jnp.abs(beam - target))

    start = jnp.asarray(CHALLENGE_START, jnp.float32) / limits
    u0 = jnp.concatenate([start[None], jax.random.uniform(key, (restarts - 1, 5), minval=-1.0, maxval=1.0)])
    optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.01))  # settles into the minimum
    grad = jax.vmap(jax.value_and_grad(lambda u: mae(u) / SCALE))

    def step(carry, _):
        u, opt_state, best, best_u = carry
        value, g = grad(u)
        value = value * SCALE
        improved = value < best
        best, best_u = jnp.where(improved, value, best), jnp.where(improved[:, None], u, best_u)
        updates, opt_state = optimizer.update(g, opt_state, u)
        u = jnp.clip(optax.apply_updates(u, updates), -1.0, 1.0)
        return (u, opt_state, best, best_u), None

    init = (u0, optimizer.init(u0), jnp.full((restarts,), jnp.inf), u0)
    (u, _, best, best_u), _ = jax.lax.scan(step, init, None, length=steps)
    final = jax.vmap(mae)(u)  # the last iterates too
    best_u = jnp.where((final < best)[:, None], u, best_u)
    best = jnp.minimum(best, final)
    i = jnp.argmin(best)
    return best[i], best_u[i] * limits


def trial_states(seeds) -> list:
    """The TransverseTuning states that `accel.evaluate`'s trials start from (the same adapter, the same seeds)."""
    adapter = GymnasiumAdapter(TransverseTuning(), TransverseTuningParams(target=(0.0, 0.0, 0.0, 0.0)))
    states = []
    for seed in seeds:
        adapter.reset(seed=int(seed))
        states.append(adapter._state)
    return states


def trial_floors(seeds, restarts: int = 128, steps: int = 600) -> np.ndarray:
    """The floor MAE [m] of the TransverseTuning trials with these reset seeds (the challenge's target
    (0, 0, 0, 0); each seed's incoming beam and misalignments), all trials in one vmapped call."""
    states = trial_states(seeds)
    stack = lambda name: jnp.stack([getattr(s, name) for s in states])  # noqa: E731
    keys = jax.random.split(jax.random.PRNGKey(0), len(states))
    floor_fn = jax.vmap(partial(trial_floor, restarts=restarts, steps=steps))
    floors, _ = floor_fn(stack("incoming"), stack("misalignments"), stack("target"), keys)
    return np.asarray(floors, np.float64)
