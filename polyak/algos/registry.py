"""The algorithm registry: the one list of algorithms that the CLI, sweeps, `polyak.load` and the zoo read.

Every algorithm class registers itself where it is defined:

    @register(family="offpolicy", action_kinds=("Box",))
    class SAC(OffPolicyAlgorithm): ...

This module imports no algorithm (families import it), so it sits below them; `polyak/__init__.py`
imports every family, so the registry is complete before any model exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from polyak.io.checkpoint import CheckpointError, read_checkpoint

FAMILIES = ("offpolicy", "onpolicy", "tabular", "offline", "evolution", "collocation")
ACTION_KINDS = ("Box", "Discrete")


@dataclass(frozen=True)
class Entry:
    name: str  # the CLI's and the model file's name, e.g. "sac"
    cls: type
    family: str  # the package under polyak/algos/ that holds it
    action_kinds: tuple[str, ...]  # the gymnasium action spaces it handles
    jitted_loop: bool  # the fully jitted loop can train it on JAX envs (vmapped over seeds)
    observation_kinds: tuple[str, ...]  # "Box": flat vectors (MLP policies); "Discrete": state indices (tabular)


_ENTRIES: dict[str, Entry] = {}


class UnknownAlgorithmError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def register(*, family: str, action_kinds: tuple[str, ...], jitted_loop: bool = True,
             observation_kinds: tuple[str, ...] = ("Box",)):
    """Class decorator: record the algorithm under its `name` class attribute."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    if not action_kinds or any(k not in ACTION_KINDS for k in action_kinds):
        raise ValueError(f"action_kinds must be a non-empty subset of {ACTION_KINDS}, got {action_kinds}")

    def add(cls: type) -> type:
        name = cls.name
        if name in _ENTRIES and _ENTRIES[name].cls is not cls:
            raise ValueError(f"algorithm name {name!r} registered twice ({_ENTRIES[name].cls.__qualname__}, "
                             f"{cls.__qualname__})")
        _ENTRIES[name] = Entry(name, cls, family, tuple(action_kinds), bool(jitted_loop), tuple(observation_kinds))
        return cls

    return add


def names() -> list[str]:
    """Every registered algorithm name, family by family (FAMILIES' order), in registration order within one."""
    return sorted(_ENTRIES, key=lambda n: FAMILIES.index(_ENTRIES[n].family))


def entry(name: str) -> Entry:
    if name not in _ENTRIES:
        raise UnknownAlgorithmError(f"unknown algorithm {name!r}; known: {', '.join(names())}")
    return _ENTRIES[name]


def algorithm_class(name: str) -> Any:
    """The class registered under `name` (an error naming the known ones otherwise)."""
    return entry(name).cls


def classes() -> dict[str, Any]:
    """name -> class, every registered algorithm."""
    return {n: e.cls for n, e in _ENTRIES.items()}


def by_action_kind(observation_kind: str = "Box") -> dict[str, list[str]]:
    """Action-space kind -> the class names that handle it with `observation_kind` observations (for error
    messages that suggest an alternative)."""
    return {kind: [e.cls.__name__ for e in _ENTRIES.values()
                   if kind in e.action_kinds and observation_kind in e.observation_kinds] for kind in ACTION_KINDS}


def load_model(path, env=None):
    """Load any polyak model file, dispatching on the algorithm recorded inside it (`polyak.load`)."""
    _, meta = read_checkpoint(path)
    algo = meta.get("algorithm")
    if algo not in _ENTRIES:
        raise CheckpointError(f"{path}: unknown algorithm {algo!r} (known: {', '.join(_ENTRIES)})")
    return _ENTRIES[algo].cls.load(path, env=env)
