"""The off-policy machinery shared by DDPG, TD3, SAC, DQN (and their descendants): the learner and its phases.

An algorithm supplies an agent (`polyak.core.types.Agent`): `init`, `act`, and
`update(state, batch, key) -> (state, metrics, UpdateInfo)`, one gradient step on a batch of replay
rows; its hooks `explore`, `random_action`, `start_run` and `q_values` have defaults there.
Everything else lives here, once:

* `Learner`: the whole training state as one pytree (agent state, replay buffer, observation
  normaliser, exploration-noise state, RNG key, transition counter, `Monitor`, n-step window).
* Three pure phases:
      store_step(packed)      write one vector-env step's transitions into the buffer
      update_phase(n)         n gradient steps on batches sampled from the buffer, under `lax.scan`;
                              the monitor records them. No env column, no action: an offline loop
                              runs it over a fixed buffer as is
      explore(obs)            normaliser update and the next exploratory action (noise, epsilon, warm-up)
  `train_step` = count the step and widen the reward bound -> update_phase -> explore. Per environment
  step the host loop makes two donated jitted calls, store_step and train_step, and syncs only the
  action and one int (the first non-finite step); the jitted loop composes the same functions.
  With `act_before_update` the two calls are `store_and_act` (store, count, explore) and then
  `update_phase`: the action is ready before the update starts, and the host steps the envs while
  the update runs (the acting policy is one gradient step behind SB3's order).

Observations are stored raw and normalised when sampled, with the statistics of the moment, so the
normaliser can keep adapting without stale rows in the buffer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from polyak.algos.packing import Columns
from polyak.core.config import OffPolicyConfig
from polyak.core.monitor import Diagnostics, Monitor, check_update, monitor_init, observe_rewards
from polyak.core.normalizer import RunningMeanStd, rms_init, rms_normalize, rms_update
from polyak.core.returns import NStepWindow, nstep_init, nstep_push
from polyak.core.types import Transition, UpdateInfo
from polyak.data.buffer import ReplayBuffer, buffer_add, buffer_init, buffer_sample


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
    """Static (hashable) description of the jitted steps: the agent plus loop-level settings."""

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
        return self.agent.return_steps

    @cached_property
    def columns(self) -> Columns:
        """The packed host->device array of one step, one row per env: the transition (obs, action,
        reward, next_obs, flags), the observation to act on next and its flags."""
        o, a = (self.obs_dim,), (self.act_dim,)
        return Columns.of(obs=o, action=a, reward=(), next_obs=o, terminated=(), truncated=(), valid=(),
                          act_obs=o, episode_start=(), random=())


def explore(spec: LoopSpec, learner: Learner, act_obs, episode_start, random) -> tuple[Learner, jax.Array]:
    """Update the normaliser with the new observations and choose the next (exploratory) action:
    the policy's, plus action noise, through the agent's `explore`; uniform where `random` (warm-up)."""
    cfg = spec.cfg
    rms = rms_update(learner.obs_rms, act_obs, cfg.normalize_obs)
    key, k_act, k_noise, k_random = jax.random.split(learner.key, 4)
    action = spec.agent.act(learner.agent, rms_normalize(rms, act_obs, enabled=cfg.normalize_obs), k_act, False)
    noise_state = learner.noise
    if spec.noise is not None:
        noise, noise_state = spec.noise.sample(learner.noise, k_noise, episode_start > 0)
        action = jnp.clip(action + noise, -1.0, 1.0)
    action = spec.agent.explore(learner.agent, action, k_noise, learner.step)
    action = jnp.where(random[:, None] > 0, spec.agent.random_action(k_random, action.shape[0]), action)
    return learner._replace(obs_rms=rms, key=key, noise=noise_state), action


def first_action(spec: LoopSpec, learner: Learner, obs, random) -> tuple[Learner, jax.Array]:
    return explore(spec, learner, obs, jnp.ones(obs.shape[0]), jnp.full(obs.shape[0], random))


def store_step(spec: LoopSpec, buffer: ReplayBuffer, window: NStepWindow | None,
               packed: jax.Array) -> tuple[ReplayBuffer, NStepWindow | None]:
    """Write one vector-env step's transitions into the replay buffer; with n-step returns they
    pass through the window (`returns.nstep_push`) and the rows it completes are written."""
    x = spec.columns.unpack(packed)
    rows = Transition(x["obs"], x["action"], x["reward"] * spec.cfg.reward_scale, x["next_obs"], x["terminated"])
    if window is None:
        return buffer_add(buffer, rows, x["valid"] > 0), None
    window, rows, write = nstep_push(window, rows, x["truncated"], x["valid"], spec.cfg.gamma)
    return buffer_add(buffer, rows, write), window


def phase_summary(metrics: dict[str, jax.Array], info: UpdateInfo) -> tuple[dict[str, jax.Array], UpdateInfo]:
    """A phase's per-step metrics and UpdateInfo (leading axis: gradient steps) -> the metrics to log
    (means, and the phase's largest |Q| as the `q_abs_max` column) and the UpdateInfo for the monitor."""
    q_abs_max = jnp.max(info.q_abs_max)
    return ({**{k: v.mean() for k, v in metrics.items()}, "q_abs_max": q_abs_max},
            UpdateInfo(q_abs_max, jnp.mean(info.soft_bonus)))


def update_phase(spec: LoopSpec, n_grad: int, learner: Learner) -> Learner:
    """`n_grad` gradient steps: sample the batches from the learner's buffer, normalise them with the
    current statistics, run `agent.update` under `lax.scan`, record the phase in the monitor."""
    cfg = spec.cfg
    # All batches are sampled up front (a buffer closed over by the scan body is copied into the loop).
    key, k_batch = jax.random.split(learner.key)
    batches = jax.vmap(lambda k: buffer_sample(learner.buffer, k, cfg.batch_size))(jax.random.split(k_batch, n_grad))
    normalize = functools.partial(rms_normalize, learner.obs_rms, enabled=cfg.normalize_obs)
    batches = batches._replace(obs=normalize(batches.obs), next_obs=normalize(batches.next_obs))

    def gradient_step(carry, batch):
        agent_state, key = carry
        key, k_update = jax.random.split(key)
        agent_state, metrics, info = spec.agent.update(agent_state, batch, k_update)
        return (agent_state, key), (metrics, info)

    (agent, key), (metrics, info) = jax.lax.scan(gradient_step, (learner.agent, key), batches, unroll=n_grad == 1)
    metrics, info = phase_summary(metrics, info)
    monitor = check_update(learner.monitor, metrics, info, learner.step, cfg.gamma)
    return learner._replace(agent=agent, key=key, monitor=monitor)


def count_step(spec: LoopSpec, learner: Learner, x: dict[str, jax.Array]) -> Learner:
    """Count the step's valid transitions and widen the monitor's reward bound with their rewards."""
    valid = x["valid"] > 0
    return learner._replace(step=learner.step + valid.sum().astype(jnp.int32),
                            monitor=observe_rewards(learner.monitor, x["reward"] * spec.cfg.reward_scale, valid))


def train_step(spec: LoopSpec, n_grad: int, learner: Learner, packed: jax.Array):
    """Count the step and widen the reward bound, run `n_grad` gradient steps, pick the next action.

    Returns (learner, action, first non-finite step): the host syncs the action and that int. Kept
    apart from `store_step`: when the buffer write and the batch gathers share one XLA program, XLA
    copies the whole donated buffer on every call (BENCHMARKS.md, 'Where the time goes').
    """
    x = spec.columns.unpack(packed)
    learner = count_step(spec, learner, x)
    if n_grad > 0:
        learner = update_phase(spec, n_grad, learner)
    learner, action = explore(spec, learner, x["act_obs"], x["episode_start"], x["random"])
    return learner, action, learner.monitor.nonfinite_step


def store_and_act(spec: LoopSpec, learner: Learner, packed: jax.Array):
    """`act_before_update`'s first call: store the step, count it, pick the next action, all before the
    step's gradient update (`update_phase`, the second call), so the host can step the envs while the
    update runs. No batch is gathered here, so the buffer write and the rest share one program without
    a copy of the buffer. Returns (learner, action, first non-finite step so far)."""
    x = spec.columns.unpack(packed)
    buffer, window = store_step(spec, learner.buffer, learner.window, packed)
    learner = count_step(spec, learner._replace(buffer=buffer, window=window), x)
    learner, action = explore(spec, learner, x["act_obs"], x["episode_start"], x["random"])
    return learner, action, learner.monitor.nonfinite_step


def diagnostics(learner: Learner) -> Diagnostics:
    """The learner's metrics and checks in the shape every family's loop reads (`core.monitor`)."""
    m = learner.monitor
    return Diagnostics(m.metrics, m.nonfinite_step, m.nonfinite_code, m)


def policy_action(spec: LoopSpec, agent_state, obs_rms, obs, key, deterministic: bool):
    obs = rms_normalize(obs_rms, obs, enabled=spec.cfg.normalize_obs)
    return spec.agent.act(agent_state, obs, key, deterministic)


def critic_values(spec: LoopSpec, agent_state, obs_rms, obs, action):
    """Q_j(s, a) of every online critic, shape (n, n_critics), in the env's reward units.

    `obs` raw (normalised here with the given, frozen statistics), `action` in [-1, 1]. The
    critics learn scaled rewards, so their output is divided by `reward_scale`.
    """
    obs = rms_normalize(obs_rms, obs, enabled=spec.cfg.normalize_obs)
    return spec.agent.q_values(agent_state, obs, action).T / spec.cfg.reward_scale


def init_learner(spec: LoopSpec, key: jax.Array, with_buffer: bool = True) -> Learner:
    """A fresh Learner for `spec` (pure: jittable and vmappable over keys)."""
    cfg, agent = spec.cfg, spec.agent
    k_agent, k_loop = jax.random.split(key)
    agent_state = agent.init(k_agent)
    batch = jax.tree.map(lambda x: jnp.zeros((cfg.batch_size,) + x.shape[1:], x.dtype), new_buffer(spec, 1).data)

    def one_phase(state, batch, key):  # the monitor's metrics: those of a phase of one gradient step
        _, metrics, info = agent.update(state, batch, key)
        return phase_summary(*jax.tree.map(lambda x: jnp.asarray(x)[None], (metrics, info)))[0]

    metric_shapes = jax.eval_shape(one_phase, agent_state, batch, k_loop)
    monitor = monitor_init({k: jnp.zeros(v.shape, v.dtype) for k, v in metric_shapes.items()})
    noise = (spec.noise.init(spec.n_envs, agent.act_dim) if spec.noise is not None
             else jnp.zeros((spec.n_envs, agent.act_dim)))
    buffer = new_buffer(spec, cfg.buffer_size) if with_buffer else None
    window = nstep_init(spec.n_envs, spec.n_steps, agent.obs_dim, agent.act_dim) if spec.n_steps > 1 else None
    return Learner(agent_state, buffer, rms_init(agent.obs_dim), noise, k_loop, jnp.zeros((), jnp.int32), monitor,
                   window)


def new_buffer(spec: LoopSpec, capacity: int) -> ReplayBuffer:
    """An empty replay buffer for `spec` (with the n-step discount column when n_steps > 1)."""
    return buffer_init(capacity, spec.obs_dim, spec.act_dim, with_discount=spec.n_steps > 1)


class AgentKept:
    """`jax.jit(fn)` over `fn(learner, *args)` that donates the learner except its agent state.

    For the calls that run gradient steps. Donating the replay buffer (and the rest) lets XLA update or pass it in
    place; donating the agent state too makes XLA write each new parameter into its old buffer, and where an old
    value must outlive that write it inserts a copy, which costs more than fresh output buffers once the critics
    are wide (BENCHMARKS.md, "CrossQ's update")."""

    def __init__(self, fn: Callable) -> None:
        self._jit = jax.jit(lambda agent, rest, *args: fn(rest._replace(agent=agent), *args), donate_argnums=1)

    def __call__(self, learner: Learner, *args):
        return self._jit(learner.agent, learner._replace(agent=None), *args)

    def lower(self, learner: Learner, *args):
        return self._jit.lower(learner.agent, learner._replace(agent=None), *args)


def _train_fn(spec: LoopSpec, n_grad: int):
    """The jitted train_step with `n_grad` gradient steps; with none (collect only) the agent passes through, so the
    whole learner is donated."""
    step = functools.partial(train_step, spec, n_grad)
    return AgentKept(step) if n_grad > 0 else jax.jit(step, donate_argnums=0)


@functools.lru_cache(maxsize=64)
def compiled(spec: LoopSpec):
    """Jitted functions for one LoopSpec, shared across instances with equal specs."""
    return {
        "init": jax.jit(functools.partial(init_learner, spec), static_argnums=1),
        "first_action": jax.jit(functools.partial(first_action, spec), donate_argnums=0),
        "store": jax.jit(functools.partial(store_step, spec), donate_argnums=(0, 1)),
        "train": functools.lru_cache(maxsize=8)(functools.partial(_train_fn, spec)),
        "store_and_act": jax.jit(functools.partial(store_and_act, spec), donate_argnums=0),
        "update_phase": functools.lru_cache(maxsize=8)(lambda n: AgentKept(functools.partial(update_phase, spec, n))),
        "predict": jax.jit(functools.partial(policy_action, spec), static_argnums=4),
        "q": jax.jit(functools.partial(critic_values, spec)),
    }
