"""The off-policy actor-critic machinery shared by DDPG, TD3, SAC (and their descendants).

An algorithm supplies a hashable *agent* object with three pure functions:
    init(key) -> agent_state
    act(agent_state, obs, key, deterministic) -> action in [-1, 1]
    update(agent_state, batch, key) -> (agent_state, metrics)
Agents for Discrete actions (value-based: DQN) also define
    n_actions                                    the action index travels as one float column (act_dim = 1)
    random_action(key, n) -> (n, act_dim)        warm-up actions (default: uniform in [-1, 1])
    explore(agent_state, action, key, step)      exploration on the device from the env-step counter
                                                 (epsilon-greedy; actor-critics get `noise` instead)
    start_run(agent_state, total_timesteps)      fixes schedules that depend on the run's length
    critic_values(agent_state, obs, action)      Q(s, a) of the taken actions, (n_critics, n)
Everything else lives here, once: the `Learner` pytree (agent state, replay buffer, observation
normaliser, exploration-noise state, RNG key, diagnostics), the jitted environment step (buffer
write + K gradient steps under `lax.scan` + next action, one donated call), the host loop over
Gymnasium environments, and the off-policy part of the SB3-style class API (the rest, checkpoints
included, is `algorithm.Algorithm`'s).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from polyak.core.config import OffPolicyConfig
from polyak.core.normalizer import RunningMeanStd, rms_init, rms_normalize, rms_update
from polyak.core.returns import NStepWindow, nstep_init, nstep_push
from polyak.core.types import Transition
from polyak.data.buffer import ReplayBuffer, buffer_add, buffer_init, buffer_sample


class Monitor(NamedTuple):
    """Diagnostics kept on the device so the host only syncs at log intervals."""

    metrics: dict[str, jax.Array]  # means over the last training phase's gradient steps
    reward_abs_max: jax.Array  # largest |scaled reward| seen: with gamma it bounds |Q|
    q_abs_max: jax.Array  # largest |Q(s, a)| on a training batch so far
    q_exceed_step: jax.Array  # first env step where |Q| exceeded the bound (-1: never)
    nonfinite_step: jax.Array  # first env step where a loss/metric was NaN or inf (-1: never)
    nonfinite_code: jax.Array  # bit i set: sorted(metrics)[i] was not finite


class Learner(NamedTuple):
    agent: Any
    buffer: ReplayBuffer | None
    obs_rms: RunningMeanStd
    noise: jax.Array
    key: jax.Array
    step: jax.Array  # environment transitions so far
    monitor: Monitor
    window: NStepWindow | None = None  # pending steps of n-step returns (None: one-step rows)


@dataclass(frozen=True)
class LoopSpec:
    """Static (hashable) description of the jitted loop: the agent plus loop-level settings."""

    agent: Any
    noise: Any  # NormalActionNoise | OrnsteinUhlenbeckActionNoise | None
    n_envs: int

    @property
    def cfg(self) -> OffPolicyConfig:
        return self.agent.cfg

    @property
    def act_dim(self) -> int:
        return self.agent.act_dim

    @property
    def obs_dim(self) -> int:
        return self.agent.obs_dim

    @property
    def n_steps(self) -> int:
        """Steps summed per replay row (n-step returns); 1 for the actor-critics."""
        return int(getattr(self.cfg, "n_steps", 1))

    # Column layout of the packed host->device array, one row per env. Discrete actions: one
    # column holding the action index (exact as float32 below 2^24).
    def columns(self) -> dict[str, slice]:
        o, a = self.obs_dim, self.act_dim
        sizes = {"obs": o, "action": a, "reward": 1, "next_obs": o, "terminated": 1, "truncated": 1, "valid": 1,
                 "act_obs": o, "episode_start": 1, "random": 1}
        out, start = {}, 0
        for name, size in sizes.items():
            out[name] = slice(start, start + size)
            start += size
        return out


def _unpack(spec: LoopSpec, packed: jax.Array) -> dict[str, jax.Array]:
    cols = {k: packed[:, s] for k, s in spec.columns().items()}
    for k in ("reward", "terminated", "truncated", "valid", "episode_start", "random"):
        cols[k] = cols[k][:, 0]
    return cols


def _explore(spec: LoopSpec, learner: Learner, act_obs, episode_start, random) -> tuple[Learner, jax.Array]:
    """Update the normaliser with the new observations and choose the next (exploratory) action."""
    cfg = spec.cfg
    rms = rms_update(learner.obs_rms, act_obs, cfg.normalize_obs)
    key, k_act, k_noise, k_random = jax.random.split(learner.key, 4)
    action = spec.agent.act(learner.agent, rms_normalize(rms, act_obs, enabled=cfg.normalize_obs), k_act, False)
    noise_state = learner.noise
    if spec.noise is not None:
        noise, noise_state = spec.noise.sample(learner.noise, k_noise, episode_start > 0)
        action = jnp.clip(action + noise, -1.0, 1.0)
    if hasattr(spec.agent, "explore"):  # e.g. epsilon-greedy, from the env-step counter
        action = spec.agent.explore(learner.agent, action, k_noise, learner.step)
    if hasattr(spec.agent, "random_action"):
        uniform = spec.agent.random_action(k_random, action.shape[0])
    else:
        uniform = jax.random.uniform(k_random, action.shape, minval=-1.0, maxval=1.0)
    action = jnp.where(random[:, None] > 0, uniform, action)
    return learner._replace(obs_rms=rms, key=key, noise=noise_state), action


def first_action(spec: LoopSpec, learner: Learner, obs, random) -> tuple[Learner, jax.Array]:
    return _explore(spec, learner, obs, jnp.ones(obs.shape[0]), jnp.full(obs.shape[0], random))


def store_step(spec: LoopSpec, buffer: ReplayBuffer, window: NStepWindow | None,
               packed: jax.Array) -> tuple[ReplayBuffer, NStepWindow | None]:
    """Write one vector-env step's transitions into the replay buffer; with n-step returns they
    pass through the window (`boundaries.nstep_push`) and the rows it completes are written."""
    x = _unpack(spec, packed)
    rows = Transition(x["obs"], x["action"], x["reward"] * spec.cfg.reward_scale, x["next_obs"], x["terminated"])
    if window is None:
        return buffer_add(buffer, rows, x["valid"] > 0), None
    window, rows, write = nstep_push(window, rows, x["truncated"], x["valid"], spec.cfg.gamma)
    return buffer_add(buffer, rows, write), window


def train_step(spec: LoopSpec, n_grad: int, learner: Learner, packed: jax.Array):
    """Count the step, run `n_grad` gradient steps on batches from the buffer, pick the next action.

    Kept apart from `store_step`: when the buffer write and the batch gathers share one XLA
    program, XLA copies the whole donated buffer on every call (measured: +2 ms per step at 1e6 rows).
    """
    cfg, x = spec.cfg, _unpack(spec, packed)
    agent, key = learner.agent, learner.key
    valid = x["valid"] > 0
    step = learner.step + valid.sum().astype(jnp.int32)
    reward_abs_max = jnp.where(valid, jnp.abs(x["reward"] * cfg.reward_scale), 0.0).max()
    monitor = learner.monitor._replace(reward_abs_max=jnp.maximum(learner.monitor.reward_abs_max, reward_abs_max))
    if n_grad > 0:
        # All batches are sampled up front (a buffer closed over by the scan body is copied into the loop).
        key, k_batch = jax.random.split(key)
        batches = jax.vmap(lambda k: buffer_sample(learner.buffer, k, cfg.batch_size))(jax.random.split(k_batch, n_grad))
        normalize = functools.partial(rms_normalize, learner.obs_rms, enabled=cfg.normalize_obs)
        batches = batches._replace(obs=normalize(batches.obs), next_obs=normalize(batches.next_obs))

        def gradient_step(carry, batch):
            agent_state, key = carry
            key, k_update = jax.random.split(key)
            agent_state, metrics = spec.agent.update(agent_state, batch, k_update)
            return (agent_state, key), metrics

        (agent, key), metrics = jax.lax.scan(gradient_step, (agent, key), batches, unroll=n_grad == 1)
        q_abs_max = metrics["q_abs_max"].max()
        metrics = {k: v.mean() for k, v in metrics.items()}
        metrics["q_abs_max"] = q_abs_max
        monitor = _check(spec, monitor, metrics, step)
    learner = learner._replace(agent=agent, key=key, step=step, monitor=monitor)
    learner, action = _explore(spec, learner, x["act_obs"], x["episode_start"], x["random"])
    return learner, action, learner.monitor.nonfinite_step


def _check(spec: LoopSpec, monitor: Monitor, metrics: dict, step) -> Monitor:
    names = sorted(metrics)
    bad = jnp.stack([~jnp.isfinite(metrics[k]) for k in names])
    code = jnp.sum(jnp.where(bad, 2 ** jnp.arange(len(names)), 0)).astype(jnp.int32)
    first_bad = (monitor.nonfinite_step < 0) & bad.any()
    # |Q| <= (max |r| + soft bonus) / (1 - gamma); SAC's soft bonus is alpha * entropy per step.
    gamma = spec.cfg.gamma
    soft_bonus = metrics.get("alpha", 0.0) * jnp.abs(metrics.get("entropy", 0.0))
    bound = (monitor.reward_abs_max + soft_bonus) / (1.0 - gamma) if gamma < 1 else jnp.inf
    exceed = (monitor.q_exceed_step < 0) & (metrics["q_abs_max"] > bound)
    return monitor._replace(
        metrics=metrics,
        q_abs_max=jnp.maximum(monitor.q_abs_max, metrics["q_abs_max"]),
        q_exceed_step=jnp.where(exceed, step, monitor.q_exceed_step),
        nonfinite_step=jnp.where(first_bad, step, monitor.nonfinite_step),
        nonfinite_code=jnp.where(first_bad, code, monitor.nonfinite_code))


def policy_action(spec: LoopSpec, agent_state, obs_rms, obs, key, deterministic: bool):
    obs = rms_normalize(obs_rms, obs, enabled=spec.cfg.normalize_obs)
    return spec.agent.act(agent_state, obs, key, deterministic)


def critic_values(spec: LoopSpec, agent_state, obs_rms, obs, action):
    """Q_j(s, a) of every online critic, shape (n, n_critics), in the env's reward units.

    `obs` raw (normalised here with the given, frozen statistics), `action` in [-1, 1]. The
    critics learn scaled rewards, so their output is divided by `reward_scale`.
    """
    obs = rms_normalize(obs_rms, obs, enabled=spec.cfg.normalize_obs)
    if hasattr(spec.agent, "critic_values"):  # value-based agents: Q(s, .) at the taken action
        return spec.agent.critic_values(agent_state, obs, action).T / spec.cfg.reward_scale
    return spec.agent.critic.apply(agent_state.critic_params, obs, action).T / spec.cfg.reward_scale


def init_learner(spec: LoopSpec, key: jax.Array, with_buffer: bool = True) -> Learner:
    """A fresh Learner for `spec` (pure: jittable and vmappable over keys)."""
    cfg, agent = spec.cfg, spec.agent
    k_agent, k_loop = jax.random.split(key)
    agent_state = agent.init(k_agent)
    row = new_buffer(spec, 1).data
    metric_shapes = jax.eval_shape(
        agent.update, agent_state, jax.tree.map(lambda x: jnp.zeros((cfg.batch_size,) + x.shape[1:], x.dtype), row),
        k_loop)[1]
    metrics = {k: jnp.zeros(v.shape, v.dtype) for k, v in metric_shapes.items()}
    minus_one = jnp.asarray(-1, jnp.int32)
    monitor = Monitor(metrics, jnp.zeros(()), jnp.zeros(()), minus_one, minus_one, jnp.zeros((), jnp.int32))
    noise = (spec.noise.init(spec.n_envs, agent.act_dim) if spec.noise is not None
             else jnp.zeros((spec.n_envs, agent.act_dim)))
    buffer = new_buffer(spec, cfg.buffer_size) if with_buffer else None
    window = nstep_init(spec.n_envs, spec.n_steps, agent.obs_dim, agent.act_dim) if spec.n_steps > 1 else None
    return Learner(agent_state, buffer, rms_init(agent.obs_dim), noise, k_loop, jnp.zeros((), jnp.int32), monitor,
                   window)


def q_divergence_message(monitor: Monitor, gamma: float) -> str | None:
    """The warning for a monitor (on the host) whose |Q| has exceeded max|r|/(1-gamma); None if it has not."""
    if int(monitor.q_exceed_step) < 0:
        return None
    bound = float(monitor.reward_abs_max) / (1 - gamma) if gamma < 1 else math.inf
    return (f"possible Q-value divergence: |Q| exceeded the bound max|r|/(1-gamma) ~ {bound:.4g} implied by the "
            f"rewards seen and gamma={gamma}, first at environment step {int(monitor.q_exceed_step)} "
            f"(max |Q| so far {float(monitor.q_abs_max):.4g})")


def new_buffer(spec: LoopSpec, capacity: int) -> ReplayBuffer:
    """An empty replay buffer for `spec` (with the n-step discount column when n_steps > 1)."""
    return buffer_init(capacity, spec.obs_dim, spec.act_dim, with_discount=spec.n_steps > 1)


@functools.lru_cache(maxsize=64)
def compiled(spec: LoopSpec):
    """Jitted functions for one LoopSpec, shared across instances with equal specs."""
    return {
        "init": jax.jit(functools.partial(init_learner, spec), static_argnums=1),
        "first_action": jax.jit(functools.partial(first_action, spec), donate_argnums=0),
        "store": jax.jit(functools.partial(store_step, spec), donate_argnums=(0, 1)),
        "train": functools.lru_cache(maxsize=8)(
            lambda n: jax.jit(functools.partial(train_step, spec, n), donate_argnums=0)),
        "predict": jax.jit(functools.partial(policy_action, spec), static_argnums=4),
        "q": jax.jit(functools.partial(critic_values, spec)),
    }


# --------------------------------------------------------------------------------------------
# The SB3-style class
# --------------------------------------------------------------------------------------------


