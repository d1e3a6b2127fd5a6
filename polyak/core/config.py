"""Hyperparameters shared by the off-policy actor-critic family, and their validation."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar


class HyperparameterError(ValueError):
    """An invalid or unknown hyperparameter; raised before training starts."""


def need(ok: bool, msg: str) -> None:
    """Raise HyperparameterError(msg) unless ok."""
    if not ok:
        raise HyperparameterError(msg)


@dataclass(frozen=True)
class Config:
    """Base of every hyperparameter dataclass: SB3-style construction, validation, JSON form."""

    may_be_infinite: ClassVar[frozenset[str]] = frozenset()  # float fields where inf means "off"

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
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in kwargs:
                kwargs[f.name] = check_type(f.name, kwargs[f.name], hints[f.name], f.name in cls.may_be_infinite)
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
    # Choose each action before the step's gradient update, so the envs step while the update runs:
    # faster, but the acting policy is one update behind SB3's order (measured in BENCHMARKS.md)
    act_before_update: bool = False

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


def _type_name(value: Any) -> str:
    return f"{value!r} (a {type(value).__name__})"


def check_type(name: str, value: Any, hint: Any, allow_inf: bool = False) -> Any:
    """`value` as the field `name` of type `hint` holds it, or HyperparameterError naming the field: ints are
    ints (1e3 is refused: write 1000), floats are finite numbers (+inf too where `allow_inf`: "off"), bools
    are bools, tuple fields take a list or tuple of their element type; a union takes any of its members."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    errors = []
    for option in options:
        try:
            return _check_one(name, value, option, allow_inf)
        except HyperparameterError as e:
            errors.append(str(e))
    if len(errors) == 1:
        raise HyperparameterError(errors[0])
    wanted = " or ".join(getattr(o, "__name__", str(o)).replace("NoneType", "None") for o in options)
    raise HyperparameterError(f"{name} must be {wanted}, got {_type_name(value)}")


def _check_one(name: str, value: Any, hint: Any, allow_inf: bool = False) -> Any:
    if hint is type(None):
        need(value is None, f"{name} must be None, got {_type_name(value)}")
        return value
    if hint is bool:
        need(isinstance(value, bool), f"{name} must be true or false, got {_type_name(value)}")
        return value
    if hint is int:
        need(isinstance(value, int) and not isinstance(value, bool),
             f"{name} must be an integer, got {_type_name(value)}"
             + (f"; write {int(value)}" if isinstance(value, float) and value.is_integer() else ""))
        return value
    if hint is float:
        need(isinstance(value, (int, float)) and not isinstance(value, bool)
             and (math.isfinite(value) or (allow_inf and value == math.inf)),
             f"{name} must be a finite number{' or inf' if allow_inf else ''}, got {_type_name(value)}")
        return float(value)
    if hint is str:
        need(isinstance(value, str), f"{name} must be a string, got {_type_name(value)}")
        return value
    if typing.get_origin(hint) is tuple:  # tuple[int, ...]: JSON gives a list
        need(isinstance(value, (list, tuple)), f"{name} must be a list, got {_type_name(value)}")
        element = typing.get_args(hint)[0]
        return tuple(_check_one(f"{name}[{i}]", v, element) for i, v in enumerate(value))
    return value  # a type this check does not know: the config's own validate() decides


def _policy_kwargs_to_fields(policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """SB3's policy_kwargs=dict(net_arch=[...] or dict(pi=[...], qf=[...]), n_critics=2)."""
    policy_kwargs = dict(policy_kwargs)
    out: dict[str, Any] = {}
    net_arch = policy_kwargs.pop("net_arch", None)
    if isinstance(net_arch, dict):
        missing = sorted({"pi", "qf"} - set(net_arch))
        unknown = sorted(set(net_arch) - {"pi", "qf"})
        need(not missing and not unknown, "net_arch as a dict needs the keys 'pi' (actor) and 'qf' (critics)"
             + (f"; missing: {', '.join(missing)}" if missing else "") + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
        out["actor_hidden"] = tuple(net_arch["pi"])
        out["critic_hidden"] = tuple(net_arch["qf"])
    elif net_arch is not None:
        out["actor_hidden"] = out["critic_hidden"] = tuple(net_arch)
    if "n_critics" in policy_kwargs:
        out["n_critics"] = policy_kwargs.pop("n_critics")
    if policy_kwargs:
        raise HyperparameterError(
            f"unsupported policy_kwargs: {', '.join(sorted(policy_kwargs))} (supported: net_arch, n_critics)")
    return out
