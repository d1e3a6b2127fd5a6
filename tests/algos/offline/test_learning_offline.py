"""Offline learning, cheaply: from a dataset of a noisy scripted swing-up controller on Pendulum-v1, TD3+BC and IQL
learn policies far better than the random policy, without a single environment step in training."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import polyak
from polyak.data import datasets as D
from polyak.evaluation import evaluate_policy

RANDOM_RETURN = -1200.0  # uniform random actions on Pendulum-v1: -1250 over 20 episodes (single ones -880 to -1680)
MARGIN = 500.0


def swing_up(obs: np.ndarray, info: dict) -> np.ndarray:
    """Energy pumping (full torque along the angular velocity while the energy is below the upright's), then a
    PD controller near the top; about -133 on Pendulum-v1."""
    c, s, w = obs
    if c > 0.85:
        u = -10.0 * np.arctan2(s, c) - 2.0 * w
    else:
        energy = w**2 / 6 + 5 * c  # (m l^2 / 3) w^2 / 2 + m g (l / 2) cos(theta), upright: 5
        u = 2.0 * np.sign(w) * (energy < 5.0) if abs(w) > 1e-3 else 2.0
    return np.array([np.clip(u, -2.0, 2.0)], np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("cls, extra", [(polyak.TD3BC, {}), (polyak.IQL, {"actor_lr_decay_steps": 0})])
def test_offline_learning_beats_random_by_a_margin(cls, extra):
    env = gym.make("Pendulum-v1")
    episodes = D.collect_episodes(env, swing_up, 10, seed=0, noise=0.5)  # 2000 noisy transitions
    data = D.flatten(episodes, env.observation_space, env.action_space, "Pendulum-v1")
    model = cls("MlpPolicy", dataset=data, seed=0, policy_kwargs={"net_arch": [64, 64]}, batch_size=128,
                eval_episodes=0, **extra)
    model.learn(1500, log_interval=500)
    mean, _ = evaluate_policy(model, env, 5, seed=100)
    assert mean > RANDOM_RETURN + MARGIN, f"{cls.__name__}: {mean:.1f}"
