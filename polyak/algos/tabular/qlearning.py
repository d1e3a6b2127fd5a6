"""Tabular reinforcement learning on small Discrete x Discrete environments (NumPy only).

Two halves that check each other:

* **Planning on the environment's own model.** `transition_model(env)` reads the model that
  Gymnasium's toy-text environments expose as `env.unwrapped.P` (P[s][a] is a list of
  `(probability, next_state, reward, terminated)`) into arrays; `value_iteration` computes V*, Q*
  and a greedy optimal policy by the Bellman optimality backup, and `policy_evaluation` computes
  the exact value of a deterministic policy by one linear solve.
* **Learning from interaction.** `QLearning` is Watkins' Q-learning with an epsilon-greedy
  behaviour policy (epsilon decays linearly) and a step-size schedule, driven by polyak's
  episode-boundary stepper: a time-limit cut (`truncated`) bootstraps, only `terminated` stops it.

So a learned greedy policy can be scored exactly: V^pi(s0) from `policy_evaluation` against
V*(s0) from `value_iteration`, both on the same model (`policy_gap`).

The update runs on the host, one environment step at a time, in plain NumPy on a (S, A) table:
for toy-text environments a JAX dispatch per step would cost more than the environment itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from polyak._version import __version__
from polyak.algos.algorithm import Algorithm, NonFiniteError
from polyak.algos.registry import register
from polyak.core.config import Config, HyperparameterError, need
from polyak.core.losses import bootstrap_target
from polyak.envs.spaces import SpaceError, make_env
from polyak.envs.stepping import SingleEnvStepper
from polyak.io import checkpoint as ckpt


# ---------------------------------------------------------------------------------------------
# The model and planning
# ---------------------------------------------------------------------------------------------
class TabularModel(NamedTuple):
    """A finite MDP as arrays (S states, A actions).

    P[s, a, s']    probability of reaching s' by taking a in s;
    R[s, a]        expected immediate reward, sum_s' P(s'|s, a) r(s, a, s');
    done[s, a, s'] fraction of the probability mass of s -> s' that terminates the episode (0 or 1
                   in practice); no bootstrapping after it;
    start[s]       initial-state distribution (None if the environment does not expose one).
    """

    P: np.ndarray
    R: np.ndarray
    done: np.ndarray
    start: np.ndarray | None

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    @property
    def continuation(self) -> np.ndarray:
        """P(s'|s, a)(1 - done): the probability of going on from s' (the bootstrapped part)."""
        return self.P * (1.0 - self.done)


def check_discrete_spaces(observation_space: gym.Space, action_space: gym.Space, what: str) -> tuple[int, int]:
    """(n_states, n_actions) of Discrete observation and action spaces numbered from 0, else SpaceError."""
    for kind, space in (("observation", observation_space), ("action", action_space)):
        if not isinstance(space, gym.spaces.Discrete):
            raise SpaceError(
                f"{what} needs a Discrete {kind} space (one table entry per state and action), got {space}; "
                + ("discretise the observation (e.g. a grid over a Box), or use DQN (Q by a network)"
                   if kind == "observation" else "continuous actions need SAC, TD3 or DDPG"))
        if int(space.start) != 0:
            raise SpaceError(f"{what} needs a Discrete {kind} space numbered from 0, got {space} (start={space.start})")
    return int(observation_space.n), int(action_space.n)


def transition_model(env: str | gym.Env) -> TabularModel:
    """Read a toy-text environment's model `env.unwrapped.P` into a `TabularModel`.

    P[s][a] = [(probability, next_state, reward, terminated), ...] for every state s and action a.
    Raises SpaceError if the spaces are not Discrete x Discrete, ValueError if there is no such model
    or it is not a probability distribution.
    """
    env = make_env(env)
    if isinstance(env, gym.vector.VectorEnv):
        raise TypeError("transition_model needs a single gymnasium.Env, got a vector env")
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    n_s, n_a = check_discrete_spaces(env.observation_space, env.action_space, f"transition_model({name})")
    table = getattr(env.unwrapped, "P", None)
    if not isinstance(table, dict) or len(table) == 0:
        raise ValueError(f"{name} exposes no tabular transition model: expected env.unwrapped.P as a dict "
                         "P[s][a] = [(probability, next_state, reward, terminated), ...] (as Gymnasium's toy-text "
                         f"environments have), found {type(table).__name__}")
    P = np.zeros((n_s, n_a, n_s))
    R = np.zeros((n_s, n_a))
    terminating = np.zeros((n_s, n_a, n_s))  # probability mass of terminating transitions to s'
    for s in range(n_s):
        if s not in table or any(a not in table[s] for a in range(n_a)):
            raise ValueError(f"{name}: env.unwrapped.P has no entry for state {s} and every action 0..{n_a - 1}")
        for a in range(n_a):
            for prob, s_next, reward, terminated in table[s][a]:
                if not 0 <= int(s_next) < n_s:
                    raise ValueError(f"{name}: P[{s}][{a}] leads to state {s_next}, outside 0..{n_s - 1}")
                P[s, a, s_next] += prob
                R[s, a] += prob * reward
                terminating[s, a, s_next] += prob * bool(terminated)
    total = P.sum(axis=2)
    if not np.allclose(total, 1.0, atol=1e-6):
        s, a = np.unravel_index(np.argmax(np.abs(total - 1.0)), total.shape)
        raise ValueError(f"{name}: P[{s}][{a}] probabilities sum to {total[s, a]}, not 1")
    done = np.divide(terminating, P, out=np.zeros_like(P), where=P > 0)
    start = getattr(env.unwrapped, "initial_state_distrib", None)
    start = None if start is None else np.asarray(start, np.float64).reshape(n_s)
    return TabularModel(P, R, done, start)


def bellman_q(model: TabularModel, V: np.ndarray, gamma: float) -> np.ndarray:
    """Q(s, a) = sum_s' P(s'|s, a) [r + gamma (1 - done) V(s')] = R(s, a) + gamma sum_s' P(1 - done) V(s')."""
    return model.R + gamma * model.continuation @ V


def value_iteration(model: TabularModel, gamma: float = 0.99, tol: float = 1e-10,
                    max_iterations: int = 1_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal values by repeated Bellman optimality backups, V <- max_a Q(s, a).

    Stops when max_s |V_{k+1}(s) - V_k(s)| < tol, which (for gamma < 1) bounds the error of V by
    gamma tol / (1 - gamma). Returns (V*, Q*, greedy policy argmax_a Q*(s, a)) as (S,), (S, A), (S,) arrays.
    """
    if not 0 < gamma <= 1:
        raise HyperparameterError(f"gamma must be in (0, 1], got {gamma}")
    if not tol > 0:
        raise HyperparameterError(f"tol must be > 0, got {tol}")
    V = np.zeros(model.n_states)
    for _ in range(max_iterations):
        V_next = bellman_q(model, V, gamma).max(axis=1)  # V(s) = max_a sum_s' P [r + gamma (1 - done) V(s')]
        delta = np.max(np.abs(V_next - V))
        V = V_next
        if delta < tol:
            break
    else:
        raise RuntimeError(f"value iteration did not converge in {max_iterations} iterations "
                           f"(last change {delta:.3g}); "
                           "with gamma = 1 some policy may never terminate: use gamma < 1")
    Q = bellman_q(model, V, gamma)
    return V, Q, Q.argmax(axis=1)


def policy_evaluation(model: TabularModel, policy: np.ndarray, gamma: float = 0.99) -> np.ndarray:
    """Exact V^pi of a deterministic policy (an action per state): V = (I - gamma P_pi)^-1 r_pi.

    P_pi(s, s') = P(s'|s, pi(s)) (1 - done) and r_pi(s) = R(s, pi(s)).
    """
    if not 0 < gamma <= 1:
        raise HyperparameterError(f"gamma must be in (0, 1], got {gamma}")
    policy = np.asarray(policy)
    if policy.shape != (model.n_states,) or not np.issubdtype(policy.dtype, np.integer):
        raise ValueError(f"policy must be an integer array of one action per state, shape ({model.n_states},), "
                         f"got {policy.dtype} {policy.shape}")
    if policy.min() < 0 or policy.max() >= model.n_actions:
        raise ValueError(f"policy actions must be in 0..{model.n_actions - 1}, got {policy.min()}..{policy.max()}")
    states = np.arange(model.n_states)
    P_pi = model.continuation[states, policy]
    r_pi = model.R[states, policy]
    try:
        return np.linalg.solve(np.eye(model.n_states) - gamma * P_pi, r_pi)
    except np.linalg.LinAlgError:
        raise ValueError("I - gamma P_pi is singular: with gamma = 1 the policy never terminates from some "
                         "state, so its value is unbounded; use gamma < 1") from None


def start_value(model: TabularModel, V: np.ndarray) -> float:
    """The value of the start: sum_s start(s) V(s)."""
    if model.start is None:
        raise ValueError("the environment exposes no initial-state distribution (env.unwrapped.initial_state_distrib)")
    return float(model.start @ V)


def policy_gap(model: TabularModel, policy: np.ndarray, gamma: float) -> dict[str, float]:
    """V^pi(s0) of a deterministic policy against V*(s0), exactly, on the model; gaps are V* - V^pi >= 0."""
    v_star = start_value(model, value_iteration(model, gamma)[0])
    v_pi = start_value(model, policy_evaluation(model, policy, gamma))
    gap = v_star - v_pi
    return {"gamma": gamma, "optimal_value_start": v_star, "policy_value_start": v_pi, "value_gap": gap,
            "relative_gap": abs(gap) / abs(v_star) if v_star != 0 else float("inf") if gap else 0.0}


# ---------------------------------------------------------------------------------------------
# Q-learning
# ---------------------------------------------------------------------------------------------
LR_SCHEDULES = ("constant", "visits")


@dataclass(frozen=True)
class QLearningConfig(Config):
    """Hyperparameters of tabular Q-learning.

    Step size alpha for the update of Q(s, a), n(s, a) = earlier updates of that pair:
      lr_schedule="constant": alpha = learning_rate;
      lr_schedule="visits":   alpha = learning_rate / (1 + n(s, a)) ** lr_exponent.
    Q-learning converges to Q* with probability 1 when every pair is updated infinitely often and,
    per pair, sum_n alpha_n = inf and sum_n alpha_n^2 < inf (Watkins & Dayan 1992). The visit-count
    schedule meets both exactly when 1/2 < lr_exponent <= 1; a constant step meets only the first
    (on a stochastic environment Q then keeps fluctuating around Q*, by an amount that grows with alpha).
    Exploration: epsilon decays linearly from exploration_initial_eps to exploration_final_eps over
    the first exploration_fraction of the run's environment steps (fixed by the first `learn` call,
    as for DQN), then stays there.
    """

    learning_rate: float = 1.0
    lr_schedule: str = "visits"
    lr_exponent: float = 0.51  # just above 1/2: steps stay large for long (0.8 learned far slower, BENCHMARKS.md)
    gamma: float = 0.99
    exploration_fraction: float = 0.5
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    initial_q: float = 0.0  # Q(s, a) before any update (optimistic values drive exploration)

    def validate(self) -> None:
        for name, value in self.to_dict().items():
            need(name == "lr_schedule" or (isinstance(value, (int, float)) and not isinstance(value, bool)),
                 f"QLearning hyperparameter {name} must be a number, got {value!r}")
        need(isinstance(self.lr_schedule, str) and self.lr_schedule in LR_SCHEDULES,
             f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        need(0 < self.learning_rate <= 1, f"learning_rate must be in (0, 1], got {self.learning_rate}")
        need(0.5 < self.lr_exponent <= 1 or self.lr_schedule == "constant",
             f"lr_exponent must be in (0.5, 1] so that sum alpha = inf and sum alpha^2 < inf, "
             f"got {self.lr_exponent}")
        need(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        need(0 <= self.exploration_fraction <= 1,
             f"exploration_fraction must be in [0, 1], got {self.exploration_fraction}")
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            need(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1], got {getattr(self, name)}")
        need(math.isfinite(self.initial_q), f"initial_q must be finite, got {self.initial_q}")

    def step_size(self, visits: int) -> float:
        """alpha for a pair updated `visits` times before."""
        if self.lr_schedule == "constant":
            return self.learning_rate
        return self.learning_rate / (1.0 + visits) ** self.lr_exponent  # alpha_n = alpha_0 / (1 + n)^omega

    def epsilon(self, step: int, exploration_steps: float) -> float:
        """epsilon(t) = eps_0 + (eps_1 - eps_0) min(1, t / T), T = exploration_steps."""
        progress = min(1.0, step / max(exploration_steps, 1.0))
        return self.exploration_initial_eps + progress * (self.exploration_final_eps - self.exploration_initial_eps)


def q_learning_update(q: np.ndarray, s: int, a: int, reward: float, s_next: int, terminated: bool,
                      alpha: float, gamma: float) -> float:
    """Q(s, a) <- Q(s, a) + alpha [r + gamma (1 - terminated) max_a' Q(s', a') - Q(s, a)], in place.

    `terminated` only: after a time-limit cut s_next is the true last state and the target bootstraps
    from it. Returns the TD error.
    """
    target = bootstrap_target(reward, float(terminated), gamma, q[s_next].max())  # y = r + gamma (1 - d) max Q(s', .)
    td_error = target - q[s, a]
    q[s, a] += alpha * td_error
    return float(td_error)


@register(family="tabular", action_kinds=("Discrete",), observation_kinds=("Discrete",), jitted_loop=False)
class QLearning(Algorithm):
    """Tabular Q-learning with the same model API as the other algorithms.

        model = QLearning("TabularPolicy", "FrozenLake-v1", gamma=0.99, seed=0)   # or QLearning("FrozenLake-v1")
        model.learn(50_000)
        action, _ = model.predict(obs, deterministic=True)
        model.q_table            # (n_states, n_actions)
        model.save("q.polyak"); QLearning.load("q.polyak")

    Deterministic given the seed: episode k is reset with the seed polyak derives from (seed, k),
    and exploration draws from a NumPy generator seeded with `seed`. The table lives on the host (NumPy):
    one JAX dispatch per step would cost more than a toy-text env step.
    """

    name = "qlearning"
    config_cls = QLearningConfig
    default_policy = "TabularPolicy"

    def __init__(self, policy: Any = "TabularPolicy", env: Any = None, *, seed: int | None = 0, verbose: int = 0,
                 policy_kwargs: dict | None = None, **hyperparameters: Any):
        if env is None and not (isinstance(policy, str) and policy == "TabularPolicy"):
            policy, env = "TabularPolicy", policy  # QLearning(env, ...): the table is the only policy
        if policy != "TabularPolicy":
            raise HyperparameterError(f"QLearning's policy is its table: policy must be 'TabularPolicy', got {policy!r}")
        if policy_kwargs:
            raise HyperparameterError(f"QLearning has no network: policy_kwargs must be empty, got {policy_kwargs}")
        if env is None:
            raise ValueError("QLearning needs an env (an id such as 'FrozenLake-v1' or a gymnasium.Env with Discrete "
                             "observation and action spaces); to load a saved model use QLearning.load(path)")
        self.config = QLearningConfig.from_kwargs(hyperparameters)
        self.seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        self.verbose = verbose
        self.env = None
        self._attach_env(env)
        self.q_table = np.full((self.n_states, self.n_actions), self.config.initial_q, np.float64)
        self.visit_counts = np.zeros((self.n_states, self.n_actions), np.int64)
        self.num_timesteps = 0
        self.exploration_rate = self.config.exploration_initial_eps
        self.exploration_steps = -1.0  # length T of the epsilon decay, fixed by the first learn() call
        self.rng = np.random.default_rng(self.seed)
        self._episode = 0  # episodes started so far (they are seeded by index)

    def evaluation_extras(self) -> tuple[dict[str, Any], list[str]]:
        """Where the env exposes its model (toy-text: env.unwrapped.P): the greedy policy's exact value vs V*."""
        try:
            gap = policy_gap(transition_model(self.env), self.policy, self.config.gamma)
        except ValueError as e:  # no model to compare with: the Monte-Carlo returns are all there is
            return {}, [f"no exact policy value: {e}"]
        return gap, [f"greedy policy V(s0) = {gap['policy_value_start']:.4f} vs V*(s0) = "
                     f"{gap['optimal_value_start']:.4f} (value iteration, gamma {self.config.gamma:g}): "
                     f"gap {gap['value_gap']:.4g} ({100 * gap['relative_gap']:.2f}%)"]

    def _attach_env(self, env: str | gym.Env) -> None:
        env = make_env(env)
        if isinstance(env, gym.vector.VectorEnv):
            raise TypeError("QLearning drives one gymnasium.Env, got a vector env (train it with --n-envs 1)")
        n_s, n_a = check_discrete_spaces(env.observation_space, env.action_space, "QLearning")
        if n_s >= 2**24:  # the stepper passes states as float32, exact below 2^24
            raise SpaceError(f"QLearning needs fewer than 2^24 states, got {env.observation_space}")
        if self.env is None and "n_states" not in vars(self):
            self.n_states, self.n_actions = n_s, n_a
        elif (n_s, n_a) != (self.n_states, self.n_actions):
            raise SpaceError(f"the model has {self.n_states} states x {self.n_actions} actions, "
                             f"the env has {n_s} x {n_a}")
        self.env = env
        self.env_id = env.spec.id if env.spec is not None else None
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def set_env(self, env: str | gym.Env) -> None:
        self._attach_env(env)

    def get_env(self) -> gym.Env | None:
        return self.env

    # -- training --------------------------------------------------------------------------
    def _behaviour_action(self, s: int, epsilon: float) -> int:
        """epsilon-greedy: a uniform action with probability epsilon, else a greedy one (ties broken at random)."""
        if self.rng.random() < epsilon:
            return int(self.rng.integers(self.n_actions))
        row = self.q_table[s]
        best = np.flatnonzero(row == row.max())
        return int(best[0] if len(best) == 1 else self.rng.choice(best))

    def learn(self, total_timesteps: int, callback=None, log_interval: int = 1000, logger=None,
              progress_bar: bool = False) -> "QLearning":
        """Run `total_timesteps` environment steps of Q-learning (a fresh episode first).

        `logger` (a polyak.io.logger.RunLogger) receives episode returns and, every
        `log_interval` steps, epsilon, the last step size and the mean |TD error|;
        `callback(model)` is called after every step; returning False stops training.
        """
        if self.env is None:
            raise RuntimeError("this model has no environment: pass env= to QLearning.load or call set_env(env)")
        if total_timesteps < 1 or log_interval < 1:
            raise HyperparameterError(
                f"total_timesteps and log_interval must be >= 1, got {total_timesteps} and {log_interval}")
        cfg, q, visits = self.config, self.q_table, self.visit_counts
        if self.exploration_steps < 0:
            self.exploration_steps = cfg.exploration_fraction * total_timesteps
        stepper = SingleEnvStepper(self.env, self.seed)
        stepper.episode = self._episode
        s = int(stepper.reset()[0])
        episode_return, episode_length, td_abs, alpha = 0.0, 0, 0.0, cfg.step_size(0)
        if logger is not None:
            logger.start(total_timesteps, self.num_timesteps)
        for t in range(total_timesteps):
            self.exploration_rate = epsilon = cfg.epsilon(self.num_timesteps, self.exploration_steps)
            a = self._behaviour_action(s, epsilon)
            step = stepper.step(np.array([a]))
            s_next, reward, terminated = int(step.next_obs[0]), float(step.reward[0]), bool(step.terminated[0])
            if not math.isfinite(reward):
                raise NonFiniteError(f"non-finite reward {reward} at environment step {self.num_timesteps + 1}")
            alpha = cfg.step_size(visits[s, a])
            td_abs += abs(q_learning_update(q, s, a, reward, s_next, terminated, alpha, cfg.gamma))
            visits[s, a] += 1
            self.num_timesteps += 1
            episode_return += reward
            episode_length += 1
            s = int(step.obs[0])  # the reset state after an episode end
            if step.episode_start[0]:
                if logger is not None:
                    logger.episode(self.num_timesteps, episode_return, episode_length)
                episode_return, episode_length = 0.0, 0
            if logger is not None:
                logger.progress(1)
                if (t + 1) % log_interval == 0:
                    logger.metrics(self.num_timesteps, {"epsilon": epsilon, "alpha": alpha,
                                                        "td_error_abs_mean": td_abs / log_interval,
                                                        "visited_fraction": float(np.mean(visits > 0))})
                    td_abs = 0.0
            if self._callback_stops(callback):
                break
        self._episode = stepper.episode + 1  # the next learn() call starts a fresh episode
        return self

    # -- inference -------------------------------------------------------------------------
    @property
    def policy(self) -> np.ndarray:
        """The greedy policy argmax_a Q(s, a) for every state (lowest action on ties)."""
        return self.q_table.argmax(axis=1)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Action for one state (an int) or a batch of states; returns (action, None) like SB3.

        deterministic=True: argmax_a Q(s, a); False: epsilon-greedy with the current exploration rate.
        """
        obs = np.asarray(observation)
        if not np.issubdtype(obs.dtype, np.integer) or obs.ndim > 1 or np.any((obs < 0) | (obs >= self.n_states)):
            raise ValueError(f"observation must be a state index in 0..{self.n_states - 1} (or a 1-D batch of them), "
                             f"got {observation!r}")
        if deterministic:
            actions = self.q_table[obs].argmax(axis=-1)
        else:
            flat = [self._behaviour_action(int(s), self.exploration_rate) for s in obs.reshape(-1)]
            actions = np.asarray(flat, np.int64).reshape(obs.shape)
        return (actions[()] if obs.ndim == 0 else actions), None

    # -- checkpoints -----------------------------------------------------------------------
    def save(self, path: str | Path, include_buffer: bool = False) -> Path:
        """One atomic, code-free polyak file: Q table, visit counts, hyperparameters, counters, RNG state.
        (`include_buffer` is accepted as by the other algorithms; Q-learning keeps no replay buffer.)"""
        path = Path(path)
        metadata = {"kind": "polyak-model", "library_version": __version__, "algorithm": self.name,
                    "config": self.config.to_dict(), "n_states": self.n_states, "n_actions": self.n_actions,
                    "env_id": self.env_id, "seed": self.seed, "num_timesteps": self.num_timesteps,
                    "episode": self._episode, "exploration_rate": self.exploration_rate,
                    "exploration_steps": self.exploration_steps,
                    "rng_state": self.rng.bit_generator.state}
        ckpt.write_checkpoint(path, {"q_table": self.q_table, "visit_counts": self.visit_counts}, metadata)
        return path

    @classmethod
    def load(cls, path: str | Path, env: str | gym.Env | None = None, **kwargs: Any) -> "QLearning":
        """Load a model written by `save`; with `env`, `learn` continues (from a fresh episode)."""
        if kwargs:
            raise HyperparameterError(f"load() takes no hyperparameter overrides, got {sorted(kwargs)}")
        arrays, meta = ckpt.read_checkpoint(path)
        if meta.get("kind") != "polyak-model":
            raise ckpt.CheckpointError(f"{path}: not a polyak model file (kind={meta.get('kind')!r})")
        if meta.get("algorithm") != cls.name:
            raise ckpt.CheckpointError(f"{path}: holds a {str(meta.get('algorithm')).upper()} model, not QLEARNING; "
                                       "use polyak.load(path)")
        model = cls.__new__(cls)
        model.config = QLearningConfig.from_kwargs(meta["config"])
        model.seed, model.verbose = int(meta["seed"]), 0
        model.n_states, model.n_actions = int(meta["n_states"]), int(meta["n_actions"])
        shape = (model.n_states, model.n_actions)
        for name, dtype in (("q_table", np.float64), ("visit_counts", np.int64)):
            if name not in arrays or arrays[name].shape != shape or arrays[name].dtype != dtype:
                raise ckpt.CheckpointError(f"{path}: {name} missing or not {np.dtype(dtype).name} {shape}")
        model.q_table, model.visit_counts = arrays["q_table"].copy(), arrays["visit_counts"].copy()
        model.num_timesteps, model._episode = int(meta["num_timesteps"]), int(meta["episode"])
        model.exploration_rate = float(meta["exploration_rate"])
        model.exploration_steps = float(meta["exploration_steps"])
        model.rng = np.random.default_rng()
        model.rng.bit_generator.state = meta["rng_state"]
        model.env, model.env_id = None, meta.get("env_id")
        model.observation_space = gym.spaces.Discrete(model.n_states)
        model.action_space = gym.spaces.Discrete(model.n_actions)
        if env is not None:
            model._attach_env(env)
        return model


__all__ = ["TabularModel", "transition_model", "value_iteration", "policy_evaluation", "start_value", "policy_gap",
           "QLearningConfig", "QLearning", "q_learning_update", "check_discrete_spaces"]
