"""Tuned hyperparameters per (algorithm, environment), applied by the CLI unless --no-tuned.

Every entry is recorded with its measured results in BENCHMARKS.md. Class defaults (used by
the Python API) are the lecture's: Adam 3e-4, replay 1e6, batch 256, tau 0.005, gamma 0.99, [256, 256].
"""

from __future__ import annotations

from typing import Any

from polyak.algos import registry
from polyak.core.config import HyperparameterError

_DQN_CARTPOLE: dict[str, Any] = {
    "learning_rate": 1e-3, "batch_size": 64, "buffer_size": 100_000, "learning_starts": 1000,
    "gamma": 0.99, "target_update_interval": 128, "train_freq": 256, "gradient_steps": 128,
    "exploration_fraction": 0.16, "exploration_final_eps": 0.04, "net_arch": [256, 256], "n_steps": 5,
    "learning_rate_decay_steps": 25_000, "learning_rate_final": 1e-4,
}

TUNED: dict[tuple[str, str], dict[str, Any]] = {
    # RL Zoo uses lr 1e-3 for SAC on Pendulum; we keep every other default.
    ("sac", "Pendulum-v1"): {"learning_rate": 1e-3},
    ("td3", "Pendulum-v1"): {"learning_rate": 1e-3},
    ("ddpg", "Pendulum-v1"): {"learning_rate": 1e-3},
    ("sac", "polyak/Pendulum-v1"): {"learning_rate": 1e-3},
    ("td3", "polyak/Pendulum-v1"): {"learning_rate": 1e-3},
    ("ddpg", "polyak/Pendulum-v1"): {"learning_rate": 1e-3},
    # SAC's upgrades on Pendulum, as measured (BENCHMARKS.md, 2026-12-06; 3 seeds at 10k steps): TQC with SAC's
    # lr 1e-3; CrossQ with its own defaults (lr 1e-3) but [256, 256] critics, which SBX notes already suffice
    **{("tqc", env): {"learning_rate": 1e-3} for env in ("Pendulum-v1", "polyak/Pendulum-v1")},
    **{("crossq", env): {"critic_hidden": [256, 256]} for env in ("Pendulum-v1", "polyak/Pendulum-v1")},
    # The RL4AA'26 challenge task: 10 envs as in the challenge notebooks, one gradient step per
    # env step (10 per vector step), and the challenge's target (a centred beam, as small as
    # possible); pass --env-kwarg 'target=[NaN,NaN,NaN,NaN]' to train for random targets.
    ("sac", "polyak/TransverseTuning-v0"): {"n_envs": 10, "gradient_steps": 10,
                                           "env_kwargs": {"target": [0.0, 0.0, 0.0, 0.0]}},
    # Orbit steering: the potential-based reward (its return is the RMS reduction, 1 per mm) and
    # gamma 0.9 (the SVD controller needs ~6 steps); the tutorial's -RMS reward made the critics
    # diverge at gamma 0.99 (BENCHMARKS.md)
    ("sac", "polyak/OrbitSteering-v0"): {"gamma": 0.9,
                                         "env_kwargs": {"reward": "rms_decrease", "reward_scale": 1000.0}},
    # AWR on Pendulum: one update per episode (200 steps) over a replay of the last 50k samples;
    # updates every 1000 steps learned far slower (measured, BENCHMARKS.md). These are also the class defaults.
    **{("awr", env): {"n_steps": 200, "buffer_rollouts": 250, "value_steps": 50, "policy_steps": 250,
                      "batch_size": 256, "temperature": 1.0, "weight_clip": 20.0, "learning_rate": 3e-4,
                      "value_learning_rate": 1e-3, "gamma": 0.99, "gae_lambda": 0.95}
       for env in ("Pendulum-v1", "polyak/Pendulum-v1")},
    # Fitted Q-iteration for continuous actions on Pendulum (offline, `--dataset`): [64, 64] networks, critic lr 1e-3.
    # FQI runs its maximiser (4 starts x <= 10 Adam steps) for every target, so the critic's size sets its cost;
    # 200 gradient steps per iteration (NFQCA: 200 critic + 50 actor). Measured in BENCHMARKS.md (fitted Q).
    **{(algo, env): {"learning_rate": 1e-3, "net_arch": [64, 64]}
       for algo in ("fqi", "amortized_fqi", "nfqca") for env in ("Pendulum-v1", "polyak/Pendulum-v1")},
    # DQN / Double DQN on CartPole: RL Zoo's settings (128 gradient steps every 256 env steps; RL Zoo's
    # target_update_interval=10 *env* steps is one target copy per training phase, i.e. 128 gradient
    # steps here, where it counts gradient steps) with 5-step returns and lr 1e-3 instead of 2.3e-3:
    # with RL Zoo's one-step returns the final greedy policies of 2 of 3 seeds let the cart drift off
    # the track after ~100-140 steps (BENCHMARKS.md). The learning rate falls linearly from 1e-3 to 1e-4 over the
    # first 25k gradient steps (a 50k-step run's worth) and stays there: at a constant 1e-3 the greedy policies
    # forgot with longer training (5 seeds, jitted loop: DQN 500 x 5 at 50k steps but 330.7 / 297.1 / 500 / 500 /
    # 500 at 100k; Double DQN 478.9 / 500 / 255.8 / 130 / 498.3 at 100k); with the schedule DQN 500 x 5 at 50k and
    # 4 of 5 seeds >= 450 at 100k, Double DQN 4 of 5 at 50k and 5 of 5 at 100k; on Gymnasium's CartPole-v1
    # (host loop) at 100k DQN 4 of 5 and Double DQN 5 of 5 (BENCHMARKS.md, 2026-12-06).
    # polyak/NoisyCartPole-v1 (reward noise, the overestimation benchmark) uses the same settings.
    **{(algo, env): dict(_DQN_CARTPOLE) for algo in ("dqn", "double_dqn")
       for env in ("CartPole-v1", "gymnax/CartPole-v1", "polyak/NoisyCartPole-v1")},
    # REINFORCE (state baseline) on CartPole: tuned on seed 0 (BENCHMARKS.md): 8 envs x 128 steps per update,
    # normalised advantages (without, seed 0 sat near a return of 200 from 60k to 160k steps).
    **{("reinforce", env): {"n_envs": 8, "n_steps": 128, "learning_rate": 1e-3, "normalize_advantage": True}
       for env in ("CartPole-v1", "gymnax/CartPole-v1")},
    # A2C on CartPole: RL Zoo's settings (8 envs, 5-step rollouts, RMSprop 7e-4, no entropy bonus) and, as
    # RL Zoo, raw observations: with the running normaliser seed 0 reached 500 at 120k steps, then collapsed
    # to ~110 for good; raw observations gave 500 on seeds 0-2 (BENCHMARKS.md; the cause was not isolated).
    **{("a2c", env): {"n_envs": 8, "n_steps": 5, "learning_rate": 7e-4, "optimizer": "rmsprop", "ent_coef": 0.0,
                      "normalize_obs": False} for env in ("CartPole-v1", "gymnax/CartPole-v1")},
    # PPO: RL Zoo's CartPole settings with a constant learning rate (the Zoo decays it linearly). The JAX
    # CartPole (gymnax/CartPole-v1, same dynamics) gets the same entries for PPO, A2C, REINFORCE and DQN.
    **{("ppo", env): {"n_envs": 8, "n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98,
                      "n_epochs": 20, "ent_coef": 0.0, "learning_rate": 1e-3} for env in ("CartPole-v1", "gymnax/CartPole-v1")},
    # PPO on Pendulum: RL Zoo's settings without gSDE, so 2x shorter rollouts (2x more updates), an initial std
    # of e^-1 and Adam 3e-4 instead; observations and rewards normalised. Measured over 12 seeds in the jitted
    # loop (BENCHMARKS.md): 10 of 12 seeds >= -300 at 200k steps, against 2 of seeds 0-5 with 256-step rollouts, lr 1e-3.
    **{("ppo", env): {"n_envs": 4, "n_steps": 512, "log_std_init": -1.0, "gae_lambda": 0.95, "gamma": 0.9,
                      "n_epochs": 10, "learning_rate": 3e-4, "normalize_reward": True}
       for env in ("Pendulum-v1", "polyak/Pendulum-v1")},
    # PCL / Unified PCL: 8 envs x 16-step rollouts; stored episodes as long as the env's time limit. Unified PCL
    # on CartPole with alpha 0.5: at its default 0.02 (and at 0.1) pi = softmax(Q / alpha) turned greedy on
    # Q's errors early; 0.5 gave 2 of 3 seeds at 500 within 102k steps (BENCHMARKS.md, 'PCL: the path length d')
    **{(algo, "polyak/Chain-v0"): {"n_envs": 8, "max_episode_len": 30} for algo in ("pcl", "unified_pcl")},
    **{("pcl", env): {"n_envs": 8, "max_episode_len": 500} for env in ("CartPole-v1", "gymnax/CartPole-v1")},
    **{("unified_pcl", env): {"n_envs": 8, "max_episode_len": 500, "alpha": 0.5}
       for env in ("CartPole-v1", "gymnax/CartPole-v1")},
    # The Euler-equation method on energy storage: degree 16 (class default 12); its policy is within 7.5e-5 of
    # value iteration on a 4001-point grid, whose own error is about that (BENCHMARKS.md, Euler vs VI vs SAC).
    ("euler", "polyak/Storage-v0"): {"degree": 16},
    # Evolution strategies (BENCHMARKS.md, 2026-12-06). polyak/Pendulum-v1: the settings of the generations study
    # (population 32, 4 episodes per candidate; CEM with [32, 32] reached about -260 in 60 generations).
    # TransverseTuning: the challenge's target, as SAC's entry, and 8 episodes per candidate (a candidate's return
    # over one random trial is too noisy to rank by: CEM 24 -> 46, CMA-ES 0 -> 84 evaluation return at 10M / 40M steps)
    **{(algo, "polyak/Pendulum-v1"): {"population_size": 32, "episodes_per_candidate": 4, "net_arch": [32, 32]}
       for algo in ("cem", "cmaes", "nes")},
    **{(algo, "polyak/TransverseTuning-v0"): {"episodes_per_candidate": 8, "env_kwargs": {"target": [0.0, 0.0, 0.0, 0.0]}}
       for algo in ("cem", "cmaes", "nes")},
    # MuJoCo (gymnasium[mujoco]): the settings of the 100k-step comparisons against SBX, whose returns BENCHMARKS.md
    # records ("SAC on Hopper-v5", "TD3 on Hopper-v5", "TQC on Hopper-v5", "SAC/TD3 on HalfCheetah-v5"): 5000 random
    # warm-up steps and no observation normaliser (the peers have none); everything else the class defaults (lr 3e-4,
    # batch 256, [256, 256], tau 0.005; TQC 25 quantiles, 2 dropped per net), SB3's and SBX's MuJoCo defaults.
    **{(algo, env): {"learning_starts": 5000, "normalize_obs": False}
       for algo, env in (("sac", "HalfCheetah-v5"), ("td3", "HalfCheetah-v5"), ("sac", "Hopper-v5"), ("td3", "Hopper-v5"),
                         ("tqc", "Hopper-v5"))},
}


def tuned_hyperparameters(algo: str, env_id: str) -> dict[str, Any]:
    """Hyperparameters, plus the loop-level keys `n_envs` and `env_kwargs` where recorded."""
    entry = TUNED.get((algo, env_id), {})
    return {k: dict(v) if isinstance(v, dict) else v for k, v in entry.items()}


def with_overrides(algo: str, tuned: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The tuned entry with the user's settings on top. A user's `net_arch` stands for config fields (e.g.
    actor_hidden and critic_hidden) that a field of the entry would otherwise win over (the config takes an
    explicit field before net_arch): the entry's fields that net_arch stands for give way to it."""
    out = {**tuned, **overrides}
    if "net_arch" in overrides:
        try:
            aliased = registry.algorithm_class(algo).config_cls.policy_kwargs_to_fields(
                {"net_arch": overrides["net_arch"]})
        except (HyperparameterError, TypeError, ValueError, KeyError):
            return out  # a net_arch this algorithm refuses: building the model names the problem
        for name in set(aliased) & (set(tuned) - set(overrides)):
            del out[name]
    return out
