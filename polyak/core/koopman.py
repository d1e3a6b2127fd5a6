"""A stable Koopman world model with epistemic uncertainty: an ensemble of models, each an encoder into a
latent space where the dynamics are (nearly) linear and provably non-expansive, trained on logged episodes.

Member:
  encode     z = phi(s)                                   (MLP; inputs normalised with the data's statistics)
  dynamics   z' = K z + B psi(a) + c tanh(g(z, psi(a)))   psi: linear action encoding; g: a small MLP residual,
                                                          bounded, so a rollout cannot grow faster than linearly
  K          K = W / max(1, ||W||_2)                      spectral norm <= 1, so every eigenvalue lies in the
                                                          unit disc and the linear part cannot blow up over a
                                                          long rollout (||K^n z|| <= ||z||)
  decode     s = dec(z),  r = h(z, psi(a))                (MLPs)
  loss on an H-step segment s_0..s_H, a_0..a_{H-1}, r_0..r_{H-1} (steps past an episode's end masked),
       with z_0 = phi(s_0), z_{k+1} = f(z_k, a_k):
     reconstruction   ||dec(phi(s_k)) - s_k||^2
     prediction       ||dec(z_k) - s_k||^2, k = 1..H       (multi-step, through the latent rollout)
     linearity        ||z_k - phi(s_k)||^2, k = 1..H       (the rolled-out latent stays the encoding)
     reward           (h(z_k, psi(a_k)) - r_k)^2
     residual         lambda_res ||c tanh g(z_k, psi(a_k))||^2  (keeps the model as linear as the data allow)
Ensemble: E members trained on independent batches; the spread of their predicted next states is the
epistemic uncertainty that penalises or stops model rollouts (`step`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from polyak.core.dynamics import Standardizer, standardizer
from polyak.core.networks import MLP


def spectral_normalise(w: jax.Array, bound: float = 1.0) -> jax.Array:
    """K = W * min(1, bound / ||W||_2): the largest singular value of K is at most `bound`."""
    sigma = jnp.linalg.norm(w, ord=2)
    return w * jnp.minimum(1.0, bound / jnp.maximum(sigma, 1e-12))


class KoopmanNet(nn.Module):
    obs_dim: int
    act_dim: int
    latent_dim: int
    hidden: tuple[int, ...]
    residual_hidden: tuple[int, ...]
    spectral_bound: float = 1.0

    def setup(self) -> None:
        self.encoder = MLP(self.hidden, self.latent_dim, activation=nn.swish)
        self.decoder = MLP(self.hidden, self.obs_dim, activation=nn.swish)
        self.reward_head = MLP(self.hidden, 1, activation=nn.swish)
        self.residual = MLP(self.residual_hidden, self.latent_dim, activation=nn.swish)
        self.w = self.param("W", lambda k, s: 0.9 * jnp.eye(s[0]) + 0.01 * jax.random.normal(k, s),
                            (self.latent_dim, self.latent_dim))
        self.b = self.param("B", nn.initializers.lecun_normal(), (self.act_dim, self.latent_dim))
        self.residual_scale = self.param("residual_scale", nn.initializers.zeros, ())

    def k_matrix(self) -> jax.Array:
        return spectral_normalise(self.w, self.spectral_bound)

    def encode(self, s: jax.Array) -> jax.Array:
        return self.encoder(s)

    def decode(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)

    def advance(self, z: jax.Array, a: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """z' = K z + B psi(a) + c tanh(g(z, psi(a))); returns (z', the residual term, r_hat)."""
        u = a @ self.b
        residual = self.residual_scale * jnp.tanh(self.residual(jnp.concatenate([z, u], axis=-1)))
        reward = self.reward_head(jnp.concatenate([z, u], axis=-1))[..., 0]
        return z @ self.k_matrix().T + u + residual, residual, reward

    def __call__(self, s: jax.Array, a: jax.Array):  # initialisation touches every submodule
        z = self.encode(s)
        return self.decode(z), self.advance(z, a)


class KoopmanState(NamedTuple):
    params: Any  # every member's, leading axis n_members
    opt_state: Any
    obs: Standardizer
    act: Standardizer
    key: jax.Array


class Segments(NamedTuple):
    """H-step windows of logged episodes: obs (N, H + 1, d), action (N, H, m), reward (N, H), mask (N, H):
    mask[k] = 1 while step k is inside the episode."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    mask: np.ndarray


def make_segments(episodes: list[dict[str, np.ndarray]], horizon: int) -> Segments:
    """All H-step windows (one per start step) of episodes given as dicts with observations (T + 1, d), actions
    (T, m) and rewards (T,); windows that run past an episode's end are padded and masked."""
    obs, act, rew, mask = [], [], [], []
    for ep in episodes:
        o, a, r = (np.asarray(ep[k], np.float32) for k in ("observations", "actions", "rewards"))
        t = len(a)
        if len(o) != t + 1 or len(r) != t:
            raise ValueError(f"an episode needs T + 1 observations, T actions and T rewards; got {len(o)}, {t}, {len(r)}")
        o_pad = np.concatenate([o, np.repeat(o[-1:], horizon, axis=0)])
        a_pad = np.concatenate([a, np.zeros((horizon, a.shape[1]), np.float32)])
        r_pad = np.concatenate([r, np.zeros(horizon, np.float32)])
        m_pad = np.concatenate([np.ones(t, np.float32), np.zeros(horizon, np.float32)])
        for start in range(t):
            obs.append(o_pad[start:start + horizon + 1])
            act.append(a_pad[start:start + horizon])
            rew.append(r_pad[start:start + horizon])
            mask.append(m_pad[start:start + horizon])
    return Segments(np.stack(obs), np.stack(act), np.stack(rew), np.stack(mask))


@dataclass(frozen=True)
class KoopmanEnsemble:
    """Hyperparameters and pure functions of the ensemble (hashable: jit-static)."""

    obs_dim: int
    act_dim: int
    latent_dim: int = 32
    n_members: int = 5
    hidden: tuple[int, ...] = (128, 128)
    residual_hidden: tuple[int, ...] = (64,)
    spectral_bound: float = 1.0
    horizon: int = 20  # H, the prediction loss's rollout length
    learning_rate: float = 1e-3
    batch_size: int = 128
    residual_coef: float = 1.0  # lambda_res
    linearity_coef: float = 0.1
    reward_coef: float = 1.0

    def __post_init__(self) -> None:
        if self.spectral_bound <= 0 or self.horizon < 1 or self.n_members < 1:
            raise ValueError("spectral_bound must be > 0, horizon and n_members >= 1")

    @cached_property
    def net(self) -> KoopmanNet:
        return KoopmanNet(self.obs_dim, self.act_dim, self.latent_dim, self.hidden, self.residual_hidden,
                          self.spectral_bound)

    @cached_property
    def optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.learning_rate)

    def init(self, key: jax.Array, segments: Segments) -> KoopmanState:
        k_init, key = jax.random.split(key)
        obs = jnp.asarray(segments.obs[:, 0])
        act = jnp.asarray(segments.action.reshape(-1, self.act_dim))
        init_one = lambda k: self.net.init(k, jnp.zeros((1, self.obs_dim)), jnp.zeros((1, self.act_dim)))  # noqa: E731
        params = jax.vmap(init_one)(jax.random.split(k_init, self.n_members))
        return KoopmanState(params, jax.vmap(self.optimizer.init)(params), standardizer(obs), standardizer(act), key)

    def _member_loss(self, params, obs_stats: Standardizer, act_stats: Standardizer, seg: Segments) -> jax.Array:
        s = (seg.obs - obs_stats.mean) / obs_stats.std  # (B, H + 1, d), normalised
        a = (seg.action - act_stats.mean) / act_stats.std
        apply = partial(self.net.apply, params)
        z_true = apply(s, method=KoopmanNet.encode)  # phi(s_k), k = 0..H
        recon = ((apply(z_true, method=KoopmanNet.decode) - s) ** 2).mean(-1)  # (B, H + 1)

        def roll(z, inputs):
            a_k = inputs
            z_next, residual, reward = apply(z, a_k, method=KoopmanNet.advance)
            return z_next, (z_next, residual, reward)

        _, (z_pred, residual, reward) = jax.lax.scan(roll, z_true[:, 0], jnp.moveaxis(a, 1, 0))
        z_pred, residual, reward = (jnp.moveaxis(x, 0, 1) for x in (z_pred, residual, reward))  # (B, H, .)
        mask = seg.mask
        denom = jnp.maximum(mask.sum(), 1.0)
        prediction = (((apply(z_pred, method=KoopmanNet.decode) - s[:, 1:]) ** 2).mean(-1) * mask).sum() / denom
        linearity = (((z_pred - z_true[:, 1:]) ** 2).mean(-1) * mask).sum() / denom
        reward_loss = (((reward - seg.reward) ** 2) * mask).sum() / denom
        residual_loss = ((residual**2).mean(-1) * mask).sum() / denom
        return (recon.mean() + prediction + self.linearity_coef * linearity + self.reward_coef * reward_loss
                + self.residual_coef * residual_loss)

    @partial(jax.jit, static_argnums=(0, 3))
    def fit_steps(self, state: KoopmanState, segments: Segments, n_steps: int) -> tuple[KoopmanState, jax.Array]:
        """`n_steps` Adam steps of every member, each on its own random batch of segments."""
        n = segments.obs.shape[0]

        def member_step(params, opt_state, idx):
            batch = Segments(*(x[idx] for x in segments))
            loss, grads = jax.value_and_grad(self._member_loss)(params, state.obs, state.act, batch)
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        def step(carry, key):
            params, opt_state = carry
            idx = jax.random.randint(key, (self.n_members, self.batch_size), 0, n)
            params, opt_state, loss = jax.vmap(member_step)(params, opt_state, idx)
            return (params, opt_state), loss

        key, k_steps = jax.random.split(state.key)
        (params, opt_state), losses = jax.lax.scan(step, (state.params, state.opt_state),
                                                   jax.random.split(k_steps, n_steps))
        return state._replace(params=params, opt_state=opt_state, key=key), losses

    def fit(self, key: jax.Array, segments: Segments, n_steps: int = 3000,
            state: KoopmanState | None = None) -> tuple[KoopmanState, jax.Array]:
        segments = Segments(*(jnp.asarray(x, jnp.float32) for x in segments))
        if state is None:
            state = self.init(key, segments)
        return self.fit_steps(state, segments, n_steps)

    def k_matrices(self, state: KoopmanState) -> jax.Array:
        """Every member's K, (n_members, latent, latent)."""
        return jax.vmap(lambda p: self.net.apply(p, method=KoopmanNet.k_matrix))(state.params)

    @partial(jax.jit, static_argnums=0)
    def rollout(self, state: KoopmanState, obs: jax.Array, actions: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Open-loop prediction from s_0 (batch, d) under actions (batch, T, m), every member:
        predicted observations (n_members, batch, T, d) and rewards (n_members, batch, T)."""
        s = (obs - state.obs.mean) / state.obs.std
        a = (actions - state.act.mean) / state.act.std

        def member(params):
            apply = partial(self.net.apply, params)

            def roll(z, a_k):
                z_next, _, reward = apply(z, a_k, method=KoopmanNet.advance)
                return z_next, (apply(z_next, method=KoopmanNet.decode), reward)

            _, (pred, reward) = jax.lax.scan(roll, apply(s, method=KoopmanNet.encode), jnp.moveaxis(a, 1, 0))
            return jnp.moveaxis(pred, 0, 1) * state.obs.std + state.obs.mean, jnp.moveaxis(reward, 0, 1)

        return jax.vmap(member)(state.params)

    def step(self, state: KoopmanState, obs: jax.Array, action: jax.Array, key: jax.Array
             ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One model step for a batch from a random member: (next_obs, reward, epistemic uncertainty
        || std over members of the predicted next observation ||)."""
        pred, reward = self.rollout(state, obs, action[:, None])
        member = jax.random.randint(key, (obs.shape[0],), 0, self.n_members)
        rows = jnp.arange(obs.shape[0])
        return pred[member, rows, 0], reward[member, rows, 0], jnp.linalg.norm(pred[:, :, 0].std(axis=0), axis=-1)
