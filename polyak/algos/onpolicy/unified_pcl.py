"""Unified PCL (Nachum, Norouzi, Xu & Schuurmans 2017): PCL with one network Q_rho for both policy and value.

    V_rho(s)      = alpha log sum_a exp(Q_rho(s, a) / alpha)
    pi_rho(a | s) = exp((Q_rho(s, a) - V_rho(s)) / alpha)          (a softmax of Q / alpha)

so the consistency error C of PCL depends on rho through both terms, and
    rho <- rho - eta_pi C dC/drho|_(log pi part) - eta_v C dC/drho|_(V part),
taken here as one Adam step (eta_pi) on C dC/d(log pi part) + (eta_v / eta_pi) C dC/d(V part).
The update (on-policy segments, store, prioritised episode replay) is `consistency.PathConsistencyAgent.update`.
Discrete actions only: for Box actions V would be an integral over the action space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import gymnasium as gym
import jax
import jax.numpy as jnp

from polyak.algos.onpolicy.consistency import PathConsistencyAgent, PathConsistencyAlgorithm, PCLConfig
from polyak.algos.onpolicy.learner import ACTIVATIONS
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.networks import MLP
from polyak.envs.spaces import SpaceError


@dataclass(frozen=True)
class UnifiedPCLConfig(PCLConfig):
    # one network for pi and V: pi = softmax(Q / alpha) turns greedy as soon as Q differs by a few alpha, so
    # smaller steps than PCL's policy and a value weight eta_v / eta_pi of 10 / 3 (chain: BENCHMARKS.md)
    learning_rate: float = 3e-4  # eta_pi: Adam's step size on Q
    value_learning_rate: float = 1e-3  # eta_v: the V part of the gradient is weighted by eta_v / eta_pi
    alpha: float = 0.02  # entropy temperature (> 0)

    def validate(self) -> None:
        super().validate()
        need(self.alpha > 0, f"Unified PCL needs alpha > 0 (pi = softmax(Q / alpha)), got {self.alpha}")


def soft_value_and_log_policy(q: jax.Array, alpha: float) -> tuple[jax.Array, jax.Array]:
    """(V, log pi) from Q (..., n_actions): V = alpha logsumexp(Q / alpha), log pi = (Q - V) / alpha."""
    v = alpha * jax.nn.logsumexp(q / alpha, axis=-1)
    return v, (q - v[..., None]) / alpha


@dataclass(frozen=True)
class UnifiedPCLAgent(PathConsistencyAgent):
    cfg: UnifiedPCLConfig

    @cached_property
    def q_net(self) -> MLP:  # Q_rho(s, .): one output per action; small last layer: pi starts near uniform
        cfg = self.cfg
        return MLP(cfg.policy_hidden, self.n_actions, ACTIVATIONS[cfg.activation],
                   math.sqrt(2.0) if cfg.ortho_init else None, 0.01)

    @property
    def param_groups(self):
        return {"q": (("q",), self.cfg.learning_rate)}

    @property
    def value_gradient_weight(self) -> float:
        return self.cfg.value_learning_rate / self.cfg.learning_rate  # eta_v / eta_pi

    def init_params(self, key: jax.Array) -> dict:
        return {"q": self.q_net.init(key, jnp.zeros((1, self.obs_dim)))}

    def dist(self, params: dict, obs: jax.Array):
        return self.q_net.apply(params["q"], obs) / self.cfg.alpha  # logits: softmax(Q / alpha) = pi_rho

    def value(self, params: dict, obs: jax.Array) -> jax.Array:
        return soft_value_and_log_policy(self.q_net.apply(params["q"], obs), self.cfg.alpha)[0]

    def log_pi_and_values(self, params, obs, action, next_obs):
        v, log_pi = soft_value_and_log_policy(self.q_net.apply(params["q"], obs), self.cfg.alpha)
        log_pi_a = jnp.take_along_axis(log_pi, action.astype(jnp.int32), axis=-1)[..., 0]
        return log_pi_a, v, self.value(params, next_obs)


@register(family="onpolicy", action_kinds=("Discrete",))
class UnifiedPCL(PathConsistencyAlgorithm):
    """Unified PCL. ``UnifiedPCL("MlpPolicy", "CartPole-v1", d=20, alpha=0.01, ...)``; Discrete actions."""

    name = "unified_pcl"
    config_cls = UnifiedPCLConfig
    agent_cls = UnifiedPCLAgent

    def _check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        if not isinstance(action_space, gym.spaces.Discrete):
            raise SpaceError(f"UnifiedPCL needs a Discrete action space (V = alpha logsumexp(Q / alpha) sums over "
                             f"the actions), got {action_space}; for Box actions use PCL")
        super()._check_spaces(observation_space, action_space)
