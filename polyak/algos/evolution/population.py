"""Evolution strategies on policy parameters: what CEM, CMA-ES and NES share, written once.

An evolution strategy searches the raveled parameters theta in R^P of a deterministic policy
a = tanh(MLP_theta(normalise(s))) directly: no gradient of the return, no critic, no replay buffer.
One generation is

    candidates, noise = strategy.ask(search, key)           the method's sampling (cem.py, cmaes.py, nes.py)
    fitness_i = return of candidate i                       all candidates' episodes, evaluated together
    search = strategy.tell(search, candidates, noise, fitness, generation)   the method's update

`ask` and `tell` are pure functions of the method's state pytree (mean, variances or covariance and step
size, evolution paths, optimiser state), so a whole generation jits and `jax.vmap` runs several seeds.

Evaluation of a population:
  * On a JAX environment (polyak/..., gymnax/...; `jax_adapter_of` finds it behind its Gymnasium adapter),
    `rollout_returns` steps every candidate's episodes as one vmapped batch of envs under a
    `lax.while_loop` (until all have ended), so a generation (ask -> rollouts -> tell) is one compiled call.
    All candidates of a generation start from the same initial states (common random numbers), so
    their ranking compares policies, not starts.
  * On a Gymnasium env or vector env, `EvolutionAlgorithm._host_fitness` runs n_envs candidates at a
    time (one jitted policy call per step for the batch); episode e of generation g is reset with a
    seed derived from (seed, g, e).
The current mean is evaluated with the population on the same starts (one more candidate): its return
is what the learning curve (episodes.csv) shows, since `predict` acts with the mean.

Observation normalisation (on by default, as in the rest of the library and in Salimans et al. 2017):
the running mean/std is frozen during a generation, so every candidate sees the same inputs, and then
merged with the moments of the observations the generation's policies acted on.
`learn(total_timesteps)` counts the environment steps the rollouts consumed and runs whole generations
(the last one may go past the total, as SB3's on-policy rollouts do).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from polyak.algos.algorithm import Algorithm, NonFiniteError
from polyak.algos.jitted import device_action_map
from polyak.algos.registry import by_action_kind
from polyak.core.config import Config, HyperparameterError, need
from polyak.core.networks import MLP
from polyak.core.normalizer import RunningMeanStd, rms_init, rms_normalize
from polyak.envs.protocol import GymnasiumAdapter, GymnasiumVectorAdapter
from polyak.envs.spaces import check_spaces
from polyak.envs.stepping import check_env_output, episode_seed
from polyak.io.logger import RunLogger


# ---------------------------------------------------------------------------------------------
# Hyperparameters every method shares
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ESConfig(Config):
    """What every evolution strategy has; each method's config adds its own fields."""

    population_size: int = 64  # lambda: candidates per generation
    policy_hidden: tuple[int, ...] = (16,)  # tanh hidden layers of the policy; () is a linear policy tanh(W s + b)
    episodes_per_candidate: int = 1  # a candidate's fitness is its mean return over this many episodes
    max_episode_steps: int = 1000  # a rollout stops here even if the env's own episode goes on
    normalize_obs: bool = True  # running mean/std of observations, frozen within a generation

    def validate(self) -> None:
        need(self.population_size is None or self.population_size >= 2,  # None: the method's default (CMA-ES)
             f"population_size must be >= 2, got {self.population_size}")
        need(all(w >= 1 for w in self.policy_hidden), f"policy_hidden widths must be >= 1, got {self.policy_hidden}")
        need(self.episodes_per_candidate >= 1,
             f"episodes_per_candidate must be >= 1, got {self.episodes_per_candidate}")
        need(self.max_episode_steps >= 1, f"max_episode_steps must be >= 1, got {self.max_episode_steps}")

    @classmethod
    def policy_kwargs_to_fields(cls, policy_kwargs: dict[str, Any]) -> dict[str, Any]:
        """SB3's policy_kwargs=dict(net_arch=[...]): the policy's hidden widths (there is no critic)."""
        policy_kwargs = dict(policy_kwargs)
        net_arch = policy_kwargs.pop("net_arch", None)
        if policy_kwargs:
            raise HyperparameterError(f"unsupported policy_kwargs: {', '.join(sorted(policy_kwargs))} "
                                      "(supported: net_arch)")
        if net_arch is None:
            return {}
        need(isinstance(net_arch, (list, tuple)),
             f"net_arch must be a list of hidden widths (an evolution strategy has only a policy), got {net_arch!r}")
        return {"policy_hidden": tuple(net_arch)}


# ---------------------------------------------------------------------------------------------
# The policy as one parameter vector
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlatPolicy:
    """a = tanh(MLP_theta(s)) with theta raveled into one vector (`jax.flatten_util.ravel_pytree`)."""

    obs_dim: int
    act_dim: int
    hidden: tuple[int, ...]

    @property
    def network(self) -> nn.Module:
        return MLPPolicy(self.hidden, self.act_dim)

    def init(self, key: jax.Array) -> jax.Array:
        """theta_0: the network's initial parameters (Flax's LeCun-normal init), raveled."""
        return ravel_pytree(self.network.init(key, jnp.zeros((1, self.obs_dim))))[0]

    @cached_property
    def _unravel(self):
        shapes = jax.eval_shape(self.network.init, jax.random.PRNGKey(0), jnp.zeros((1, self.obs_dim)))
        return ravel_pytree(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes))[1]

    @cached_property
    def n_params(self) -> int:
        shapes = jax.eval_shape(self.network.init, jax.random.PRNGKey(0), jnp.zeros((1, self.obs_dim)))
        return int(sum(np.prod(s.shape) for s in jax.tree.leaves(shapes)))

    def act(self, theta: jax.Array, obs_rms: RunningMeanStd, obs: jax.Array, normalize: bool) -> jax.Array:
        """Actions in [-1, 1] for a batch of raw observations (n, obs_dim) under one parameter vector."""
        return self.network.apply(self._unravel(theta), rms_normalize(obs_rms, obs, enabled=normalize))


class MLPPolicy(nn.Module):
    """tanh(MLP(s)) with tanh hidden layers (the evolution-strategies literature's choice)."""

    hidden: tuple[int, ...]
    act_dim: int

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        return jnp.tanh(MLP(self.hidden, self.act_dim, nn.tanh)(obs))


# ---------------------------------------------------------------------------------------------
# The method's side: a strategy with pure ask / tell
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Strategy:
    """An evolution strategy over R^dim: hashable hyperparameters and pure functions of its state pytree.

        init(mean0)                                          -> state
        ask(state, key)                                      -> (candidates (lambda, dim), noise (lambda, dim))
        tell(state, candidates, noise, fitness, generation)  -> (state, metrics)   fitness: higher is better
        mean(state)                                          -> (dim,) the parameters `predict` acts with
    """

    cfg: ESConfig
    dim: int

    @property
    def population_size(self) -> int:
        return self.cfg.population_size

    def init(self, mean0: jax.Array):
        raise NotImplementedError

    def ask(self, state, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        raise NotImplementedError

    def tell(self, state, candidates: jax.Array, noise: jax.Array, fitness: jax.Array, generation: jax.Array):
        raise NotImplementedError

    def mean(self, state) -> jax.Array:
        return state.mean


# ---------------------------------------------------------------------------------------------
# The whole training state, and one generation as pure phases
# ---------------------------------------------------------------------------------------------
class ESLearner(NamedTuple):
    """Everything a run needs to go on exactly (checkpoints name these fields)."""

    agent: Any  # the method's search state (mean, spread, paths, optimiser state): `predict` acts with its mean
    obs_rms: RunningMeanStd
    key: jax.Array
    generation: jax.Array  # generations completed
    step: jax.Array  # environment steps consumed by all rollouts so far


class Moments(NamedTuple):
    """count, mean and sum of squared deviations (M2) of a set of observations (Chan et al.'s parallel form)."""

    count: jax.Array
    mean: jax.Array
    m2: jax.Array


def merge_moments(a: Moments, b: Moments) -> Moments:
    """The moments of the union of two sets: n = n_a + n_b, mean = mean_a + delta n_b / n,
    M2 = M2_a + M2_b + delta^2 n_a n_b / n (delta = mean_b - mean_a); as `core.normalizer.rms_update`."""
    n = a.count + b.count
    safe = jnp.maximum(n, 1e-12)
    delta = b.mean - a.mean
    return Moments(n, a.mean + delta * b.count / safe, a.m2 + b.m2 + delta**2 * a.count * b.count / safe)


def batch_moments(obs: jax.Array, mask: jax.Array) -> Moments:
    """Moments of the rows of obs (n, dim) where mask (n,) holds."""
    w = mask.astype(obs.dtype)[:, None]
    count = w.sum()
    mean = (w * obs).sum(0) / jnp.maximum(count, 1.0)
    return Moments(count, mean, (w * (obs - mean) ** 2).sum(0))


def update_normalizer(rms: RunningMeanStd, moments: Moments, enabled: bool) -> RunningMeanStd:
    """Merge a generation's observation moments into the running mean/std."""
    if not enabled:
        return rms
    merged = merge_moments(Moments(rms.count, rms.mean, rms.var * rms.count), moments)
    return RunningMeanStd(merged.mean, merged.m2 / merged.count, merged.count)


class Evaluation(NamedTuple):
    """What evaluating a population returns (device or host arrays)."""

    returns: jax.Array  # (n, episodes) return of each candidate's episodes
    lengths: jax.Array  # (n, episodes)
    moments: Moments  # of the observations acted on


class GenerationLog(NamedTuple):
    """What the host reads back after a generation."""

    fitness: jax.Array  # (lambda,) the candidates' fitness
    mean_returns: jax.Array  # (episodes,) the current mean's episode returns (before the update)
    mean_lengths: jax.Array
    metrics: dict[str, jax.Array]  # the strategy's


@dataclass(frozen=True)
class Spec:
    """The static side of a run (hashable: a jit static argument)."""

    strategy: Strategy
    policy: FlatPolicy
    n_envs: int  # host evaluation: candidates stepped at once

    @property
    def cfg(self) -> ESConfig:
        return self.strategy.cfg


def init_learner(spec: Spec, key: jax.Array) -> ESLearner:
    """theta_0 from the policy network's initialisation, the method's search state around it."""
    key, init_key = jax.random.split(key)
    mean0 = spec.policy.init(init_key)
    return ESLearner(spec.strategy.init(mean0), rms_init(spec.policy.obs_dim), key,
                     jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def ask_phase(spec: Spec, learner: ESLearner) -> tuple[ESLearner, jax.Array, jax.Array, jax.Array]:
    """(learner with its key advanced, thetas (lambda + 1, P): the candidates then the mean, noise, eval key)."""
    key, ask_key, eval_key = jax.random.split(learner.key, 3)
    candidates, noise = spec.strategy.ask(learner.agent, ask_key)
    thetas = jnp.concatenate([candidates, spec.strategy.mean(learner.agent)[None]])
    return learner._replace(key=key), thetas, noise, eval_key


def tell_phase(spec: Spec, learner: ESLearner, thetas: jax.Array, noise: jax.Array,
               evaluation: Evaluation) -> tuple[ESLearner, GenerationLog]:
    """The method's update from the candidates' fitness; normaliser, counters."""
    fitness = evaluation.returns[:-1].mean(axis=1)  # F_i = mean return of candidate i over its episodes
    agent, metrics = spec.strategy.tell(learner.agent, thetas[:-1], noise, fitness, learner.generation)
    learner = ESLearner(agent, update_normalizer(learner.obs_rms, evaluation.moments, spec.cfg.normalize_obs),
                        learner.key, learner.generation + 1,
                        learner.step + evaluation.lengths.sum().astype(jnp.int32))
    return learner, GenerationLog(fitness, evaluation.returns[-1], evaluation.lengths[-1], metrics)


def rollout_returns(spec: Spec, env, params, thetas: jax.Array, obs_rms: RunningMeanStd,
                    key: jax.Array) -> Evaluation:
    """Every candidate's episodes on a JAX env, as one vmapped batch of (n candidates x E episodes) envs.

    The E initial states are the same for every candidate (common random numbers). An env that has ended
    stays frozen (its rewards and observations no longer count); the loop stops when all have ended or
    after `max_episode_steps`.
    """
    cfg, policy = spec.cfg, spec.policy
    n, episodes = thetas.shape[0], cfg.episodes_per_candidate
    to_env = device_action_map(env.action_space)
    reset_key, key = jax.random.split(key)
    states, obs = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(reset_key, episodes), params)
    tile = lambda x: jnp.broadcast_to(x, (n,) + x.shape).reshape((n * episodes,) + x.shape[1:])  # noqa: E731
    states, obs = jax.tree.map(tile, states), tile(obs)
    act = jax.vmap(lambda theta, o: policy.act(theta, obs_rms, o, cfg.normalize_obs))  # over candidates

    def alive_where(alive, new, old):
        return jnp.where(alive.reshape(alive.shape + (1,) * (old.ndim - 1)), new, old)

    def body(carry):
        t, key, states, obs, done, returns, lengths, moments = carry
        alive = ~done
        action = act(thetas, obs.reshape(n, episodes, -1)).reshape(n * episodes, -1)
        key, step_key = jax.random.split(key)
        next_states, next_obs, reward, terminated, truncated, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(step_key, n * episodes), states, to_env(action), params)
        moments = merge_moments(moments, batch_moments(obs, alive))
        returns = returns + jnp.where(alive, reward, 0.0)
        lengths = lengths + alive.astype(jnp.int32)
        states = jax.tree.map(partial(alive_where, alive), next_states, states)
        obs = alive_where(alive, next_obs, obs)
        return t + 1, key, states, obs, done | terminated | truncated, returns, lengths, moments

    def running(carry):
        return (carry[0] < cfg.max_episode_steps) & ~jnp.all(carry[4])

    zeros = jnp.zeros(n * episodes)
    moments0 = Moments(jnp.zeros(()), jnp.zeros(policy.obs_dim), jnp.zeros(policy.obs_dim))
    carry = (jnp.zeros((), jnp.int32), key, states, obs.astype(jnp.float32), jnp.zeros(n * episodes, bool), zeros,
             zeros.astype(jnp.int32), moments0)
    _, _, _, _, _, returns, lengths, moments = jax.lax.while_loop(running, body, carry)
    return Evaluation(returns.reshape(n, episodes), lengths.reshape(n, episodes), moments)


def generation(spec: Spec, env, params, learner: ESLearner) -> tuple[ESLearner, GenerationLog]:
    """One generation on a JAX env: ask -> every rollout -> tell, as one pure function."""
    learner, thetas, noise, eval_key = ask_phase(spec, learner)
    evaluation = rollout_returns(spec, env, params, thetas, learner.obs_rms, eval_key)
    return tell_phase(spec, learner, thetas, noise, evaluation)


def make_train(spec: Spec, env, params, n_generations: int):
    """PureJaxRL's shape: `train(seed) -> (learner, logs)`, all of a run on a JAX env as one pure function
    (`lax.scan` over generations), so `jax.vmap(train)(seeds)` trains several seeds at once."""

    def train(seed: jax.Array):
        learner = init_learner(spec, jax.random.PRNGKey(seed))
        return jax.lax.scan(lambda s, _: generation(spec, env, params, s), learner, None, length=n_generations)

    return train


def jax_adapter_of(env) -> GymnasiumAdapter | GymnasiumVectorAdapter | None:
    """polyak's Gymnasium adapter of a JAX env (its `.env` and `.params`), or None for any other env.

    Only Gymnasium's own bookkeeping wrappers (order enforcing, the passive env checker) may sit on top: a
    wrapper that changes observations or rewards must be honoured, so such an env is evaluated on the host.
    """
    transparent = (gym.wrappers.OrderEnforcing, gym.wrappers.PassiveEnvChecker)
    while isinstance(env, transparent):
        env = env.env
    return env if isinstance(env, (GymnasiumAdapter, GymnasiumVectorAdapter)) else None


class StaticEnv:
    """A JAX env as a jit static argument. JAX envs are stateless objects whose static choices are constructor
    attributes, so two instances of one class with equal (hashable) attributes compile to the same program:
    models built on separately made envs (a loaded model, another seed) share one compiled generation."""

    def __init__(self, env):
        self.env = env
        try:
            self._key = (type(env), tuple(sorted(vars(env).items())))
            hash(self._key)
        except TypeError:  # an unhashable attribute: only this very object is known to be the same env
            self._key = (type(env), id(env))

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other) -> bool:
        return isinstance(other, StaticEnv) and self._key == other._key


@partial(jax.jit, static_argnums=(0, 1))
def _generation(spec: Spec, env: StaticEnv, params, learner: ESLearner) -> tuple[ESLearner, GenerationLog]:
    return generation(spec, env.env, params, learner)


# compiled once per spec (hyperparameters and sizes): models of equal ones share them
_ask = jax.jit(ask_phase, static_argnums=0)
_tell = jax.jit(tell_phase, static_argnums=0)


@partial(jax.jit, static_argnums=0)
def _act_batch(spec: Spec, thetas: jax.Array, obs_rms: RunningMeanStd, obs: jax.Array) -> jax.Array:
    """Row i acts with thetas[i] on obs[i] (the host evaluation's n_envs candidates at once)."""
    one = lambda theta, o: spec.policy.act(theta, obs_rms, o[None], spec.cfg.normalize_obs)[0]  # noqa: E731
    return jax.vmap(one)(thetas, obs)


@partial(jax.jit, static_argnums=0)
def _predict(spec: Spec, agent, obs_rms: RunningMeanStd, obs: jax.Array) -> jax.Array:
    return spec.policy.act(spec.strategy.mean(agent), obs_rms, obs, spec.cfg.normalize_obs)


# ---------------------------------------------------------------------------------------------
# The SB3-style model
# ---------------------------------------------------------------------------------------------
class EvolutionAlgorithm(Algorithm):
    """The model API (constructor checks, predict, save/load from `algorithm.Algorithm`) for an evolution
    strategy; a method supplies `config_cls` and `strategy_cls`.

        model = CEM("MlpPolicy", "polyak/Pendulum-v1", population_size=64, seed=0)
        model.learn(500_000)          # environment steps, in whole generations
        action, _ = model.predict(obs)   # the mean parameters (deterministic either way)

    `learn` runs generations: on a JAX env each is one compiled call, otherwise the population is stepped
    on the host, n_envs candidates at a time. `callback(model)` runs after every generation.
    """

    strategy_cls: ClassVar[type[Strategy]]
    jax_env_loop = None  # seeds are vmapped through `make_train`, not runs/seeds.py's per-step loop

    def _check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        check_spaces(observation_space, action_space, type(self).__name__, "Box", by_action_kind())

    def _build(self, obs_dim: int, action_space: gym.Space, n_envs: int) -> None:
        policy = FlatPolicy(int(obs_dim), int(action_space.shape[0]), tuple(self.config.policy_hidden))
        self.spec = Spec(self.strategy_cls(self.config, policy.n_params), policy, int(n_envs))
        self.agent = policy  # what the base class reads: obs_dim
        spec = self.spec
        self._fns = {"predict": lambda agent, obs_rms, obs, key, deterministic: _predict(spec, agent, obs_rms, obs)}

    def _init_learner(self, key: jax.Array) -> ESLearner:
        return init_learner(self.spec, key)

    def _attach_env(self, env: Any) -> None:
        super()._attach_env(env)
        self._jax_adapter = jax_adapter_of(self.env)  # None: the population is stepped on the host

    def _init_host_state(self) -> None:
        super()._init_host_state()
        self._jax_adapter = None

    @property
    def n_parameters(self) -> int:
        """P, the length of the searched parameter vector."""
        return self.spec.policy.n_params

    @property
    def mean_parameters(self) -> np.ndarray:
        """The search distribution's mean: the policy `predict` uses, raveled."""
        return np.asarray(self.spec.strategy.mean(self.learner.agent))

    # -- training --------------------------------------------------------------------------
    def learn(self, total_timesteps: int, callback=None, log_interval: int = 1000, progress_bar: bool = False,
              run_dir=None, reset_num_timesteps: bool = False, logger: RunLogger | None = None):
        """Run generations until `total_timesteps` more environment steps have been consumed (the last
        generation completes, so a few more may run). `callback(model)` runs after each generation;
        returning False stops. Each generation logs the mean policy's episodes and, every `log_interval`
        steps, the population's fitness (mean, max, min, std) and the method's metrics."""
        with self._learning(total_timesteps, reset_num_timesteps, logger, run_dir, progress_bar) as logger:
            target = self.num_timesteps + int(total_timesteps)
            next_log = (self.num_timesteps // log_interval + 1) * log_interval
            logger.start(int(total_timesteps), self.num_timesteps)
            while self.num_timesteps < target:
                learner, log = self._run_generation(self.learner)
                log = jax.device_get(log)
                self._check_generation(learner, log)
                self.learner = learner
                done = int(learner.step) - self.num_timesteps
                self.num_timesteps = int(learner.step)
                for ret, length in zip(log.mean_returns, log.mean_lengths):
                    logger.episode(self.num_timesteps, float(ret), int(length))
                logger.progress(done)
                if self.num_timesteps >= next_log:
                    fitness = log.fitness
                    logger.metrics(self.num_timesteps, {
                        "generation": int(learner.generation), "fitness_mean": float(fitness.mean()),
                        "fitness_max": float(fitness.max()), "fitness_min": float(fitness.min()),
                        "fitness_std": float(fitness.std()), **{k: float(v) for k, v in log.metrics.items()}})
                    next_log = (self.num_timesteps // log_interval + 1) * log_interval
                if self._callback_stops(callback):
                    break
        return self

    def _run_generation(self, learner: ESLearner) -> tuple[ESLearner, GenerationLog]:
        if self._jax_adapter is not None:  # one compiled call: ask, every rollout, tell
            return _generation(self.spec, StaticEnv(self._jax_adapter.env), self._jax_adapter.params, learner)
        learner, thetas, noise, _ = _ask(self.spec, learner)
        evaluation = self._host_fitness(thetas, learner.obs_rms, int(learner.generation))
        return _tell(self.spec, learner, thetas, noise, evaluation)

    def _check_generation(self, learner: ESLearner, log: GenerationLog) -> None:
        """NaN/inf in the fitness or the new mean stops training (the model keeps the generation before)."""
        where = f"generation {int(learner.generation)} (environment steps up to {int(learner.step)})"
        self._check_finite(np.asarray(log.fitness)[:, None], f"fitness (returns) of candidates in {where}")
        mean = np.asarray(self.spec.strategy.mean(jax.device_get(learner.agent)))
        if not np.all(np.isfinite(mean)):
            raise NonFiniteError(f"non-finite search mean after the update of {where}: "
                                 f"{int((~np.isfinite(mean)).sum())} of {mean.size} parameters")
        bad = [k for k, v in log.metrics.items() if not np.all(np.isfinite(v))]
        if bad:
            raise NonFiniteError(f"non-finite {', '.join(sorted(bad))} in the update of {where}")

    def _host_fitness(self, thetas: jax.Array, obs_rms: RunningMeanStd, generation: int) -> Evaluation:
        """Every candidate's episodes on a Gymnasium env (n_envs candidates at a time); episode e of this
        generation is reset with a seed derived from (seed, generation, e)."""
        cfg, env, k = self.config, self.env, self.n_envs
        vector = isinstance(env, gym.vector.VectorEnv)
        space = env.single_observation_space if vector else env.observation_space
        n, episodes = thetas.shape[0], cfg.episodes_per_candidate
        returns, lengths = np.zeros((n, episodes)), np.zeros((n, episodes), np.int32)
        obs_count, obs_sum, obs_sq = 0.0, np.zeros(space.shape[0]), np.zeros(space.shape[0])
        for e in range(episodes):
            seed = episode_seed(self.seed, generation, e)
            for start in range(0, n, k):
                rows = np.arange(start, min(start + k, n))
                batch = thetas[jnp.asarray(np.minimum(np.arange(start, start + k), n - 1))]
                obs, _ = env.reset(seed=seed)
                obs = np.asarray(obs, np.float32).reshape(k, -1)
                done = np.arange(k) >= len(rows)  # slots past the last candidate only pad the batch
                for t in range(cfg.max_episode_steps):
                    where = f"generation {generation} (candidates {rows[0]}..{rows[-1]}, episode step {t + 1})"
                    alive = ~done
                    action = self.scaler.to_env(np.asarray(_act_batch(self.spec, batch, obs_rms, obs)))
                    if vector:
                        next_obs, reward, terminated, truncated, _ = env.step(action)
                        check_env_output(env, space, next_obs, reward, n_envs=k)
                    else:
                        next_obs, reward, terminated, truncated, _ = env.step(action[0])
                        check_env_output(env, space, next_obs, reward)
                    next_obs = np.asarray(next_obs, np.float32).reshape(k, -1)
                    reward = np.asarray(reward, np.float64).reshape(k)
                    self._check_finite(next_obs[alive], f"observation at {where}")
                    self._check_finite(reward[alive], f"reward at {where}")
                    obs_count += alive.sum()
                    obs_sum += obs[alive].sum(0)
                    obs_sq += (obs[alive].astype(np.float64) ** 2).sum(0)
                    real = alive[:len(rows)]
                    returns[rows, e] += np.where(real, reward[:len(rows)], 0.0)
                    lengths[rows, e] += real
                    done = done | np.asarray(terminated, bool).reshape(k) | np.asarray(truncated, bool).reshape(k)
                    obs = next_obs
                    if done.all():
                        break
        mean = obs_sum / max(obs_count, 1.0)
        moments = Moments(jnp.float32(obs_count), jnp.asarray(mean, jnp.float32),
                          jnp.asarray(np.maximum(obs_sq - obs_count * mean**2, 0.0), jnp.float32))
        return Evaluation(jnp.asarray(returns, jnp.float32), jnp.asarray(lengths), moments)
