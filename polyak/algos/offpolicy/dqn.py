"""DQN (Mnih et al. 2015) and Double DQN (van Hasselt et al. 2016), with n-step returns.

Per gradient step, on a batch of k-step rows (s, a, G, s'', d, gamma^k) from the replay buffer
(G = sum_{j<k} gamma^j r_{t+j}; k = n_steps, or fewer where the episode ended inside the window;
s'' the observation k steps later; see `boundaries.nstep_push`; n_steps = 1 gives (s, a, r, s', d)):
  1. target       DQN:         y = G + gamma^k (1 - d) max_a' Q'(s'', a')
                  Double DQN:  y = G + gamma^k (1 - d) Q'(s'', argmax_a' Q(s'', a'))
                  (the online network chooses a', the target network evaluates it)
  2. loss         L = mean l(Q(s, a) - y),  l = Huber (delta = 1) or 1/2 x^2 ("mse");
                  one Adam step on the gradient clipped to global norm max_grad_norm; its step size is
                  learning_rate, or, with learning_rate_decay_steps = K > 0, falls linearly from
                  learning_rate to learning_rate_final over the first K gradient steps and stays there
                  (`optax.linear_schedule`, counted by Adam's step counter, so a checkpoint resumes it;
                  like RL Zoo's "lin_1e-3", but over a fixed number of gradient steps and to a floor,
                  so a longer run ends with a small step size instead of forgetting; default: constant)
  3. target net   every `target_update_interval` gradient steps: theta' <- tau theta + (1 - tau) theta'
                  (tau = 1, the default: a hard copy)
Acting: epsilon-greedy on Q(s, .). epsilon falls linearly from exploration_initial_eps to
exploration_final_eps over the first exploration_fraction of the run's environment steps; it is
computed on the device from the learner's step counter, so the host loop, the fully jitted loop
and vmap over seeds explore alike. During the warm-up (learning_starts) actions are uniform.

Everything else (replay buffer, warm-up, train_freq and gradient_steps (the UTD ratio), observation
normaliser, checkpoints, host and jitted loops) is the off-policy machinery (`offpolicy/learner.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from polyak.algos.offpolicy.host import OffPolicyAlgorithm
from polyak.algos.registry import register
from polyak.core.config import HyperparameterError, OffPolicyConfig
from polyak.core.losses import bootstrap_target, polyak_average
from polyak.core.networks import MLP
from polyak.core.optim import gradient_step
from polyak.core.types import Agent, NStepTransition, Transition, UpdateInfo


@dataclass(frozen=True)
class DQNConfig(OffPolicyConfig):
    """Stable-Baselines3's DQN defaults; tuned values per environment are in polyak/zoo.py.

    Unlike SB3, `target_update_interval` counts gradient steps (as SAC's does), not env steps;
    SB3's 10_000 env steps at train_freq=4 are 2_500 gradient steps. The Q-network's hidden
    widths are `critic_hidden` (policy_kwargs=dict(net_arch=[...]) sets them).
    """

    learning_rate: float = 1e-4
    learning_starts: int = 100
    batch_size: int = 32
    tau: float = 1.0  # 1: hard copy every target_update_interval gradient steps; < 1: Polyak averaging
    train_freq: int = 4
    actor_hidden: tuple[int, ...] = ()  # no actor
    critic_hidden: tuple[int, ...] = (64, 64)  # the Q-network
    n_critics: int = 1
    target_update_interval: int = 2_500  # gradient steps between target updates
    exploration_fraction: float = 0.1  # share of the run's env steps over which epsilon decays
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    max_grad_norm: float = 10.0
    loss: str = "huber"  # "huber" (delta = 1) or "mse" (1/2 x^2)
    double_q: bool = False  # Double DQN target
    n_steps: int = 1  # rewards summed per replay row (n-step returns)
    # learning-rate schedule: 0 = constant learning_rate; K > 0 = linear from learning_rate to
    # learning_rate_final over the first K gradient steps, then constant at learning_rate_final
    learning_rate_decay_steps: int = 0
    learning_rate_final: float = 0.0

    def validate(self) -> None:
        super().validate()

        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise HyperparameterError(msg)

        need(self.n_critics == 1, f"DQN has one Q-network (n_critics=1), got n_critics={self.n_critics}")
        need(self.target_update_interval >= 1,
             f"target_update_interval must be >= 1, got {self.target_update_interval}")
        need(0 <= self.exploration_fraction <= 1,
             f"exploration_fraction must be in [0, 1], got {self.exploration_fraction}")
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            need(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1], got {getattr(self, name)}")
        need(self.max_grad_norm > 0,
             f"max_grad_norm must be > 0 (float('inf') turns clipping off), got {self.max_grad_norm}")
        need(self.loss in ("huber", "mse"), f"loss must be 'huber' or 'mse', got {self.loss!r}")
        need(isinstance(self.n_steps, int) and self.n_steps >= 1,
             f"n_steps must be an integer >= 1, got {self.n_steps!r}")
        need(self.learning_rate_decay_steps >= 0,
             f"learning_rate_decay_steps must be >= 0 (0: constant), got {self.learning_rate_decay_steps}")
        need(0 <= self.learning_rate_final <= self.learning_rate or self.learning_rate_decay_steps == 0,
             f"learning_rate_final must be in [0, learning_rate={self.learning_rate}], got {self.learning_rate_final}")


@dataclass(frozen=True)
class DoubleDQNConfig(DQNConfig):
    double_q: bool = True

    def validate(self) -> None:
        super().validate()
        if not self.double_q:
            raise HyperparameterError("DoubleDQN always uses the Double DQN target (double_q=True); "
                                      "use DQN for the max target")


class DQNState(NamedTuple):
    q_params: Any
    target_params: Any
    opt_state: Any
    n_updates: jax.Array  # gradient steps so far
    exploration_steps: jax.Array  # env steps over which epsilon decays; set when the run starts (-1: not yet)


def linear_epsilon(step, exploration_steps, initial_eps: float, final_eps: float):
    """epsilon(t) = eps_0 + (eps_1 - eps_0) min(1, t / T), T = exploration_steps."""
    progress = jnp.clip(step / jnp.maximum(exploration_steps, 1.0), 0.0, 1.0)
    return initial_eps + (final_eps - initial_eps) * progress


def td_loss(td_error: jax.Array, kind: str) -> jax.Array:
    """Huber (delta = 1): 1/2 x^2 for |x| <= 1, |x| - 1/2 beyond (the gradient is clipped to [-1, 1]);
    "mse": 1/2 x^2 everywhere."""
    if kind == "mse":
        return 0.5 * td_error**2
    abs_error = jnp.abs(td_error)
    return jnp.where(abs_error <= 1.0, 0.5 * td_error**2, abs_error - 0.5)


def q_of(q_values: jax.Array, action: jax.Array) -> jax.Array:
    """Q(s, a) from Q(s, .) (batch, n_actions) and integer actions (batch,)."""
    return jnp.take_along_axis(q_values, action[:, None], axis=1)[:, 0]


@dataclass(frozen=True)
class DQNAgent(Agent):
    """The pure functions of DQN for given hyperparameters and space sizes (hashable, jit-static).

    Actions are indices 0..n_actions-1, carried as one float column (act_dim = 1) by the loop and
    the replay buffer, and cast back to integers here.
    """

    cfg: DQNConfig
    obs_dim: int
    n_actions: int
    act_dim: ClassVar[int] = 1
    has_critic: ClassVar[bool] = True

    @property
    def return_steps(self) -> int:
        return self.cfg.n_steps

    @cached_property
    def q_network(self) -> MLP:
        return MLP(self.cfg.critic_hidden, self.n_actions)  # s -> Q(s, .)

    @cached_property
    def optimizer(self) -> optax.GradientTransformation:
        cfg = self.cfg
        learning_rate = cfg.learning_rate if cfg.learning_rate_decay_steps == 0 else optax.linear_schedule(
            cfg.learning_rate, cfg.learning_rate_final, cfg.learning_rate_decay_steps)  # counts gradient steps
        return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(learning_rate))

    def init(self, key: jax.Array) -> DQNState:
        q_params = self.q_network.init(key, jnp.zeros((1, self.obs_dim)))
        return DQNState(q_params, q_params, self.optimizer.init(q_params), jnp.zeros((), jnp.int32),
                        jnp.asarray(-1.0, jnp.float32))

    # -- acting ------------------------------------------------------------------------------
    def act(self, state: DQNState, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        """The greedy action argmax_a Q(s, a), as a float column; exploration is added by `explore`."""
        greedy = jnp.argmax(self.q_network.apply(state.q_params, obs), axis=-1)
        return greedy[:, None].astype(jnp.float32)

    def random_action(self, key: jax.Array, n: int) -> jax.Array:
        return jax.random.randint(key, (n, 1), 0, self.n_actions).astype(jnp.float32)

    def epsilon(self, state: DQNState, step) -> jax.Array:
        cfg = self.cfg
        return linear_epsilon(jnp.asarray(step, jnp.float32), state.exploration_steps,
                              cfg.exploration_initial_eps, cfg.exploration_final_eps)

    def explore(self, state: DQNState, action: jax.Array, key: jax.Array, step: jax.Array) -> jax.Array:
        """epsilon-greedy: with probability epsilon(step) a uniform action instead of the greedy one."""
        k_coin, k_action = jax.random.split(key)
        coin = jax.random.uniform(k_coin, (action.shape[0], 1))
        return jnp.where(coin < self.epsilon(state, step), self.random_action(k_action, action.shape[0]), action)

    def start_run(self, state: DQNState, total_timesteps: int) -> DQNState:
        """Fix the epsilon schedule's length, exploration_fraction x the run's env steps, once: a
        resumed run keeps the schedule it started with."""
        steps = jnp.float32(self.cfg.exploration_fraction * total_timesteps)
        return state._replace(exploration_steps=jnp.where(state.exploration_steps < 0, steps, state.exploration_steps))

    def q_values(self, state: DQNState, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Q(s, a) of the given actions (a float column of indices), shape (1, batch) like a critic ensemble."""
        return q_of(self.q_network.apply(state.q_params, obs), action[:, 0].astype(jnp.int32))[None]

    # -- learning ----------------------------------------------------------------------------
    def target(self, state: DQNState, batch: Transition | NStepTransition) -> jax.Array:
        """y = G + gamma^k (1 - d) Q'(s'', a*), a* chosen by the target network (DQN) or the online one (Double DQN)."""
        q_net = self.q_network
        next_q_target = q_net.apply(state.target_params, batch.next_obs)  # Q'(s'', .)
        if self.cfg.double_q:  # a* = argmax_a' Q(s'', a'): the online network chooses ...
            next_action = jnp.argmax(q_net.apply(state.q_params, batch.next_obs), axis=-1)
        else:  # a* = argmax_a' Q'(s'', a'), i.e. max_a' Q'(s'', a')
            next_action = jnp.argmax(next_q_target, axis=-1)
        next_q = q_of(next_q_target, next_action)  # ... and the target network evaluates
        discount = batch.discount if isinstance(batch, NStepTransition) else self.cfg.gamma  # gamma^k of n-step rows
        return jax.lax.stop_gradient(bootstrap_target(batch.reward, batch.terminated, discount, next_q))

    def update(self, state: DQNState, batch: Transition | NStepTransition,
               key: jax.Array) -> tuple[DQNState, dict[str, jax.Array], UpdateInfo]:
        cfg, q_net = self.cfg, self.q_network
        action = batch.action[:, 0].astype(jnp.int32)

        # 1. target: y = G + gamma^k (1 - d) Q'(s'', a*)
        y = self.target(state, batch)

        # 2. loss: mean l(Q(s, a) - y), one clipped Adam step
        def loss_fn(q_params):
            q = q_of(q_net.apply(q_params, batch.obs), action)
            return td_loss(q - y, cfg.loss).mean(), q

        q_params, opt_state, loss, q = gradient_step(self.optimizer, loss_fn, state.q_params, state.opt_state)

        # 3. target network: every target_update_interval steps, theta' <- tau theta + (1 - tau) theta'
        n_updates = state.n_updates + 1
        new_target = q_params if cfg.tau == 1.0 else polyak_average(q_params, state.target_params, cfg.tau)
        due = n_updates % cfg.target_update_interval == 0
        target_params = jax.tree.map(lambda new, old: jnp.where(due, new, old), new_target, state.target_params)

        new_state = DQNState(q_params, target_params, opt_state, n_updates, state.exploration_steps)
        metrics = {"loss": loss, "q_mean": q.mean(), "target_mean": y.mean()}
        return new_state, metrics, UpdateInfo(q_abs_max=jnp.abs(q).max())


@register(family="offpolicy", action_kinds=("Discrete",))
class DQN(OffPolicyAlgorithm):
    """DQN. ``DQN("MlpPolicy", "CartPole-v1", exploration_fraction=0.1, n_steps=1, ...)`` as in
    Stable-Baselines3 (``target_update_interval`` in gradient steps); ``double_q=True`` or
    `DoubleDQN` for the Double DQN target."""

    name = "dqn"
    config_cls = DQNConfig
    agent_cls = DQNAgent
    action_space_kind = "Discrete"
    example_env = "CartPole-v1"

    @property
    def exploration_rate(self) -> float:
        """epsilon at the current step (before the first `learn`, the schedule's start)."""
        return float(self.agent.epsilon(self.learner.agent, self.num_timesteps))


@register(family="offpolicy", action_kinds=("Discrete",))
class DoubleDQN(DQN):
    """Double DQN: DQN whose target lets the online network choose the next action and the target
    network evaluate it. ``DoubleDQN("MlpPolicy", "CartPole-v1")``; `polyak train double_dqn`."""

    name = "double_dqn"
    config_cls = DoubleDQNConfig
