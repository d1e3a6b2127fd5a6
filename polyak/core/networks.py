"""Networks shared by every algorithm: MLP torsos, actors and a critic ensemble.

All actors produce actions in [-1, 1]; the environment adapter rescales them to physical units.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class MLP(nn.Module):
    """Fully connected torso: Dense -> activation for each hidden width, then a linear output.

    Default: ReLU and Flax's default (LeCun normal) init. `orthogonal_gain=g` switches to
    orthogonal weights with gain g in the hidden layers and `output_gain` in the last one, zero
    biases (the on-policy convention: sqrt(2) / 0.01 for a policy head / 1 for a value head).
    """

    hidden: Sequence[int]
    out_dim: int
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    orthogonal_gain: float | None = None
    output_gain: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        def dense(width: int, gain: float | None) -> nn.Dense:
            if self.orthogonal_gain is None:
                return nn.Dense(width)
            return nn.Dense(width, kernel_init=nn.initializers.orthogonal(gain), bias_init=nn.initializers.zeros)

        for width in self.hidden:
            x = self.activation(dense(width, self.orthogonal_gain)(x))
        return dense(self.out_dim, None if self.orthogonal_gain is None else self.output_gain)(x)


class DeterministicActor(nn.Module):
    """mu(s) = tanh(MLP(s)): the DDPG/TD3 policy."""

    hidden: Sequence[int]
    act_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return jnp.tanh(MLP(self.hidden, self.act_dim)(obs))


class GaussianActor(nn.Module):
    """Returns the mean and log-std (state dependent, clipped) of the pre-tanh Gaussian."""

    hidden: Sequence[int]
    act_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden, 2 * self.act_dim)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def squashed_gaussian_sample(
    mean: jax.Array, log_std: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised a = tanh(mean + std * eps) and its log-density.

    log pi(a|s) = sum_i [ log N(u_i; mean_i, std_i) - log(1 - tanh(u_i)^2) ],
    with log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)) for numerical stability.
    """
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    u = mean + jnp.exp(log_std) * eps
    log_normal = -0.5 * eps**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    log_det_tanh = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.tanh(u), jnp.sum(log_normal - log_det_tanh, axis=-1)


class Critic(nn.Module):
    """Q(s, a) -> scalar."""

    hidden: Sequence[int]

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        return MLP(self.hidden, 1)(jnp.concatenate([obs, action], axis=-1))[..., 0]


class CriticEnsemble(nn.Module):
    """n independent critics evaluated as one vmapped network; output shape (n, batch)."""

    hidden: Sequence[int]
    n_critics: int = 2

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            Critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.n_critics,
        )
        return ensemble(self.hidden)(obs, action)


