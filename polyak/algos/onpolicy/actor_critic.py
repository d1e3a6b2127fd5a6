"""The advantage actor-critic loss and hyperparameters shared by A2C and A3C."""

from __future__ import annotations

from dataclasses import dataclass

from polyak.algos.onpolicy.learner import OnPolicyConfig, PolicyGradientAgent


@dataclass(frozen=True)
class A2CConfig(OnPolicyConfig):
    learning_rate: float = 7e-4
    n_steps: int = 5
    gae_lambda: float = 1.0
    normalize_advantage: bool = False
    optimizer: str = "rmsprop"


def actor_critic_loss(agent: PolicyGradientAgent, params: dict, obs, action, advantage, value_target):
    """-mean log pi(a|s) A + c_v mean (V(s) - R)^2 - c_H mean H[pi(.|s)]   (A and R are constants)."""
    cfg, D = agent.cfg, agent.distribution
    dist = agent.dist(params, obs)
    policy_loss = -(D.log_prob(dist, action) * advantage).mean()
    value_loss = ((agent.value(params, obs) - value_target) ** 2).mean()
    entropy = D.entropy(dist).mean()
    loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}
