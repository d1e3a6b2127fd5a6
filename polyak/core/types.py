"""The data types every layer shares: replay rows (one-step and n-step) and the agent protocol.

An *agent* is a frozen (hashable) dataclass of hyperparameters and space sizes whose methods are pure
functions of an explicit state pytree. Being hashable it is a static argument of `jax.jit`; being pure,
its `update` serves a host loop, a `lax.scan` over gradient steps, a fully jitted loop over a JAX
environment and `jax.vmap` over seeds without change. Every agent subclasses `Agent`, which gives the
optional hooks their defaults, so the machinery calls them unconditionally and never asks whether an
agent has one.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import jax


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array  # 1.0 where the episode ended in a terminal state (no bootstrap)


class NStepTransition(NamedTuple):
    """An n-step row (`boundaries.nstep_push`): `reward` is the discounted sum of k <= n rewards (fewer
    where the episode ended inside the window), `next_obs` the observation k steps later."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    discount: jax.Array  # gamma^k: the bootstrap discount of this row


class UpdateInfo(NamedTuple):
    """What the machinery reads from one gradient step of a replay agent, besides the metrics it only logs.

    The monitor bounds |Q| by (max |r| + soft_bonus) / (1 - gamma): a critic beyond it is diverging.
    """

    q_abs_max: jax.Array | float = 0.0  # max |Q(s, a)| over the batch (0: no critic)
    soft_bonus: jax.Array | float = 0.0  # value per step the target adds to the reward (SAC: alpha |H|)


class Agent:
    """The agent protocol. Required, pure:

        init(key) -> state                                   a pytree (params, optimiser states, counters)
        act(state, obs, key, deterministic)                  replay agents: the action in [-1, 1] (Discrete:
                                                             the index as one float column); on-policy agents:
                                                             (action, log pi(action | s)), stored in the rollout
        update(state, data, key)                             replay agents: one gradient step on a batch of
                                                             Transitions -> (state, metrics, UpdateInfo);
                                                             on-policy agents: one update on a whole Rollout
                                                             -> (state, metrics). metrics: scalars, logged only

    Hooks, with defaults (override where the algorithm needs them):

        explore(state, action, key, step)      exploration on the device from the env-step counter (DQN's
                                               epsilon-greedy); default: the action unchanged (actor-critics
                                               get the loop's action noise instead)
        random_action(key, n)                  warm-up actions; default: uniform in [-1, 1]^act_dim
        return_steps                           rewards summed per replay row (n-step returns); default 1
        start_run(state, total_timesteps)      schedules that depend on the run's length; default: unchanged
        q_values(state, obs, action)           Q_j(s, a) of every online critic, (n_critics, n), for the monitor
                                               and predict_q; only where `has_critic` (default: none)
        entropy_temperature(state)             alpha of a maximum-entropy agent, whose critic learns the soft
                                               value; default None (no entropy bonus)
        policy_entropy(state, obs, key)        H(pi(.|s)) per observation, for agents with a temperature
    """

    obs_dim: int
    act_dim: int
    has_critic: ClassVar[bool] = False  # q_values exists: a Q(s, a) critic to monitor and evaluate

    @property
    def return_steps(self) -> int:
        """Rewards summed per replay row (n-step returns); 1: one-step rows."""
        return 1

    def init(self, key: jax.Array) -> Any:
        raise NotImplementedError

    def act(self, state: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> Any:
        raise NotImplementedError

    def update(self, state: Any, data: Any, key: jax.Array) -> tuple:
        raise NotImplementedError

    def explore(self, state: Any, action: jax.Array, key: jax.Array, step: jax.Array) -> jax.Array:
        return action

    def random_action(self, key: jax.Array, n: int) -> jax.Array:
        return jax.random.uniform(key, (n, self.act_dim), minval=-1.0, maxval=1.0)

    def start_run(self, state: Any, total_timesteps: int) -> Any:
        return state

    def q_values(self, state: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} has no Q(s, a) critic (has_critic is False)")

    def entropy_temperature(self, state: Any) -> jax.Array | None:
        return None

    def policy_entropy(self, state: Any, obs: jax.Array, key: jax.Array) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} has no entropy temperature")
