"""A probabilistic dynamics ensemble (PETS, Chua et al. 2018; the model of MBPO and MOPO): E networks, each a
Gaussian over the next state and the reward, trained on logged transitions; the members' disagreement is
the epistemic uncertainty that penalises or stops model rollouts.

Member i:  (s, a) -> mean mu_i and log-variance of [s' - s, r]   (inputs normalised with the data's statistics)
  loss       L_i = mean over the batch and outputs of (mu_i - y)^2 exp(-log var_i) + log var_i
                   + 0.01 (sum max_log_var - sum min_log_var)            (Gaussian NLL; learned soft bounds)
  log var    clamped softly into [min_log_var, max_log_var] (learned), as in PETS
  elites     the n_elites members with the lowest held-out mean squared error
  step       s' = s + mu_i + sigma_i eps for a uniformly drawn elite i;   r likewise
  uncertainty  aleatoric:  max_i || sigma_i(s, a) ||             (MOPO's penalty)
               epistemic:  || std_i mu_i(s, a) ||                (the elites' disagreement)
Everything is pure JAX: `fit` runs jitted epochs under `lax.scan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from polyak.core.networks import MLP


class GaussianHead(nn.Module):
    """One member: MLP -> (mean, log variance) of `out_dim` outputs, log variance softly clamped."""

    hidden: tuple[int, ...]
    out_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden, 2 * self.out_dim, activation=nn.swish)(x)
        mean, log_var = jnp.split(out, 2, axis=-1)
        max_log_var = self.param("max_log_var", lambda k, s: jnp.full(s, 0.5), (self.out_dim,))
        min_log_var = self.param("min_log_var", lambda k, s: jnp.full(s, -10.0), (self.out_dim,))
        log_var = max_log_var - nn.softplus(max_log_var - log_var)
        log_var = min_log_var + nn.softplus(log_var - min_log_var)
        return mean, log_var


class Ensemble(nn.Module):
    """n_members heads as one vmapped network; `per_member=True` gives member i the batch x[i] (training),
    False gives every member the same batch (prediction). The parameters are the same either way."""

    hidden: tuple[int, ...]
    out_dim: int
    n_members: int
    per_member: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        members = nn.vmap(GaussianHead, variable_axes={"params": 0}, split_rngs={"params": True},
                          in_axes=0 if self.per_member else None, out_axes=0, axis_size=self.n_members)
        return members(self.hidden, self.out_dim)(x)


class Standardizer(NamedTuple):
    mean: jax.Array
    std: jax.Array


def standardizer(x: jax.Array) -> Standardizer:
    return Standardizer(x.mean(axis=0), jnp.maximum(x.std(axis=0), 1e-6))


class EnsembleState(NamedTuple):
    params: Any
    opt_state: Any
    inputs: Standardizer  # statistics of [s, a]
    elites: jax.Array  # indices of the elite members
    key: jax.Array


def gaussian_nll(mean: jax.Array, log_var: jax.Array, target: jax.Array) -> jax.Array:
    """mean over all axes of (mean - target)^2 exp(-log var) + log var (the Gaussian NLL, up to 1/2 and a constant)."""
    return ((mean - target) ** 2 * jnp.exp(-log_var) + log_var).mean()


@dataclass(frozen=True)
class DynamicsEnsemble:
    """Hyperparameters and pure functions of the ensemble (hashable: jit-static)."""

    obs_dim: int
    act_dim: int
    n_members: int = 7
    n_elites: int = 5
    hidden: tuple[int, ...] = (200, 200, 200, 200)
    learning_rate: float = 1e-3
    weight_decay: float = 2.5e-5
    batch_size: int = 256
    bound_coef: float = 0.01  # weight of the learned log-variance bounds

    def __post_init__(self) -> None:
        if not 1 <= self.n_elites <= self.n_members:
            raise ValueError(f"n_elites must be in [1, n_members] = [1, {self.n_members}], got {self.n_elites}")

    @cached_property
    def net(self) -> Ensemble:
        return Ensemble(self.hidden, self.obs_dim + 1, self.n_members)

    @cached_property
    def train_net(self) -> Ensemble:
        return Ensemble(self.hidden, self.obs_dim + 1, self.n_members, per_member=True)

    @cached_property
    def optimizer(self) -> optax.GradientTransformation:
        return optax.adamw(self.learning_rate, weight_decay=self.weight_decay)

    def init(self, key: jax.Array, obs: jax.Array, action: jax.Array) -> EnsembleState:
        """A fresh ensemble whose input statistics are those of the data (obs, action)."""
        k_init, key = jax.random.split(key)
        params = self.net.init(k_init, jnp.zeros((1, self.obs_dim + self.act_dim)))
        inputs = standardizer(jnp.concatenate([obs, action], axis=-1))
        return EnsembleState(params, self.optimizer.init(params), inputs, jnp.arange(self.n_elites), key)

    def predict(self, state: EnsembleState, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Every member's mean and log variance of [s' - s, r]: (n_members, batch, obs_dim + 1) each."""
        x = (jnp.concatenate([obs, action], axis=-1) - state.inputs.mean) / state.inputs.std
        return self.net.apply(state.params, x)

    def loss(self, params, inputs: Standardizer, obs, action, target) -> jax.Array:
        """sum_i L_i on one batch per member (leading axis of obs/action/target: the member)."""
        x = (jnp.concatenate([obs, action], axis=-1) - inputs.mean) / inputs.std
        mean, log_var = self.train_net.apply(params, x)
        nll = jax.vmap(gaussian_nll)(mean, log_var, target).sum()
        bounds = params["params"]["VmapGaussianHead_0"]
        return nll + self.bound_coef * (bounds["max_log_var"].sum() - bounds["min_log_var"].sum())

    @partial(jax.jit, static_argnums=(0, 3))
    def fit_epochs(self, state: EnsembleState, data: tuple[jax.Array, ...], n_steps: int) -> tuple[EnsembleState,
                                                                                               jax.Array]:
        """`n_steps` Adam steps, each member on its own random batch of (obs, action, reward, next_obs)."""
        obs, action, reward, next_obs = data
        target = jnp.concatenate([next_obs - obs, reward[:, None]], axis=-1)

        def step(carry, key):
            params, opt_state = carry
            idx = jax.random.randint(key, (self.n_members, self.batch_size), 0, obs.shape[0])
            loss, grads = jax.value_and_grad(self.loss)(params, state.inputs, obs[idx], action[idx], target[idx])
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        key, k_steps = jax.random.split(state.key)
        (params, opt_state), losses = jax.lax.scan(step, (state.params, state.opt_state),
                                                   jax.random.split(k_steps, n_steps))
        return state._replace(params=params, opt_state=opt_state, key=key), losses

    def validation_mse(self, state: EnsembleState, data: tuple[jax.Array, ...]) -> jax.Array:
        """Each member's mean squared error of its mean on held-out (obs, action, reward, next_obs): (n_members,)."""
        obs, action, reward, next_obs = data
        target = jnp.concatenate([next_obs - obs, reward[:, None]], axis=-1)
        mean, _ = self.predict(state, obs, action)
        return ((mean - target) ** 2).mean(axis=(1, 2))

    def fit(self, key: jax.Array, data: tuple[jax.Array, ...], n_steps: int = 5000, holdout: float = 0.1,
            state: EnsembleState | None = None) -> tuple[EnsembleState, jax.Array]:
        """Train on (obs, action, reward, next_obs) rows: hold out a fraction, train, pick the elites on it.
        Returns the state and the held-out MSE of every member."""
        data = tuple(jnp.asarray(x, jnp.float32) for x in data)
        n = data[0].shape[0]
        k_perm, k_init = jax.random.split(key)
        perm = jax.random.permutation(k_perm, n)
        n_val = max(1, int(holdout * n))
        val, train = (tuple(x[perm[:n_val]] for x in data), tuple(x[perm[n_val:]] for x in data))
        if state is None:
            state = self.init(k_init, train[0], train[1])
        state, _ = self.fit_epochs(state, train, n_steps)
        mse = self.validation_mse(state, val)
        return state._replace(elites=jnp.argsort(mse)[: self.n_elites]), mse

    def step(self, state: EnsembleState, obs: jax.Array, action: jax.Array, key: jax.Array
             ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """One model step for a batch: (next_obs, reward, aleatoric uncertainty, epistemic uncertainty)."""
        mean, log_var = self.predict(state, obs, action)
        mean, log_var = mean[state.elites], log_var[state.elites]
        k_member, k_noise = jax.random.split(key)
        member = jax.random.randint(k_member, (obs.shape[0],), 0, self.n_elites)
        rows = jnp.arange(obs.shape[0])
        std = jnp.exp(0.5 * log_var)
        sample = mean[member, rows] + std[member, rows] * jax.random.normal(k_noise, mean.shape[1:])
        aleatoric = jnp.linalg.norm(std, axis=-1).max(axis=0)  # max_i || sigma_i ||
        epistemic = jnp.linalg.norm(mean.std(axis=0), axis=-1)  # || std_i mu_i ||
        return obs + sample[:, :-1], sample[:, -1], aleatoric, epistemic
