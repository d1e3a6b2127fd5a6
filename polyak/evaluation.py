"""Deterministic evaluation of a trained policy on fresh, seeded episodes."""

from __future__ import annotations

from typing import Any

import numpy as np

from polyak.common.envs import make_env


def evaluate_policy(model: Any, env: Any, n_eval_episodes: int = 10, deterministic: bool = True,
                    seed: int = 0, return_episode_rewards: bool = False):
    """Run `n_eval_episodes` episodes (reset seeds seed, seed+1, ...) with the frozen normaliser.

    Returns (mean, std) of the episode returns, or (returns, lengths) with return_episode_rewards.
    """
    if n_eval_episodes < 1:
        raise ValueError(f"n_eval_episodes must be >= 1, got {n_eval_episodes}")
    env = make_env(env)
    returns, lengths = [], []
    for episode in range(n_eval_episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, total, length = False, 0.0, 0
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    if return_episode_rewards:
        return returns, lengths
    return float(np.mean(returns)), float(np.std(returns))
