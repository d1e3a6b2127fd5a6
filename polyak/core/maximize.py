"""max_a f(s, a) over the box [-1, 1]^d for a batch of states at once: the explicit maximiser of fitted-Q methods.

FQI with continuous actions needs max_a' Q(s', a') in every target and argmax_a Q(s, a) to act. Two pure,
jittable maximisers; each takes `f(actions (n, d)) -> values (n,)`, whose row i depends on action row i only
(a critic closed over its n observations), and returns the best point it visited for every row:

  projected gradient ascent with restarts (`gradient_ascent`):
      a^r_0 ~ U[-1, 1]^d, r = 1..R (restart 1 from `init` where given, e.g. the policy's action)
      repeat  a^r_{t+1} = clip(a^r_t + Adam(grad_a f(a^r_t)), -1, 1)         (the projection onto the box)
      until   delta = max_{rows, r} |f(a^r_{t+1}) - f(a^r_t)| < eps,  or t = T
  cross-entropy method over actions (`cem`):
      mu = init or 0, sigma = sigma_0; I times: N samples clip(mu + sigma xi, -1, 1), xi ~ N(0, I);
      mu, sigma <- mean and std of the K best (sigma >= sigma_min)

Gradient ascent finds local maxima (the restarts look for the global one); CEM needs no gradient, evaluates
N I points per row and is blind to detail finer than its sigma_min. Both treat the n rows as one batch through
`f` (one matmul per layer), so they cost R (or N) forward passes of the batch per iteration.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

ValueFn = Callable[[jax.Array], jax.Array]  # actions (n, d) in [-1, 1] -> values (n,), row by row


class Argmax(NamedTuple):
    action: jax.Array  # (n, d): the best action found for each row, inside [-1, 1]^d
    value: jax.Array  # (n,): f at that action
    iterations: jax.Array  # (): ascent steps (or CEM iterations) run


def _check(shape: tuple[int, int], init: jax.Array | None, **positive: float) -> None:
    if len(shape) != 2:
        raise ValueError(f"shape must be (n, d), got {shape}")
    if init is not None and tuple(init.shape) != tuple(shape):
        raise ValueError(f"init must have the shape {tuple(shape)}, got {tuple(init.shape)}")
    bad = [f"{k}={v}" for k, v in positive.items() if not v > 0]
    if bad:
        raise ValueError(f"the maximiser needs {', '.join(positive)} > 0, got {', '.join(bad)}")


def _best_over(actions: jax.Array, values: jax.Array) -> tuple[jax.Array, jax.Array]:
    """actions (m, n, d), values (m, n) -> per row the action of the largest value and that value."""
    i = jnp.argmax(values, axis=0)
    rows = jnp.arange(values.shape[1])
    return actions[i, rows], values[i, rows]


def gradient_ascent(f: ValueFn, key: jax.Array, shape: tuple[int, int], *, init: jax.Array | None = None,
                    restarts: int = 8, max_steps: int = 50, step_size: float = 0.1, tol: float = 1e-4) -> Argmax:
    """Projected gradient ascent (Adam steps of `step_size`, clipped to [-1, 1]^d) from `restarts` starts per row,
    until no value changes by `tol` or more in one step, or `max_steps` steps (tol = 0: always max_steps).
    Returns the best point visited over all steps and restarts, so never worse than `init`."""
    _check(shape, init, restarts=restarts, max_steps=max_steps, step_size=step_size)
    n, d = shape
    a = jax.random.uniform(key, (restarts, n, d), minval=-1.0, maxval=1.0)
    if init is not None:
        a = a.at[0].set(jnp.clip(init, -1.0, 1.0))
    adam = optax.adam(step_size)

    def values_and_grads(a: jax.Array) -> tuple[jax.Array, jax.Array]:  # (R, n, d) -> (R, n), (R, n, d)
        def one(x):
            v, pullback = jax.vjp(f, x)
            return v, pullback(jnp.ones_like(v))[0]  # rows are independent: row i's gradient is d f_i / d a_i
        return jax.vmap(one)(a)

    def keep_best(best, a, v):
        return jnp.where((v > best[1])[..., None], a, best[0]), jnp.maximum(v, best[1])

    def running(carry) -> jax.Array:
        t, _, _, _, _, delta = carry
        return (t < max_steps) & (delta >= tol)

    def step(carry):
        t, a, opt, v_prev, best, _ = carry
        v, g = values_and_grads(a)
        best = keep_best(best, a, v)
        delta = jnp.where(t == 0, jnp.inf, jnp.max(jnp.abs(v - v_prev)))  # delta: how much the last step moved f
        updates, opt = adam.update(jax.tree.map(jnp.negative, g), opt, a)  # ascent: Adam descends on -f
        return t + 1, jnp.clip(a + updates, -1.0, 1.0), opt, v, best, delta

    best = (a, jnp.full((restarts, n), -jnp.inf, a.dtype))
    carry = (jnp.zeros((), jnp.int32), a, adam.init(a), best[1], best, jnp.asarray(jnp.inf, a.dtype))
    t, a, _, _, best, _ = jax.lax.while_loop(running, step, carry)
    best = keep_best(best, a, jax.vmap(f)(a))  # the last step's point
    return Argmax(*_best_over(*best), t)


def cem(f: ValueFn, key: jax.Array, shape: tuple[int, int], *, init: jax.Array | None = None,
        population: int = 64, elites: int = 6, iterations: int = 5, init_std: float = 1.0,
        min_std: float = 0.05) -> Argmax:
    """The cross-entropy method over actions: a diagonal Gaussian per row (mean `init` or 0, std `init_std`),
    `iterations` rounds of `population` clipped samples refitted to the `elites` best (std >= `min_std`).
    Returns the best sample seen (and `init` itself where it is better)."""
    _check(shape, init, population=population, elites=elites, iterations=iterations, init_std=init_std,
           min_std=min_std)
    if elites > population:
        raise ValueError(f"elites ({elites}) must not exceed population ({population})")
    n, d = shape
    mean = jnp.zeros(shape) if init is None else jnp.clip(init, -1.0, 1.0)
    std = jnp.full(shape, init_std)
    rows = jnp.arange(n)[:, None]

    def round_(carry, key):
        mean, std, best = carry
        x = jnp.clip(mean + std * jax.random.normal(key, (population, n, d)), -1.0, 1.0)
        v = jax.vmap(f)(x)  # (N, n)
        _, top = jax.lax.top_k(v.T, elites)  # (n, K): the elites' sample indices per row
        elite = x[top, rows]  # (n, K, d)
        a, value = _best_over(jnp.concatenate([best[0][None], x]), jnp.concatenate([best[1][None], v]))
        return (elite.mean(1), jnp.maximum(elite.std(1), min_std), (a, value)), None

    start = (mean, jnp.full((n,), -jnp.inf)) if init is None else (mean, f(mean))
    (_, _, best), _ = jax.lax.scan(round_, (mean, std, start), jax.random.split(key, iterations))
    return Argmax(best[0], best[1], jnp.asarray(iterations, jnp.int32))
