"""It learns: SAC, TD3 and DDPG on Pendulum-v1 reach a deterministic evaluation return >= -200
for at least 2 of 3 seeds within 20k steps (here: 10k), with the tuned hyperparameters recorded in
polyak/zoo.py (learning rate 1e-3, everything else the lecture defaults). Seeds run in order and the
third is trained only when the first two disagree."""

import pytest

import polyak
from polyak.evaluation import evaluate_policy
from polyak.runs.zoo import tuned_hyperparameters

STEPS, THRESHOLD, SEEDS = 10_000, -200.0, (0, 1, 2)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_pendulum_reaches_threshold_for_two_of_three_seeds(algo):
    returns = []
    for seed in SEEDS:  # seeds in order, until "2 of 3" is decided (2 passes, or 2 misses)
        model = polyak.ALGORITHMS[algo]("MlpPolicy", "Pendulum-v1", seed=seed,
                                        **tuned_hyperparameters(algo, "Pendulum-v1"))
        model.learn(STEPS)
        mean, _ = evaluate_policy(model, "Pendulum-v1", n_eval_episodes=10, seed=10_000 + seed)
        returns.append(mean)
        passed = sum(r >= THRESHOLD for r in returns)
        if passed >= 2 or len(returns) - passed >= 2:
            break
    print(f"\n{algo} Pendulum-v1 {STEPS} steps, per-seed eval returns: {[round(r, 1) for r in returns]}")
    assert sum(r >= THRESHOLD for r in returns) >= 2, returns
