"""The optimiser step, written once: every gradient step of every agent goes through `apply_gradients`."""

from __future__ import annotations

from typing import Any, Callable

import jax
import optax


def apply_gradients(optimizer: optax.GradientTransformation, params: Any, grads: Any,
                    opt_state: Any) -> tuple[Any, Any]:
    """theta <- theta + optimizer(g): one step of an optax optimiser; returns (params, opt_state)."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def gradient_step(optimizer: optax.GradientTransformation, loss_fn: Callable, params: Any, opt_state: Any,
                  *args: Any) -> tuple[Any, Any, jax.Array, Any]:
    """One step on loss_fn(params, *args) -> (loss, aux); returns (params, opt_state, loss, aux)."""
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, *args)
    params, opt_state = apply_gradients(optimizer, params, grads, opt_state)
    return params, opt_state, loss, aux
