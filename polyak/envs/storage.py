"""Energy storage arbitrage in JAX: an Euler-class problem (affine controlled state, exogenous Markov price).

A battery buys energy when the price is low and sells it when the price is high.

    state   s1 = state of charge (fraction of capacity, in [0, 1]);  s2 = price level index, p = prices[s2]
    action  a  = energy bought from the grid in one step (a < 0: sold), Box(-1, 1)
    a_eff   = clip(a, (0 - alpha s1 - delta) / beta, (1 - alpha s1 - delta) / beta)
              the battery's controller refuses to charge beyond full or discharge below empty
    s1'     = alpha s1 + beta a_eff + delta                   alpha: 1 - self-discharge, beta: efficiency,
                                                                delta: a constant trickle charge
    s2'     ~ transition[s2, :]                                 a Markov chain of price levels
    r       = -p a_eff - (c / 2) a_eff^2 - kappa ((s1 - s_mid) / s_mid)^e        (e = 4 by default)
              (payment, a quadratic cost of power (losses, wear), a degradation cost that grows steeply
               towards empty and full)
    obs     = (s1, p);  reset: s1 ~ U(0, 1), s2 uniform over the levels;  max_steps per episode, no termination

The reward is smooth in (s1, a) and the controlled dynamics are affine, so the Bellman equation's first-order
condition and the envelope theorem give the Euler equation (see `polyak.algos.collocation.euler`). With the
default parameters the optimal policy is interior everywhere on [0, 1]: the state-dependent clip and the
action box never bind along it (value iteration on a fine grid confirms it), which is what the Euler equation
needs; the clip is what keeps any other policy (e.g. a learner's exploration) physical and its rewards bounded.

`EulerClassEnv` is what a solver reads from such an environment: the model's numbers (`AffineMarkovModel`),
and the reward as a pure function of (s1, s2, a) for its derivatives.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak.envs.protocol import GymnasiumAdapter, GymnasiumVectorAdapter


class AffineMarkovModel(NamedTuple):
    """s1' = alpha s1 + beta a + delta, s2' ~ transition[s2]; the domain of s1 and the action bounds (arrays)."""

    alpha: jax.Array
    beta: jax.Array
    delta: jax.Array
    transition: jax.Array  # (K, K), rows sum to 1
    levels: jax.Array  # (K,) what the observation shows for each exogenous state (here: the price)
    s1_low: jax.Array  # the controlled state's domain
    s1_high: jax.Array
    action_low: jax.Array
    action_high: jax.Array


class EulerClassEnv:
    """A JAX env whose controlled state moves affinely, with an exogenous Markov state and a smooth reward.

    Subclasses supply `euler_model(params)` (the model's numbers) and `reward(s1, s2, a, params)`, a pure
    function of scalars that is smooth in s1 and a (solvers take its derivatives with `jax.grad`). The
    observation is (s1, levels[s2]), so a policy reads s2 back as the nearest level. Two envs of one class with
    equal attributes are equal (a jit static argument compiles once for both).
    """

    def euler_model(self, params) -> AffineMarkovModel:
        raise NotImplementedError

    def reward(self, s1: jax.Array, s2: jax.Array, a: jax.Array, params) -> jax.Array:
        raise NotImplementedError

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))


class StorageParams(NamedTuple):
    alpha: float = 0.99  # charge kept per step (1 % self-discharge)
    beta: float = 0.9  # charge stored per unit of energy bought (round-trip losses)
    delta: float = 0.005  # trickle charge per step; balances self-discharge at half charge
    prices: tuple[float, ...] = (0.2, 1.0, 2.5)  # low, normal, peak
    transition: tuple[tuple[float, ...], ...] = ((0.85, 0.15, 0.0), (0.1, 0.8, 0.1), (0.0, 0.3, 0.7))
    power_cost: float = 2.0  # c in (c / 2) a^2
    degradation_cost: float = 0.3  # kappa: the per-step cost at empty or full
    soc_mid: float = 0.5  # s_mid, where degradation costs nothing
    degradation_power: float = 4.0  # the exponent of ((s1 - s_mid) / s_mid); 2 makes a linear-quadratic problem
    max_steps: int = 200


class StorageState(NamedTuple):
    soc: jax.Array  # s1
    price_index: jax.Array  # s2 (int32)
    t: jax.Array  # steps taken in this episode


class Storage(EulerClassEnv):
    """The JAX energy-storage env (see the module docstring); follows `polyak.envs.JaxEnv`."""

    default_params = StorageParams()
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, price_range: tuple[float, float] = (0.2, 2.5)):
        self.price_range = (float(price_range[0]), float(price_range[1]))  # the observation's bounds on p

    @property
    def observation_space(self) -> gym.spaces.Box:
        low, high = self.price_range
        return gym.spaces.Box(np.array([0.0, low], np.float32), np.array([1.0, high], np.float32), dtype=np.float32)

    @staticmethod
    def check_params(params: StorageParams) -> None:
        """ValueError naming the problem for parameters the model cannot have (host-side, before jitting)."""
        P, prices = np.asarray(params.transition, np.float64), np.asarray(params.prices, np.float64)
        if prices.ndim != 1 or prices.size < 1:
            raise ValueError(f"prices must be a non-empty list of price levels, got {params.prices!r}")
        if P.shape != (prices.size, prices.size):
            raise ValueError(f"transition must be {prices.size} x {prices.size} (one row per price level), "
                             f"got shape {P.shape}")
        if np.any(P < 0) or not np.allclose(P.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError(f"every row of transition must be a probability distribution, row sums {P.sum(axis=1)}")
        if not (0 < params.alpha <= 1 and params.beta > 0):
            raise ValueError(f"need 0 < alpha <= 1 and beta > 0, got alpha={params.alpha}, beta={params.beta}")
        if not (0 < params.soc_mid < 1 and params.power_cost > 0 and params.degradation_cost >= 0):
            raise ValueError(f"need 0 < soc_mid < 1, power_cost > 0, degradation_cost >= 0, got {params.soc_mid}, "
                             f"{params.power_cost}, {params.degradation_cost}")
        if params.degradation_power not in (2.0, 4.0, 6.0, 8.0):
            raise ValueError(f"degradation_power must be an even exponent 2, 4, 6 or 8 (a smooth convex cost), got "
                             f"{params.degradation_power}")

    def euler_model(self, params: StorageParams) -> AffineMarkovModel:
        f = lambda x: jnp.asarray(x, float)  # noqa: E731  (float32, or float64 under jax.enable_x64)
        return AffineMarkovModel(f(params.alpha), f(params.beta), f(params.delta), f(params.transition),
                                 f(params.prices), f(0.0), f(1.0), f(self.action_space.low[0]),
                                 f(self.action_space.high[0]))

    def reward(self, s1, s2, a, params: StorageParams):
        price = jnp.asarray(params.prices)[s2]
        z = (s1 - params.soc_mid) / params.soc_mid
        wear = (z * z) ** (0.5 * params.degradation_power)  # |z|^e with a base >= 0 (e may be traced in params)
        return -price * a - 0.5 * params.power_cost * a**2 - params.degradation_cost * wear

    def feasible_action(self, soc, a, params: StorageParams):
        """a_eff: a clipped to the action box and to the charge that keeps s1' in [0, 1]."""
        p = params
        low = jnp.maximum(self.action_space.low[0], (0.0 - p.alpha * soc - p.delta) / p.beta)
        high = jnp.minimum(self.action_space.high[0], (1.0 - p.alpha * soc - p.delta) / p.beta)
        return jnp.clip(a, low, high)

    def observe(self, state: StorageState, params: StorageParams) -> jax.Array:
        price = jnp.asarray(params.prices, jnp.float32)[state.price_index]
        return jnp.stack([state.soc, price]).astype(jnp.float32)

    def reset(self, key: jax.Array, params: StorageParams) -> tuple[StorageState, jax.Array]:
        soc_key, price_key = jax.random.split(key)
        n = len(params.prices)
        state = StorageState(jax.random.uniform(soc_key, ()), jax.random.randint(price_key, (), 0, n, jnp.int32),
                             jnp.zeros((), jnp.int32))
        return state, self.observe(state, params)

    def step(self, key: jax.Array, state: StorageState, action: jax.Array, params: StorageParams):
        p = params
        a = self.feasible_action(state.soc, action[0], p)
        reward = self.reward(state.soc, state.price_index, a, p)
        soc = jnp.clip(p.alpha * state.soc + p.beta * a + p.delta, 0.0, 1.0)  # s1' (the clip only removes rounding)
        transition = jnp.asarray(p.transition, jnp.float32)[state.price_index]
        price_index = jax.random.choice(key, transition.shape[0], p=transition).astype(jnp.int32)  # s2' ~ P[s2]
        t = state.t + 1
        new_state = StorageState(soc, price_index, t)
        return new_state, self.observe(new_state, p), reward, jnp.asarray(False), t >= p.max_steps, {}


def _params(params: dict) -> StorageParams:
    unknown = sorted(set(params) - set(StorageParams._fields))
    if unknown:
        raise ValueError(f"unknown Storage parameter(s) {', '.join(unknown)}; known: {', '.join(StorageParams._fields)}")
    out = StorageParams(**{k: (tuple(tuple(float(x) for x in row) for row in v) if k == "transition" else
                               tuple(float(x) for x in v) if k == "prices" else v) for k, v in params.items()})
    Storage.check_params(out)
    return out


def storage_env(**params) -> tuple[Storage, StorageParams]:
    """The env and its params from keyword overrides of StorageParams (checked; lists accepted for tuples)."""
    params = _params(params)
    low, high = min(params.prices), max(params.prices)
    return Storage((low, high) if high > low else (low - 1.0, high + 1.0)), params  # a Box of positive width


def make_gymnasium_storage(**params) -> GymnasiumAdapter:
    """Entry point of ``gymnasium.make("polyak/Storage-v0")``; keyword arguments override StorageParams."""
    return GymnasiumAdapter(*storage_env(**params))


def make_vector_storage(num_envs: int, **params) -> GymnasiumVectorAdapter:
    """Entry point of ``gymnasium.make_vec("polyak/Storage-v0", num_envs, vectorization_mode="vector_entry_point")``."""
    env, params = storage_env(**params)
    return GymnasiumVectorAdapter(env, num_envs, params)
