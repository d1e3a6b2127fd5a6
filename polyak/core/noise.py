"""Exploration noise for deterministic policies (DDPG, TD3), in the agent's [-1, 1] action space.

Both kinds keep their state in a JAX array so sampling happens inside the jitted step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np


def _as_tuple(x) -> tuple[float, ...]:
    return tuple(float(v) for v in np.atleast_1d(np.asarray(x, dtype=np.float64)))


@dataclass(frozen=True)
class NormalActionNoise:
    """a = mu(s) + N(mean, sigma^2), i.i.d. per step.  Same constructor as SB3's."""

    mean: tuple[float, ...] = field(default=(0.0,))
    sigma: tuple[float, ...] = field(default=(0.1,))

    def __init__(self, mean=0.0, sigma=0.1):
        object.__setattr__(self, "mean", _as_tuple(mean))
        object.__setattr__(self, "sigma", _as_tuple(sigma))
        if min(self.sigma) < 0:
            raise ValueError(f"NormalActionNoise: sigma must be >= 0, got {self.sigma}")

    def init(self, n_envs: int, act_dim: int) -> jax.Array:
        return jnp.zeros((n_envs, act_dim), jnp.float32)

    def sample(self, state: jax.Array, key: jax.Array, episode_start: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean, sigma = jnp.asarray(self.mean), jnp.asarray(self.sigma)
        return mean + sigma * jax.random.normal(key, state.shape), state


@dataclass(frozen=True)
class OrnsteinUhlenbeckActionNoise:
    """Temporally correlated noise: x <- x + theta (mean - x) dt + sigma sqrt(dt) N(0, 1).

    The process restarts from `initial_noise` (default 0) at each episode start.
    """

    mean: tuple[float, ...] = field(default=(0.0,))
    sigma: tuple[float, ...] = field(default=(0.1,))
    theta: float = 0.15
    dt: float = 1e-2

    def __init__(self, mean=0.0, sigma=0.1, theta: float = 0.15, dt: float = 1e-2):
        object.__setattr__(self, "mean", _as_tuple(mean))
        object.__setattr__(self, "sigma", _as_tuple(sigma))
        object.__setattr__(self, "theta", float(theta))
        object.__setattr__(self, "dt", float(dt))
        if min(self.sigma) < 0 or self.theta < 0 or self.dt <= 0:
            raise ValueError("OrnsteinUhlenbeckActionNoise: need sigma >= 0, theta >= 0, dt > 0")

    def init(self, n_envs: int, act_dim: int) -> jax.Array:
        return jnp.zeros((n_envs, act_dim), jnp.float32)

    def sample(self, state: jax.Array, key: jax.Array, episode_start: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean, sigma = jnp.asarray(self.mean), jnp.asarray(self.sigma)
        x = jnp.where(episode_start[:, None], 0.0, state)
        x = x + self.theta * (mean - x) * self.dt + sigma * jnp.sqrt(self.dt) * jax.random.normal(key, state.shape)
        return x, x


def noise_to_config(noise) -> dict | None:
    """A JSON-able description (saved in checkpoints); inverse of `noise_from_config`."""
    if noise is None:
        return None
    if isinstance(noise, NormalActionNoise):
        return {"type": "normal", "mean": list(noise.mean), "sigma": list(noise.sigma)}
    if isinstance(noise, OrnsteinUhlenbeckActionNoise):
        return {"type": "ornstein_uhlenbeck", "mean": list(noise.mean), "sigma": list(noise.sigma),
                "theta": noise.theta, "dt": noise.dt}
    raise TypeError(f"action_noise must be NormalActionNoise or OrnsteinUhlenbeckActionNoise, got {type(noise).__name__}")


def noise_from_config(cfg: dict | None):
    if cfg is None:
        return None
    kind = cfg.get("type")
    if kind == "normal":
        return NormalActionNoise(cfg["mean"], cfg["sigma"])
    if kind == "ornstein_uhlenbeck":
        return OrnsteinUhlenbeckActionNoise(cfg["mean"], cfg["sigma"], cfg["theta"], cfg["dt"])
    raise ValueError(f"unknown action noise type {kind!r} (expected 'normal' or 'ornstein_uhlenbeck')")
