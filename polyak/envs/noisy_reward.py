"""Gaussian reward noise: the task of the overestimation benchmark (DQN vs Double DQN).

`GaussianRewardNoise(env, sigma)` adds sigma * N(0, 1) to every reward. The noise has mean zero,
so the task's true Q-values are those of the noise-free environment, but a Q-learner's max over
noisy estimates is biased upwards (van Hasselt et al. 2016); Double DQN's decoupled target is
not. The noise is drawn from a generator seeded by `reset(seed=...)`, so seeded episodes (and
polyak's resume, which replays an episode's actions) are reproducible.

Registered id: ``polyak/NoisyCartPole-v1`` (CartPole-v1 with sigma = 1; ``--env-kwarg reward_noise=2``
changes sigma).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class GaussianRewardNoise(gym.Wrapper):
    """reward + sigma * eps, eps ~ N(0, 1) (its own generator, seeded at reset)."""

    def __init__(self, env: gym.Env, sigma: float = 1.0):
        if not sigma >= 0:
            raise ValueError(f"reward noise sigma must be >= 0, got {sigma}")
        super().__init__(env)
        self.sigma = float(sigma)
        self._noise = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._noise = np.random.default_rng([int(seed), 0x5EED])
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(reward) + self.sigma * float(self._noise.standard_normal()), terminated, truncated, info


def make_noisy_cartpole(reward_noise: float = 1.0, **kwargs: Any) -> gym.Env:
    return GaussianRewardNoise(gym.make("CartPole-v1", **kwargs), reward_noise)
