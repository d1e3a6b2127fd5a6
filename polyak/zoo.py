"""Tuned hyperparameters per (algorithm, environment), applied by the CLI unless --no-tuned.

Every entry is recorded with its measured results in BENCHMARKS.md. Class defaults (used by
the Python API) are the lecture's: Adam 3e-4, replay 1e6, batch 256, tau 0.005, gamma 0.99, [256, 256].
"""

from __future__ import annotations

from typing import Any

TUNED: dict[tuple[str, str], dict[str, Any]] = {
    # RL Zoo uses lr 1e-3 for SAC on Pendulum; we keep every other default.
    ("sac", "Pendulum-v1"): {"learning_rate": 1e-3},
    ("td3", "Pendulum-v1"): {"learning_rate": 1e-3},
    ("ddpg", "Pendulum-v1"): {"learning_rate": 1e-3},
}


def tuned_hyperparameters(algo: str, env_id: str) -> dict[str, Any]:
    return dict(TUNED.get((algo, env_id), {}))
