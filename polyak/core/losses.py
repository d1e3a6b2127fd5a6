"""Loss building blocks shared by every family (pure JAX)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def bootstrap_target(reward, terminated, gamma: float, next_value):
    """y = r + gamma (1 - terminated) V(s'): no bootstrap after termination; after truncation
    s' is the true final observation and we bootstrap from it. For n-step rows (`nstep_push`)
    r is the discounted k-step sum, s' the observation k steps later and `gamma` the per-row gamma^k."""
    return reward + gamma * (1.0 - terminated) * next_value


def polyak_average(online, target, tau: float):
    """theta' <- tau * theta + (1 - tau) * theta'   (the library's namesake)."""
    return jax.tree.map(lambda p, t: tau * p + (1.0 - tau) * t, online, target)


def quantile_huber_loss(quantiles, target, kappa: float = 1.0):
    """The quantile regression loss with the Huber penalty (Dabney et al. 2018), for K quantiles of one
    distribution against M target samples:

        tau_k = (k + 1/2) / K,  delta_km = y_m - theta_k,
        rho_k(delta) = |tau_k - 1{delta < 0}| H_kappa(delta),  H_kappa(d) = d^2 / 2 if |d| <= kappa else kappa (|d| - kappa / 2)
        L = mean over k, m (and any leading batch axes) of rho_k(delta_km)

    `quantiles` (..., K), `target` (..., M) with the same leading axes; returns a scalar.
    """
    n_quantiles = quantiles.shape[-1]
    tau = (jnp.arange(n_quantiles, dtype=quantiles.dtype) + 0.5) / n_quantiles
    delta = target[..., None, :] - quantiles[..., :, None]  # (..., K, M)
    abs_delta = jnp.abs(delta)
    huber = jnp.where(abs_delta <= kappa, 0.5 * delta**2, kappa * (abs_delta - 0.5 * kappa))
    return (jnp.abs(tau[:, None] - (delta < 0).astype(delta.dtype)) * huber).mean()
