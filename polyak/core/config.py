"""Hyperparameters shared by the off-policy actor-critic family, and their validation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


class HyperparameterError(ValueError):
    """An invalid or unknown hyperparameter; raised before training starts."""


def need(ok: bool, msg: str) -> None:
    """Raise HyperparameterError(msg) unless ok."""
    if not ok:
        raise HyperparameterError(msg)


@dataclass(frozen=True)
class Config:
    """Base of every hyperparameter dataclass: SB3-style construction, validation, JSON form."""

    def validate(self) -> None:
        pass

    @classmethod
    def policy_kwargs_to_fields(cls, policy_kwargs: dict[str, Any]) -> dict[str, Any]:
        return _policy_kwargs_to_fields(policy_kwargs)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any], policy_kwargs: dict[str, Any] | None = None):
        """Build and validate from SB3-style keyword arguments; unknown keys raise."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise HyperparameterError(
                f"unknown hyperparameter(s) for {cls.__name__}: {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}")
        kwargs = dict(kwargs)
        for key, value in cls.policy_kwargs_to_fields(policy_kwargs or {}).items():
            kwargs.setdefault(key, value)
        for f in dataclasses.fields(cls):  # JSON gives lists where the dataclass keeps tuples
            if f.name in kwargs and isinstance(f.default, tuple):
                kwargs[f.name] = tuple(kwargs[f.name])
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class OffPolicyConfig(Config):
    learning_rate: float = 3e-4
    buffer_size: int = 1_000_000
    learning_starts: int = 1000  # warm-up steps of uniform random actions before any update
    batch_size: int = 256
    tau: float = 0.005  # Polyak averaging coefficient for target networks
    gamma: float = 0.99
    train_freq: int = 1  # env steps (per env) between training phases
    gradient_steps: int = 1  # gradient steps per training phase; -1 = as many as transitions collected
    actor_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    n_critics: int = 2
    normalize_obs: bool = True
    reward_scale: float = 1.0  # rewards are multiplied by this before they enter the buffer

    def validate(self) -> None:
        need(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        need(0 < self.tau <= 1, f"tau must be in (0, 1], got {self.tau}")
        need(self.buffer_size >= 1, f"buffer_size must be >= 1, got {self.buffer_size}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.batch_size <= self.buffer_size,
             f"batch_size ({self.batch_size}) must not exceed buffer_size ({self.buffer_size})")
        need(self.learning_starts >= 0, f"learning_starts must be >= 0, got {self.learning_starts}")
        need(self.train_freq >= 1, f"train_freq must be >= 1, got {self.train_freq}")
        need(self.gradient_steps >= 1 or self.gradient_steps == -1,
             f"gradient_steps must be >= 1 or -1, got {self.gradient_steps}")
        need(self.n_critics >= 1, f"n_critics must be >= 1, got {self.n_critics}")
        need(all(w >= 1 for w in self.actor_hidden + self.critic_hidden),
             f"hidden layer widths must be >= 1, got {self.actor_hidden} / {self.critic_hidden}")
        need(self.reward_scale > 0, f"reward_scale must be > 0, got {self.reward_scale}")


def _policy_kwargs_to_fields(policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """SB3's policy_kwargs=dict(net_arch=[...] or dict(pi=[...], qf=[...]), n_critics=2)."""
    policy_kwargs = dict(policy_kwargs)
    out: dict[str, Any] = {}
    net_arch = policy_kwargs.pop("net_arch", None)
    if isinstance(net_arch, dict):
        out["actor_hidden"] = tuple(net_arch["pi"])
        out["critic_hidden"] = tuple(net_arch["qf"])
    elif net_arch is not None:
        out["actor_hidden"] = out["critic_hidden"] = tuple(net_arch)
    if "n_critics" in policy_kwargs:
        out["n_critics"] = int(policy_kwargs.pop("n_critics"))
    if policy_kwargs:
        raise HyperparameterError(
            f"unsupported policy_kwargs: {', '.join(sorted(policy_kwargs))} (supported: net_arch, n_critics)")
    return out
