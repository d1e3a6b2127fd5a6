"""The offline machinery: a fixed dataset in the learner's replay buffer and jitted chunks of gradient steps.

An offline agent is a replay agent (`polyak.core.types.Agent`: init, act, update(state, batch, key) ->
(state, metrics, UpdateInfo)), so the off-policy learner serves it as it is: `offpolicy.learner.Learner`
holds the agent state, the dataset as a full `ReplayBuffer` on the device, the observation normaliser
(fitted once on the dataset's observations, then fixed, saved with the model), the RNG key, the
gradient-step counter (`step`) and the `Monitor`. `train_chunk` is `update_phase` — n gradient steps on
batches sampled from the buffer under `lax.scan`, no environment in it — plus the step count, one donated
jitted call per chunk; `train_chunk_seeds` runs it vmapped over seeds that share one buffer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from polyak.algos.offpolicy.actor_critic import ActorCriticAgent
from polyak.algos.offpolicy.learner import Learner, LoopSpec, init_learner, update_phase
from polyak.core.config import Config, need
from polyak.core.distributions import DiagGaussian
from polyak.core.networks import LOG_STD_MAX, LOG_STD_MIN, MLP
from polyak.core.monitor import observe_rewards
from polyak.core.normalizer import RunningMeanStd
from polyak.core.optim import gradient_step
from polyak.core.types import Transition
from polyak.data.buffer import ReplayBuffer
from polyak.data.datasets import replay_buffer


@dataclass(frozen=True)
class OfflineConfig(Config):
    """Hyperparameters every offline actor-critic shares (CORL's defaults where they agree)."""

    learning_rate: float = 3e-4  # Adam step size of the critics (and of IQL's value network)
    actor_learning_rate: float = 3e-4  # Adam step size of the policy
    batch_size: int = 256
    tau: float = 0.005  # Polyak averaging of the target networks
    gamma: float = 0.99
    actor_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    n_critics: int = 2
    normalize_obs: bool = True  # standardise observations with the dataset's mean and std (fixed, saved)
    reward_scale: float = 1.0  # rewards are multiplied by this when the buffer is filled

    def validate(self) -> None:
        need(self.learning_rate > 0 and self.actor_learning_rate > 0,
             f"learning rates must be > 0, got {self.learning_rate} and {self.actor_learning_rate}")
        need(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        need(0 < self.tau <= 1, f"tau must be in (0, 1], got {self.tau}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.n_critics >= 1, f"n_critics must be >= 1, got {self.n_critics}")
        need(all(w >= 1 for w in self.actor_hidden + self.critic_hidden),
             f"hidden layer widths must be >= 1, got {self.actor_hidden} / {self.critic_hidden}")
        need(self.reward_scale > 0, f"reward_scale must be > 0, got {self.reward_scale}")


@dataclass(frozen=True)
class OfflineAgent(ActorCriticAgent):
    """The critic ensemble, its Adam (`optimizer`, `learning_rate`) and `q_values` of the off-policy actor-critics,
    plus the policy's own Adam (`actor_learning_rate`)."""

    cfg: OfflineConfig

    @cached_property
    def actor_optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.cfg.actor_learning_rate)

    def weighted_regression_step(self, actor_params, actor_opt, obs: jax.Array, action: jax.Array,
                                 weights: jax.Array):
        """Advantage-weighted regression onto the data's actions (IQL, AWAC): L_pi = -mean w log pi(a|s) with
        constant weights w, one step of `actor_optimizer`; returns (params, opt_state, loss)."""
        def actor_loss_fn(params):
            return -(weights * DiagGaussian.log_prob(self.actor.apply(params, obs), action)).mean(), None

        params, opt_state, loss, _ = gradient_step(self.actor_optimizer, actor_loss_fn, actor_params, actor_opt)
        return params, opt_state, loss


class GaussianPolicy(nn.Module):
    """pi(a|s) = N(mean(s), diag(std)^2): mean = MLP(s) (tanh(MLP(s)) with `tanh_mean`), log std a
    state-independent parameter clipped to [-20, 2] (CORL's IQL and AWAC policies). Returns (mean, log_std)
    for `core.distributions.DiagGaussian`; samples are not squashed (clip them to [-1, 1] to act)."""

    hidden: Sequence[int]
    act_dim: int
    tanh_mean: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean = MLP(self.hidden, self.act_dim)(obs)
        mean = jnp.tanh(mean) if self.tanh_mean else mean
        log_std = jnp.clip(self.param("log_std", nn.initializers.zeros, (self.act_dim,)), LOG_STD_MIN, LOG_STD_MAX)
        return mean, jnp.broadcast_to(log_std, mean.shape)


def fit_normalizer(obs: np.ndarray) -> RunningMeanStd:
    """The dataset's observation mean and (population) variance, as the running normaliser's state."""
    obs = np.asarray(obs, np.float64)
    return RunningMeanStd(jnp.asarray(obs.mean(0), jnp.float32), jnp.asarray(obs.var(0), jnp.float32),
                          jnp.asarray(obs.shape[0], jnp.float32))


def with_dataset(learner: Learner, rows: Transition, normalizer: RunningMeanStd) -> Learner:
    """A learner whose buffer holds exactly `rows` (actions in [-1, 1], rewards scaled), with the normaliser
    fitted on them and the monitor's reward bound widened to the largest |reward| in the data."""
    buffer = replay_buffer(rows)
    return learner._replace(buffer=buffer, obs_rms=normalizer,
                            monitor=observe_rewards(learner.monitor, buffer.data.reward))


def grown(buffer: ReplayBuffer, capacity: int) -> ReplayBuffer:
    """`buffer` with room for `capacity` rows (online fine-tuning appends to the dataset): its `size` rows first,
    in order, and the write pointer after them. Its rows must never have wrapped around (full: pointer 0)."""
    n = int(buffer.size)
    if int(buffer.ptr) != n % buffer.capacity:
        raise ValueError(f"cannot grow a replay buffer whose rows wrapped around (pointer {int(buffer.ptr)}, {n} rows)")
    if capacity <= buffer.capacity:
        return buffer
    data = jax.tree.map(lambda x: jnp.zeros((capacity,) + x.shape[1:], x.dtype).at[:n].set(x[:n]), buffer.data)
    return ReplayBuffer(data, jnp.asarray(n, jnp.int32), jnp.asarray(n, jnp.int32))


def train_chunk(spec: LoopSpec, n_grad: int, learner: Learner) -> Learner:
    """`n_grad` gradient steps over the fixed buffer; `step` counts gradient steps (the monitor's step)."""
    return update_phase(spec, n_grad, learner._replace(step=learner.step + n_grad))


def train_chunk_seeds(spec: LoopSpec, n_grad: int, learners: Learner, buffer) -> Learner:
    """`train_chunk` vmapped over a leading seed axis of `learners` (held without a buffer), all seeds
    sampling from the one shared `buffer`."""
    def one(learner: Learner) -> Learner:
        return train_chunk(spec, n_grad, learner._replace(buffer=buffer))._replace(buffer=None)

    return jax.vmap(one)(learners)


@functools.lru_cache(maxsize=64)
def compiled(spec: LoopSpec):
    """Jitted functions for one LoopSpec (shared across models with equal specs)."""
    return {
        "init": jax.jit(functools.partial(init_learner, spec), static_argnums=1),
        "chunk": functools.lru_cache(maxsize=8)(
            lambda n: jax.jit(functools.partial(train_chunk, spec, n), donate_argnums=0)),
        "chunk_seeds": functools.lru_cache(maxsize=8)(
            lambda n: jax.jit(functools.partial(train_chunk_seeds, spec, n), donate_argnums=0)),
    }
