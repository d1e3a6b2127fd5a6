"""Path consistency (Nachum, Norouzi, Xu & Schuurmans 2017), written once for PCL and Unified PCL.

With entropy regularisation at temperature alpha, the optimal policy and soft state values satisfy, along
*any* path s_i, a_i, ..., s_{i+d} (on-policy or not), the d-step soft consistency

    C(s_i:i+d) = -V(s_i) + gamma^d V(s_{i+d}) + sum_{j<d} gamma^j (r_{i+j} - alpha log pi(a_{i+j} | s_{i+j})) = 0.

PCL minimises 1/2 C^2 over segments of on-policy rollouts and of replayed episodes. Per rollout
(n_steps x n_envs steps of the current policy; `PathConsistencyAgent.update`):
  1. on-policy    one gradient step on 1/2 mean C^2 over the rollout's d-step segments
  2. store        the rollout's steps enter the episode replay; an episode is sampled once it has ended
  3. replay       replay_steps gradient steps, each on the segments of replay_batch whole episodes drawn
                  with P(episode) proportional to exp(lambda R), R its return (`polyak.data.episodes`)

Segments are cut where the episode ends: after a termination V = 0; at a time limit (or the rollout's
end) the sum bootstraps from V of the true final observation, with gamma^k for the k < d steps summed.
So near an end the segment is shorter, never crossing into the next episode.

The gradient of 1/2 C^2 is C dC/dtheta for the policy's parameters, C dC/dphi for the value's. The two
parts are computed from C with the other part held constant (`consistency_loss`), so that an agent whose
pi and V share parameters (Unified PCL) can weight them by eta_v / eta_pi; PCL's separate networks take
separate Adam steps with eta_pi and eta_v instead.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import optax

from polyak.algos.onpolicy.host import OnPolicyAlgorithm
from polyak.algos.onpolicy.learner import OnPolicyConfig, OnPolicySpec, PolicyGradientAgent, Rollout, compiled
from polyak.core.config import HyperparameterError, need
from polyak.core.optim import apply_gradients
from polyak.core.returns import dstep_segments, segment_last, segment_sum
from polyak.data.episodes import (
    EpisodeBuffer,
    EpisodeRows,
    episodes_init,
    episodes_push_many,
    episodes_sample,
    episodes_stored,
)


UNUSED_ON_POLICY_SETTINGS = ("gae_lambda", "vf_coef", "normalize_advantage")  # refused unless at their defaults


@dataclass(frozen=True)
class PCLConfig(OnPolicyConfig):
    may_be_infinite = frozenset({"max_grad_norm"})

    learning_rate: float = 1e-3  # eta_pi: the policy's Adam step size
    value_learning_rate: float = 5e-3  # eta_v: the value's, larger (V must track the soft values the policy changes)
    n_steps: int = 16  # on-policy sub-trajectory per env between updates
    d: int = 20  # the consistency's path length: segments of at most d steps
    alpha: float = 0.01  # entropy temperature (tau in the paper): weight of -log pi in C
    replay_capacity: int = 256  # episodes kept for replay; the oldest is overwritten
    max_episode_len: int = 500  # rows per stored episode; a longer one is stored in pieces (each cut like a time limit)
    replay_batch: int = 4  # episodes per replay gradient step
    replay_steps: int = 1  # replay gradient steps per rollout (0: on-policy PCL only)
    priority_temperature: float = 0.02  # lambda in P(episode) ~ exp(lambda R); 0: uniform
    replay_start: int = 8  # stored episodes before replay starts
    max_grad_norm: float = math.inf  # per-network global-norm clip (inf: none)
    ent_coef: float = 0.0  # not used: the entropy weight is alpha, inside C

    def validate(self) -> None:
        super().validate()
        need(self.value_learning_rate > 0, f"value_learning_rate must be > 0, got {self.value_learning_rate}")
        need(self.d >= 1, f"d (the path length) must be >= 1, got {self.d}")
        need(self.alpha >= 0, f"alpha (entropy temperature) must be >= 0, got {self.alpha}")
        need(self.replay_capacity >= 1, f"replay_capacity must be >= 1, got {self.replay_capacity}")
        need(self.max_episode_len >= 1, f"max_episode_len must be >= 1, got {self.max_episode_len}")
        need(self.replay_batch >= 1, f"replay_batch must be >= 1, got {self.replay_batch}")
        need(self.replay_steps >= 0, f"replay_steps must be >= 0, got {self.replay_steps}")
        need(self.priority_temperature >= 0,
             f"priority_temperature (lambda) must be >= 0, got {self.priority_temperature}")
        need(self.replay_start >= 1, f"replay_start must be >= 1, got {self.replay_start}")
        need(self.ent_coef == 0,
             f"ent_coef is not used by path consistency (its entropy weight is alpha), got {self.ent_coef}")
        # fields of the on-policy family's config that C has no place for: kept at their defaults (old model
        # files hold them), refused when set, so that a setting never goes silently unused
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in UNUSED_ON_POLICY_SETTINGS:
            need(getattr(self, name) == defaults[name],
                 f"{name} is not used by path consistency (no advantages; V's step size is value_learning_rate): "
                 f"remove the setting (got {getattr(self, name)!r})")


def consistency_errors(log_pi, value, next_value, reward, terminated, episode_end, d: int, gamma: float,
                       alpha: float):
    """C_i for every start row i of a time-major (T, ...) trajectory:

        C_i = -V(s_i) + gamma^k (1 - terminated_last) V(s'_last) + sum_{j<k} gamma^j (r_{i+j} - alpha log pi_{i+j})

    k <= d: the segment's length (`dstep_segments`: cut after the episode's end and at the last row), and
    s'_last the true next observation of its last row i + k - 1 (= s_{i+d} inside an episode).
    """
    segments = dstep_segments(episode_end, d)
    discounted = segment_sum(reward - alpha * log_pi, segments, gamma)
    bootstrap, k = segment_last((1.0 - terminated) * next_value, segments)
    return -value + gamma**k * bootstrap + discounted


class Trajectories(NamedTuple):
    """Time-major (T, B, ...) rows to take segments from, and which start rows count."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    episode_end: jax.Array
    weight: jax.Array  # 1.0: a segment starts here (0: padding)


class PCLState(NamedTuple):
    params: dict  # the agent's networks (PCL: policy, value, log_std; Unified PCL: q)
    opt_state: dict  # one optimiser state per parameter group
    n_updates: jax.Array
    replay: EpisodeBuffer


@dataclass(frozen=True)
class PathConsistencyAgent(PolicyGradientAgent):
    """The update, once. An agent supplies `log_pi_and_values` and `param_groups`."""

    cfg: PCLConfig
    n_envs: int = 1  # the episode buffer collects one episode per env

    # -- what an agent supplies -------------------------------------------------------------------
    def log_pi_and_values(self, params: dict, obs, action, next_obs):
        """(log pi(a|s), V(s), V(s')) for rows of (obs, action, next_obs)."""
        raise NotImplementedError

    @property
    def param_groups(self) -> dict[str, tuple[tuple[str, ...], float]]:
        """group -> (the params' keys it holds, its learning rate); one Adam per group."""
        raise NotImplementedError

    @property
    def value_gradient_weight(self) -> float:
        """Scales C dC/dV in the gradient (eta_v / eta_pi where pi and V share parameters)."""
        return 1.0

    # -- machinery -------------------------------------------------------------------------------
    @cached_property
    def optimizers(self) -> dict[str, optax.GradientTransformation]:
        clip = self.cfg.max_grad_norm

        def adam(lr):
            step = optax.adam(lr, eps=1e-5)
            return optax.chain(optax.clip_by_global_norm(clip), step) if math.isfinite(clip) else step

        return {group: adam(lr) for group, (_, lr) in self.param_groups.items()}

    def _group(self, params: dict, group: str) -> dict:
        return {k: params[k] for k in self.param_groups[group][0] if k in params}

    def init(self, key: jax.Array) -> PCLState:
        cfg = self.cfg
        params = self.init_params(key)
        opt_state = {g: self.optimizers[g].init(self._group(params, g)) for g in self.param_groups}
        replay = episodes_init(cfg.replay_capacity, cfg.max_episode_len, self.n_envs, self.obs_dim, self.act_dim)
        return PCLState(params, opt_state, jnp.zeros((), jnp.int32), replay)

    def consistency_loss(self, params: dict, x: Trajectories):
        """1/2 mean C^2 over the weighted start rows; its gradient C dC/d(policy) + w C dC/d(value)."""
        cfg, sg = self.cfg, jax.lax.stop_gradient
        log_pi, value, next_value = self.log_pi_and_values(params, x.obs, x.action, x.next_obs)
        c = lambda lp, v, nv: consistency_errors(lp, v, nv, x.reward, x.terminated, x.episode_end,  # noqa: E731
                                                 cfg.d, cfg.gamma, cfg.alpha)
        n = jnp.maximum(x.weight.sum(), 1.0)
        mean_sq = lambda e: 0.5 * jnp.sum(x.weight * e**2) / n  # noqa: E731
        error = c(log_pi, value, next_value)
        surrogate = mean_sq(c(log_pi, sg(value), sg(next_value))) + self.value_gradient_weight * mean_sq(
            c(sg(log_pi), value, next_value))
        metrics = {"consistency_loss": sg(mean_sq(error)),
                   "entropy_estimate": -jnp.sum(x.weight * sg(log_pi)) / n}
        return surrogate, metrics

    def consistency_step(self, state: PCLState, x: Trajectories):
        """One step per parameter group on the consistency loss."""
        (_, metrics), grads = jax.value_and_grad(self.consistency_loss, has_aux=True)(state.params, x)
        params, opt_state = dict(state.params), {}
        for g in self.param_groups:
            new, opt_state[g] = apply_gradients(self.optimizers[g], self._group(params, g), self._group(grads, g),
                                                state.opt_state[g])
            params.update(new)
        metrics = dict(metrics, grad_norm=optax.tree.norm(grads))
        return state._replace(params=params, opt_state=opt_state, n_updates=state.n_updates + 1), metrics

    def update(self, state: PCLState, rollout: Rollout, key: jax.Array):
        cfg = self.cfg
        # 1. on-policy: the rollout's d-step segments (cut at episode ends and at the rollout's end)
        state, on_policy = self.consistency_step(state, Trajectories(
            rollout.obs, rollout.action, rollout.reward, rollout.next_obs, rollout.terminated, rollout.episode_end,
            jnp.ones_like(rollout.reward)))
        # 2. store: the rollout's steps; episodes that ended become sampleable, R = their summed reward
        replay = episodes_push_many(state.replay, EpisodeRows(rollout.obs, rollout.action, rollout.reward,
                                                              rollout.next_obs, rollout.terminated),
                                    rollout.episode_end)
        state = state._replace(replay=replay)

        # 3. replay: whole episodes drawn with P ~ exp(lambda R), one step on their segments each time
        def replay_step(state, k):
            batch = episodes_sample(state.replay, k, cfg.replay_batch, cfg.priority_temperature)
            t_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731  (B, L, ...) -> (L, B, ...)
            rows = jax.tree.map(t_major, batch.rows)
            return self.consistency_step(state, Trajectories(*rows, t_major(batch.episode_end),
                                                             t_major(batch.valid).astype(jnp.float32)))

        def replay_phase(state):
            state, metrics = jax.lax.scan(replay_step, state, jax.random.split(key, cfg.replay_steps))
            return state, {k: v.mean() for k, v in metrics.items()}

        skip_metrics = {k: jnp.zeros_like(v) for k, v in on_policy.items()}
        if cfg.replay_steps > 0:
            state, replayed = jax.lax.cond(episodes_stored(replay) >= cfg.replay_start, replay_phase,
                                           lambda s: (s, skip_metrics), state)
        else:
            replayed = skip_metrics
        metrics = {**on_policy, **{f"replay_{k}": v for k, v in replayed.items()},
                   "replay_episodes": episodes_stored(replay).astype(jnp.float32)}
        return state, metrics


class PathConsistencyAlgorithm(OnPolicyAlgorithm):
    """The on-policy model class with the agent built for n_envs (its episode buffer collects one per env)."""

    def _build(self, obs_dim: int, action_space: gym.Space, n_envs: int) -> None:
        if self.config.replay_capacity < n_envs:
            raise HyperparameterError(f"replay_capacity ({self.config.replay_capacity}) must be >= n_envs ({n_envs}): "
                                      "every env may finish an episode at the same step")
        self.agent = self.agent_cls(self.config, obs_dim, *self._action_layout(action_space), n_envs)
        self.spec = OnPolicySpec(self.agent, n_envs)
        self._fns = compiled(self.spec)
