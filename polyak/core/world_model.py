"""One interface for the learned models that model-based agents roll out: fit on logged transitions, then step a
batch of states with an uncertainty per row. Two kinds:

  EnsembleModel   the probabilistic MLP ensemble (`core.dynamics`): elites by held-out error, each step sampled
                  from N(mu_i, sigma_i^2) of a random elite
  KoopmanModel    the stable Koopman ensemble (`core.koopman`): deterministic members, a step is a random member's
                  s' = dec(K phi(s) + B psi(a) + residual) and its reward head h(z, psi(a))

Uncertainty u(s, a), the penalty of model rollouts (`penalty`):
  aleatoric      max_i ||sigma_i(s, a)||                           (MOPO's; the MLP ensemble only)
  epistemic      ||std_i mu_i(s, a)||                              (MLP: over [s' - s, r]; Koopman: over s')
  disagreement   max_i ||mu_i(s, a) - mean_j mu_j(s, a)||          (over s'; MOPO's max-norm form applied to the
                                                                    members' spread: the farthest member decides)
The members compared are those that roll out (the elites, or every Koopman member).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from polyak.core.dynamics import DynamicsEnsemble, Standardizer
from polyak.core.koopman import KoopmanEnsemble, Segments, make_segments
from polyak.core.types import Transition

PENALTIES = ("aleatoric", "epistemic", "disagreement")


class WorldModel(Protocol):
    """A learned model of (s, a) -> (s', r) with an uncertainty; its state is a pytree, its methods are pure."""

    n_members: int

    def init(self, key: jax.Array) -> Any:
        """An unfitted state with the fitted state's pytree structure (a checkpoint can be restored into it)."""

    def fit(self, key: jax.Array, rows: Transition, n_steps: int, episode: np.ndarray | None = None
            ) -> tuple[Any, jax.Array]:
        """Fit on rows in dataset order (host-side); returns the state and every member's one-step MSE. `episode`:
        each row's episode id where the data has them (a model of whole episodes uses them)."""

    def members(self, state: Any) -> jax.Array:
        """Indices of the members that roll out."""

    def step(self, state: Any, obs: jax.Array, action: jax.Array, key: jax.Array
             ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One step for a batch: (next_obs, reward, uncertainty u), each with the batch's leading axis."""


def max_deviation(pred: jax.Array) -> jax.Array:
    """u = max_i ||pred_i - mean_j pred_j|| over the members' predictions (n_members, batch, d) -> (batch,)."""
    return jnp.linalg.norm(pred - pred.mean(axis=0), axis=-1).max(axis=0)


@dataclass(frozen=True)
class EnsembleModel:
    """The probabilistic MLP ensemble as a WorldModel (hashable: jit-static)."""

    ensemble: DynamicsEnsemble
    penalty: str = "aleatoric"
    holdout: float = 0.1  # fraction of the rows held out to rank the members

    def __post_init__(self) -> None:
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {PENALTIES}, got {self.penalty!r}")

    @property
    def n_members(self) -> int:
        return self.ensemble.n_members

    def init(self, key: jax.Array) -> Any:
        return self.ensemble.init(key, jnp.zeros((1, self.ensemble.obs_dim)), jnp.zeros((1, self.ensemble.act_dim)))

    def fit(self, key: jax.Array, rows: Transition, n_steps: int, episode: np.ndarray | None = None
            ) -> tuple[Any, jax.Array]:
        return self.ensemble.fit(key, (rows.obs, rows.action, rows.reward, rows.next_obs), n_steps, self.holdout)

    def members(self, state: Any) -> jax.Array:
        return state.elites

    def step(self, state, obs, action, key):
        next_obs, reward, aleatoric, epistemic = self.ensemble.step(state, obs, action, key)
        if self.penalty == "aleatoric":
            return next_obs, reward, aleatoric
        if self.penalty == "epistemic":
            return next_obs, reward, epistemic
        mean, _ = self.ensemble.predict(state, obs, action)
        return next_obs, reward, max_deviation(mean[state.elites, :, :-1])  # s'_i - s: the same spread as s'_i


def split_episodes(rows: Transition, episode: np.ndarray | None = None) -> list[dict[str, np.ndarray]]:
    """Rows in dataset order cut into episodes. With `episode` (each row's episode id) row t + 1 continues row t
    when both carry the same id. Without ids they are inferred: row t + 1 continues row t when row t did not
    terminate and obs[t + 1] is exactly next_obs[t] (a truncation followed by a reset breaks the chain, unless
    the reset observation happens to equal the final one)."""
    obs, action, reward, next_obs, terminated = (np.asarray(x) for x in rows)
    if len(obs) == 0:
        raise ValueError("no transitions to fit a model on")
    action = action.reshape(len(action), -1)
    if episode is not None:
        episode = np.asarray(episode)
        if episode.shape != (len(obs),):
            raise ValueError(f"episode ids must have one entry per row, shape ({len(obs)},); got {episode.shape}")
        continues = episode[1:] == episode[:-1]
    else:
        continues = (terminated[:-1] == 0) & np.all(obs[1:] == next_obs[:-1], axis=-1)
    ends = np.concatenate([np.flatnonzero(~continues) + 1, [len(obs)]])
    starts = np.concatenate([[0], ends[:-1]])
    return [{"observations": np.concatenate([obs[a:b], next_obs[b - 1:b]]), "actions": action[a:b],
             "rewards": reward[a:b]} for a, b in zip(starts, ends, strict=True)]


@dataclass(frozen=True)
class KoopmanModel:
    """The Koopman ensemble as a WorldModel (hashable: jit-static). It learns the reward with its own head h(z, psi(a))
    from the logged rewards, as the MLP ensemble does: a dataset brings no reward function, and the head shares the
    latent state the dynamics are trained on. Every member rolls out (no elites: the members differ only by their
    initialisation and batches, and H-step windows leave no clean held-out rows); the MSE `fit` reports is the
    one-step error of [s', r] on the training rows (in-sample)."""

    koopman: KoopmanEnsemble
    penalty: str = "disagreement"

    def __post_init__(self) -> None:
        if self.penalty not in ("epistemic", "disagreement"):
            raise ValueError(f"the Koopman members are deterministic (no aleatoric uncertainty): penalty must be "
                             f"'epistemic' or 'disagreement', got {self.penalty!r}")

    @property
    def n_members(self) -> int:
        return self.koopman.n_members

    def init(self, key: jax.Array) -> Any:
        k = self.koopman
        empty = Segments(np.zeros((1, k.horizon + 1, k.obs_dim), np.float32),
                         np.zeros((1, k.horizon, k.act_dim), np.float32), np.zeros((1, k.horizon), np.float32),
                         np.zeros((1, k.horizon), np.float32))
        state = k.init(key, Segments(*(jnp.asarray(x) for x in empty)))
        return state._replace(obs=Standardizer(jnp.zeros(k.obs_dim), jnp.ones(k.obs_dim)),
                              act=Standardizer(jnp.zeros(k.act_dim), jnp.ones(k.act_dim)))

    def fit(self, key: jax.Array, rows: Transition, n_steps: int, episode: np.ndarray | None = None
            ) -> tuple[Any, jax.Array]:
        state, _ = self.koopman.fit(key, make_segments(split_episodes(rows, episode), self.koopman.horizon), n_steps)
        pred, reward = self._predict(state, jnp.asarray(rows.obs), jnp.asarray(rows.action))
        err = jnp.concatenate([pred - jnp.asarray(rows.next_obs), (reward - jnp.asarray(rows.reward))[..., None]], -1)
        return state, (err**2).mean(axis=(1, 2))

    def members(self, state: Any) -> jax.Array:
        return jnp.arange(self.koopman.n_members)

    def _predict(self, state, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Every member's next observation (n_members, batch, d) and reward (n_members, batch)."""
        pred, reward = self.koopman.rollout(state, obs, action[:, None])
        return pred[:, :, 0], reward[:, :, 0]

    def step(self, state, obs, action, key):
        pred, reward = self._predict(state, obs, action)
        member = jax.random.randint(key, (obs.shape[0],), 0, self.koopman.n_members)
        rows = jnp.arange(obs.shape[0])
        u = max_deviation(pred) if self.penalty == "disagreement" else jnp.linalg.norm(pred.std(axis=0), axis=-1)
        return pred[member, rows], reward[member, rows], u

