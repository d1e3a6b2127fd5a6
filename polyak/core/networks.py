"""Networks shared by every algorithm: MLP torsos, actors and a critic ensemble.

All actors produce actions in [-1, 1]; the environment adapter rescales them to physical units.

Every network takes a `train` flag (default False) and the same torso options, all off by
default so that the parameter tree and its initialisation are those of a plain Dense stack:

- `layer_norm` and `dropout_rate`: Dense -> Dropout -> LayerNorm -> activation in each hidden
  layer, as DroQ's critic (Hiraoka et al. 2022). Dropout is active only with train=True and
  draws from the rng stream "dropout" (`apply(..., train=True, rngs={"dropout": key})`).
- `batch_norm="batch_norm"` or `"batch_renorm"`: normalise the input and every hidden
  activation, i.e. before each Dense, as CrossQ's critic (Bhatt et al. 2024). The statistics live
  in the "batch_stats" collection: train=True normalises with the batch statistics and updates
  the running ones (`apply(..., train=True, mutable=["batch_stats"])`); train=False uses the
  running statistics.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
BATCH_NORM_EPSILON = 1e-3  # both normalisations; the value of SBX's CrossQ BatchRenorm

BatchNormKind = Literal["batch_norm", "batch_renorm"]


@dataclasses.dataclass(frozen=True)
class TorsoOptions:
    """The MLP options that actors and critics forward to their torso (see `MLP`); all off by default."""

    layer_norm: bool = False
    dropout_rate: float = 0.0
    batch_norm: BatchNormKind | None = None
    batch_norm_momentum: float = 0.99
    renorm_warmup_steps: int = 100_000

    def as_kwargs(self) -> dict:
        return dataclasses.asdict(self)


class BatchRenorm(nn.Module):
    """Batch renormalisation (Ioffe 2017) over all axes but the last (features).

    Running statistics (collection "batch_stats"): `mean`, `var` and `steps`, the number of
    training calls so far. `use_running_average=True` (eval) normalises with the running
    statistics; False (train) with the batch statistics, corrected towards the running ones once
    `steps >= warmup_steps` (before that it is plain batch normalisation, as in SBX's CrossQ).
    Each training call (not the initialisation) updates the running statistics and `steps`,
    so call it once per gradient step.
    """

    use_running_average: bool | None = None
    momentum: float = 0.99
    epsilon: float = BATCH_NORM_EPSILON
    r_max: float = 3.0
    d_max: float = 5.0
    warmup_steps: int = 100_000

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
        use_running_average = nn.merge_param("use_running_average", self.use_running_average, use_running_average)
        features = (x.shape[-1],)
        reduce_axes = tuple(range(x.ndim - 1))
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, features, jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, features, jnp.float32)
        steps = self.variable("batch_stats", "steps", jnp.zeros, (), jnp.int32)
        scale = self.param("scale", nn.initializers.ones, features, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, features, jnp.float32)

        # sigma = sqrt(var + eps), the running standard deviation
        sigma = jnp.sqrt(ra_var.value + self.epsilon)
        if use_running_average:
            # eval: y = gamma (x - mu) / sigma + beta
            mean, inv_std, r, d = ra_mean.value, 1.0 / sigma, 1.0, 0.0
        else:
            # batch statistics mu_B and var_B = mean x^2 - mu_B^2 (biased; one pass over x, as Flax's BatchNorm),
            # sigma_B = sqrt(var_B + eps)
            mean = jnp.mean(x, axis=reduce_axes)
            batch_var = jnp.maximum(jnp.mean(jnp.square(x), axis=reduce_axes) - jnp.square(mean), 0.0)
            inv_std = jax.lax.rsqrt(batch_var + self.epsilon)
            # r = clip(sigma_B / sigma, 1/r_max, r_max), d = clip((mu_B - mu) / sigma, -d_max, d_max),
            # both constants for the gradient
            r = jax.lax.stop_gradient(jnp.clip(1.0 / (inv_std * sigma), 1.0 / self.r_max, self.r_max))
            d = jax.lax.stop_gradient(jnp.clip((mean - ra_mean.value) / sigma, -self.d_max, self.d_max))
            # warm-up: r = 1, d = 0 (plain batch norm) while steps < warmup_steps
            warm = steps.value >= self.warmup_steps
            r, d = jnp.where(warm, r, 1.0), jnp.where(warm, d, 0.0)
            if not self.is_initializing():
                # mu <- m mu + (1 - m) mu_B, var <- m var + (1 - m) var_B (Flax's convention: the
                # variance rather than the paper's std), steps <- steps + 1
                ra_mean.value = self.momentum * ra_mean.value + (1.0 - self.momentum) * mean
                ra_var.value = self.momentum * ra_var.value + (1.0 - self.momentum) * batch_var
                steps.value = steps.value + 1
        # train: y = gamma ((x - mu_B) / sigma_B r + d) + beta, folded per feature into y = x a + b so that x is
        # read once: a = gamma r / sigma_B, b = gamma (d - mu_B r / sigma_B) + beta
        a = scale * r * inv_std
        return x * a + (scale * d + bias - mean * a)


class MLP(nn.Module):
    """Fully connected torso: Dense -> activation for each hidden width, then a linear output.

    Default: ReLU and Flax's default (LeCun normal) init. `orthogonal_gain=g` switches to
    orthogonal weights with gain g in the hidden layers and `output_gain` in the last one, zero
    biases (the on-policy convention: sqrt(2) / 0.01 for a policy head / 1 for a value head).

    Options (module docstring): each hidden layer is
    [norm ->] Dense [-> Dropout] [-> LayerNorm] -> activation, and the output [norm ->] Dense,
    where norm is `nn.BatchNorm` or `BatchRenorm` (momentum `batch_norm_momentum`, warm-up
    `renorm_warmup_steps` for the renorm). The Dense layers keep the names Dense_0, Dense_1, ...
    """

    hidden: Sequence[int]
    out_dim: int
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    orthogonal_gain: float | None = None
    output_gain: float = 1.0
    layer_norm: bool = False
    dropout_rate: float = 0.0
    batch_norm: BatchNormKind | None = None
    batch_norm_momentum: float = 0.99
    renorm_warmup_steps: int = 100_000

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if self.batch_norm not in (None, "batch_norm", "batch_renorm"):
            raise ValueError(f"batch_norm must be None, 'batch_norm' or 'batch_renorm', got {self.batch_norm!r}")

        def dense(width: int, gain: float | None) -> nn.Dense:
            if self.orthogonal_gain is None:
                return nn.Dense(width)
            return nn.Dense(width, kernel_init=nn.initializers.orthogonal(gain), bias_init=nn.initializers.zeros)

        def normalise(x: jax.Array) -> jax.Array:
            if self.batch_norm == "batch_norm":
                return nn.BatchNorm(use_running_average=not train, momentum=self.batch_norm_momentum,
                                    epsilon=BATCH_NORM_EPSILON)(x)
            if self.batch_norm == "batch_renorm":
                return BatchRenorm(use_running_average=not train, momentum=self.batch_norm_momentum,
                                   warmup_steps=self.renorm_warmup_steps)(x)
            return x

        for width in self.hidden:
            x = dense(width, self.orthogonal_gain)(normalise(x))
            if self.dropout_rate > 0.0:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = self.activation(x)
        return dense(self.out_dim, None if self.orthogonal_gain is None else self.output_gain)(normalise(x))


class DeterministicActor(nn.Module):
    """mu(s) = tanh(MLP(s)): the DDPG/TD3 policy."""

    hidden: Sequence[int]
    act_dim: int
    torso: TorsoOptions = TorsoOptions()

    @nn.compact
    def __call__(self, obs: jax.Array, train: bool = False) -> jax.Array:
        return jnp.tanh(MLP(self.hidden, self.act_dim, **self.torso.as_kwargs())(obs, train))


class GaussianActor(nn.Module):
    """Returns the mean and log-std (state dependent, clipped) of the pre-tanh Gaussian."""

    hidden: Sequence[int]
    act_dim: int
    torso: TorsoOptions = TorsoOptions()

    @nn.compact
    def __call__(self, obs: jax.Array, train: bool = False) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden, 2 * self.act_dim, **self.torso.as_kwargs())(obs, train)
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
    """Q(s, a) -> scalar, or `n_quantiles` quantiles of the return distribution (TQC)."""

    hidden: Sequence[int]
    n_quantiles: int | None = None
    torso: TorsoOptions = TorsoOptions()

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array, train: bool = False) -> jax.Array:
        out = MLP(self.hidden, self.n_quantiles or 1, **self.torso.as_kwargs())(
            jnp.concatenate([obs, action], axis=-1), train)
        return out[..., 0] if self.n_quantiles is None else out


class CriticEnsemble(nn.Module):
    """n independent critics evaluated as one vmapped network.

    Output shape (n_critics, batch), or (n_critics, batch, n_quantiles) with `n_quantiles`. Each
    critic has its own parameters, running statistics and dropout masks.
    """

    hidden: Sequence[int]
    n_critics: int = 2
    n_quantiles: int | None = None
    torso: TorsoOptions = TorsoOptions()

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array, train: bool = False) -> jax.Array:
        ensemble = nn.vmap(
            Critic,
            variable_axes={"params": 0, "batch_stats": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.n_critics,
        )
        return ensemble(self.hidden, self.n_quantiles, self.torso)(obs, action, train)
