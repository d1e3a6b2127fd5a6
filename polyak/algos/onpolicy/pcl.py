"""Path consistency learning (PCL; Nachum, Norouzi, Xu & Schuurmans 2017).

A policy pi_theta and a soft state value V_phi (two networks) minimise the d-step soft consistency error

    C(s_i:i+d) = -V_phi(s_i) + gamma^d V_phi(s_{i+d})
                 + sum_{j<d} gamma^j (r_{i+j} - alpha log pi_theta(a_{i+j}|s_{i+j}))

squared, on segments of on-policy rollouts and of whole replayed episodes (prioritised by exp(lambda R)):
    theta <- theta - eta_pi C dC/dtheta = theta + eta_pi alpha C sum_j gamma^j grad log pi_theta(a_{i+j}|s_{i+j})
    phi   <- phi   - eta_v  C dC/dphi   = phi   + eta_v  C (grad V_phi(s_i) - gamma^d grad V_phi(s_{i+d}))
(each through its own Adam). The update's three steps (on-policy, store, replay) are
`consistency.PathConsistencyAgent.update`; this module says what pi and V are. Discrete actions use a
softmax policy; Box actions a Gaussian with a state-independent log std, whose density gives log pi (the
consistency holds for densities as for probabilities; the stored action is the unclipped sample).
"""

from __future__ import annotations

from dataclasses import dataclass

from polyak.algos.onpolicy.consistency import PathConsistencyAgent, PathConsistencyAlgorithm, PCLConfig
from polyak.algos.registry import register


@dataclass(frozen=True)
class PCLAgent(PathConsistencyAgent):
    @property
    def param_groups(self):
        cfg = self.cfg
        return {"policy": (("policy", "log_std"), cfg.learning_rate), "value": (("value",), cfg.value_learning_rate)}

    def log_pi_and_values(self, params, obs, action, next_obs):
        log_pi = self.distribution.log_prob(self.dist(params, obs), action)  # log pi_theta(a|s)
        return log_pi, self.value(params, obs), self.value(params, next_obs)  # V_phi(s), V_phi(s')


@register(family="onpolicy", action_kinds=("Box", "Discrete"))
class PCL(PathConsistencyAlgorithm):
    """PCL. ``PCL("MlpPolicy", env, d=20, alpha=0.01, priority_temperature=0.02, ...)``."""

    name = "pcl"
    config_cls = PCLConfig
    agent_cls = PCLAgent
