"""REINFORCE (Williams 1992) with reward-to-go and a choice of baseline.

Per rollout (n_steps x n_envs transitions):
  1. reward-to-go   G_t = sum_{k>=0} gamma^k r_{t+k}   (to the episode's end)
  2. baseline       b = 0 ("none"), mean G ("constant"), mean of G at the same time step t of the
                    episode ("time"), a learned V(s_t) ("state": the Monte-Carlo actor-critic), or a
                    learned V(s_t, t) ("state_time": the value of the time-limited MDP, whose state is (s, t))
  3. gradient       g = mean_t grad log pi(a_t|s_t) (G_t - b_t);  the learned baselines also regress V on G

Any baseline that does not depend on a_t leaves E[g] unchanged (E[grad log pi] = 0) but changes its
variance: `polyak.bench_variance` measures the ordering. Without a critic the return of an episode cut
by the rollout's end is unknown, so only rows whose episode ended inside the rollout are used; a
time-limit end is then treated as the end of the return (the standard REINFORCE approximation).
With a learned baseline the rollout's cut is bootstrapped from V(s') and every row is used. "state"
also bootstraps at a time limit (V(s) cannot tell that the episode was about to end); "state_time"
sees t / time_horizon, so under a time limit (s', t + 1) is a state of the MDP and a time-limit end a
true terminal: it stops the return there, as the baselines without a critic do (Pardo et al. 2018,
"Time limits in reinforcement learning").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from polyak.algos.onpolicy.host import OnPolicyAlgorithm
from polyak.algos.onpolicy.learner import OnPolicyConfig, PGState, PolicyGradientAgent, Rollout
from polyak.algos.registry import register
from polyak.core.config import need
from polyak.core.returns import complete_episodes, reward_to_go

BASELINES = ("none", "constant", "time", "state", "state_time")
LEARNED_BASELINES = ("state", "state_time")


@dataclass(frozen=True)
class REINFORCEConfig(OnPolicyConfig):
    learning_rate: float = 1e-3
    n_steps: int = 1000
    baseline: str = "state"
    normalize_advantage: bool = False
    max_grad_norm: float = float("inf")
    # Time steps kept by the "time" baseline (longer episodes share the last) and the scale of the
    # "state_time" critic's input t / time_horizon. REINFORCE(...) sets it to the env's time limit
    # (spec.max_episode_steps) unless given; 1000 where the env has none.
    time_horizon: int = 1000

    def validate(self) -> None:
        super().validate()
        need(self.baseline in BASELINES, f"baseline must be one of {BASELINES}, got {self.baseline!r}")
        need(self.time_horizon >= 1, f"time_horizon must be >= 1, got {self.time_horizon}")


def baseline_values(kind: str, returns, weight, time_in_episode, state_value, time_horizon: int):
    """b_t for each row; `weight` marks rows with a known return (averages use only those).

    The averages leave the row's own return out (b for row i is the mean of the *other* rows'
    returns): a baseline that contains G_i depends on a_i, which would bias the gradient and
    shrink it by (1 - 1/n). Where no other row qualifies, b = 0.
    """
    def mean_of_others(total, count):
        others = count - weight
        return jnp.where(others > 0, (total - returns * weight) / jnp.maximum(others, 1.0), 0.0)

    if kind == "none":
        return jnp.zeros_like(returns)
    if kind == "constant":  # b = mean G (of the other rows)
        return mean_of_others((returns * weight).sum(), weight.sum())
    if kind == "time":  # b(t) = mean G of the other rows at the same time step of their episode
        t = jnp.clip(time_in_episode.astype(jnp.int32), 0, time_horizon - 1).reshape(-1)
        total = jax.ops.segment_sum((returns * weight).reshape(-1), t, time_horizon)
        count = jax.ops.segment_sum(weight.reshape(-1), t, time_horizon)
        return mean_of_others(total[t].reshape(returns.shape), count[t].reshape(returns.shape))
    return state_value  # "state": b = V(s_t);  "state_time": b = V(s_t, t)


@dataclass(frozen=True)
class REINFORCEAgent(PolicyGradientAgent):
    cfg: REINFORCEConfig

    @property
    def time_aware(self) -> bool:
        """The critic is V(s, t): its input is the observation and t / time_horizon."""
        return self.cfg.baseline == "state_time"

    def value_inputs(self, obs: jax.Array, time_in_episode: jax.Array) -> jax.Array:
        """The critic's input for observations at time steps t: s, or (s, t / time_horizon)."""
        if not self.time_aware:
            return obs
        return jnp.concatenate([obs, (time_in_episode / self.cfg.time_horizon)[..., None]], axis=-1)

    def init_params(self, key: jax.Array) -> dict:
        params = super().init_params(key)
        if self.time_aware:  # V(s, t): the first layer has one input more
            params["value"] = self.value_net.init(jax.random.fold_in(key, 1), jnp.zeros((1, self.obs_dim + 1)))
        return params

    def rollout_values(self, params: dict, rollout: Rollout) -> tuple[jax.Array, jax.Array]:
        """V at (s_t, t) and at the next state (s'_t, t + 1) for every row (t is ignored by V(s))."""
        t = rollout.time_in_episode
        return (self.value(params, self.value_inputs(rollout.obs, t)),
                self.value(params, self.value_inputs(rollout.next_obs, t + 1.0)))

    def advantages(self, params: dict, rollout: Rollout):
        """(G_t - b_t, G_t, weight_t, V(s_t)) for every row of the rollout."""
        cfg = self.cfg
        learned = cfg.baseline in LEARNED_BASELINES
        value, next_value = self.rollout_values(params, rollout)
        # 1. reward-to-go; with a critic, cut tails bootstrap from V(s'). With t in the state a time-limit
        #    end is terminal too, so only the rollout's cut bootstraps (Pardo et al. 2018).
        terminal = rollout.episode_end if self.time_aware else rollout.terminated
        returns = reward_to_go(rollout.reward, terminal, rollout.episode_end, cfg.gamma,
                               next_value if learned else None)
        weight = jnp.ones_like(returns) if learned else complete_episodes(rollout.episode_end).astype(returns.dtype)
        # 2. baseline
        b = baseline_values(cfg.baseline, returns, weight, rollout.time_in_episode, value, cfg.time_horizon)
        psi = returns - b
        if cfg.normalize_advantage:
            mean = (psi * weight).sum() / jnp.maximum(weight.sum(), 1.0)
            std = jnp.sqrt((((psi - mean) ** 2) * weight).sum() / jnp.maximum(weight.sum(), 1.0))
            psi = (psi - mean) / (std + 1e-8)
        return jax.lax.stop_gradient(psi), returns, weight, value

    def loss(self, params: dict, rollout: Rollout, psi, returns, weight):
        """-mean_w log pi(a|s) psi  [+ c_v mean_w (V - G)^2 for a learned baseline]  - c_H H."""
        cfg, D = self.cfg, self.distribution
        n = jnp.maximum(weight.sum(), 1.0)
        dist = self.dist(params, rollout.obs)
        policy_loss = -(D.log_prob(dist, rollout.action) * psi * weight).sum() / n
        entropy = (D.entropy(dist) * weight).sum() / n
        loss = policy_loss - cfg.ent_coef * entropy
        metrics = {"policy_loss": policy_loss, "entropy": entropy, "rows_used": weight.mean()}
        if cfg.baseline in LEARNED_BASELINES:
            value = self.value(params, self.value_inputs(rollout.obs, rollout.time_in_episode))
            value_loss = (((value - returns) ** 2) * weight).sum() / n
            loss = loss + cfg.vf_coef * value_loss
            metrics["value_loss"] = value_loss
        return loss, metrics

    def update(self, state: PGState, rollout: Rollout, key: jax.Array):
        psi, returns, weight, _ = self.advantages(state.params, rollout)
        # 3. one gradient step on the score-function estimator (and the value regression)
        return self.gradient_step(state, self.loss, rollout, psi, returns, weight)


def time_limit(env: Any) -> int | None:
    """The env's time limit (spec.max_episode_steps) for an id, an env or a vector env; None if unknown."""
    spec = gym.spec(env) if isinstance(env, str) else getattr(env, "spec", None)
    return getattr(spec, "max_episode_steps", None)


@register(family="onpolicy", action_kinds=("Box", "Discrete"))
class REINFORCE(OnPolicyAlgorithm):
    """REINFORCE. ``REINFORCE("MlpPolicy", env, baseline="none"|"constant"|"time"|"state"|"state_time")``."""

    name = "reinforce"
    config_cls = REINFORCEConfig
    agent_cls = REINFORCEAgent

    def __init__(self, policy: str = "MlpPolicy", env: Any = None, **kwargs: Any):
        # t is counted against the env's own time limit unless time_horizon is given
        kwargs.setdefault("time_horizon", time_limit(env) or REINFORCEConfig.time_horizon)
        super().__init__(policy, env, **kwargs)

    def predict_values(self, observations) -> np.ndarray:
        """V(s) as `OnPolicyAlgorithm.predict_values`; refused for a V(s, t) critic."""
        if self.config.baseline == "state_time":
            raise ValueError("this model's critic is V(s, t) (baseline='state_time'): it needs the time step of "
                             "each observation, which predict_values(observations) is not given")
        return super().predict_values(observations)
