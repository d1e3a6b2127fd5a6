"""It learns, family tree: PPO, DQN, Double DQN, A2C and REINFORCE (state baseline) on CartPole and PPO on
Pendulum reach the issue's deterministic evaluation return for at least 2 of 3 seeds, with the tuned
hyperparameters recorded in polyak/zoo.py, in the fully jitted loop: `polyak.runs.seeds.train_seeds` trains the
three seeds vmapped in one compiled program on `gymnax/CartPole-v1` (Gymnasium's CartPole-v1 dynamics;
gymnax is in the test extra) or `polyak/Pendulum-v1` and evaluates each over 10 episodes through the
Gymnasium adapter.

The thresholds are the issue's. Where the step budget is shorter than the issue's, it is so that the
file fits the CI's time budget (the threshold is never lowered). Every budget is a whole number of the
loop's chunks, so each test compiles one chunk program.

| algorithm  | issue's target            | budget here |
|------------|---------------------------|-------------|
| PPO        | >= 475 within 100k steps  | 47,616      |
| DQN        | >= 475 within 100k steps  | 50,000      |
| Double DQN | >= 475 within 100k steps  | 50,000      |
| A2C        | >= 475 within 500k steps  | 200,000     |
| REINFORCE  | >= 400 within 300k steps  | 100,352     |
| PPO        | >= -300 within 200k steps | 196,608     |

DQN and Double DQN are the tight ones: at 50k steps seed 1 misses (about 380 and 160; all three seeds
reach 500 at the issue's 100k, which takes about two minutes per algorithm here).
AWR on Pendulum (>= -300 within 100k steps) is not here, for time: its 100k steps (2 of 3 seeds) take
over two minutes on their own.
"""

import json

import pytest

from polyak.runs.seeds import train_seeds
from polyak.runs.zoo import tuned_hyperparameters

SEEDS = [0, 1, 2]
EVAL_EPISODES = 10
CARTPOLE = "gymnax/CartPole-v1"

# (algorithm, JAX env, steps, threshold)
CASES = [
    pytest.param("ppo", CARTPOLE, 47_616, 475.0, id="ppo-cartpole"),  # 6 chunks: 31 x 32 steps x 8 envs
    pytest.param("dqn", CARTPOLE, 50_000, 475.0, id="dqn-cartpole"),  # 50 chunks: 1000 steps x 1 env
    pytest.param("double_dqn", CARTPOLE, 50_000, 475.0, id="double_dqn-cartpole"),
    pytest.param("a2c", CARTPOLE, 200_000, 475.0, id="a2c-cartpole"),  # 25 chunks: 1000 x 8 envs
    pytest.param("reinforce", CARTPOLE, 100_352, 400.0, id="reinforce-cartpole"),  # 14: 7 x 128 x 8
    pytest.param("ppo", "polyak/Pendulum-v1", 196_608, -300.0, id="ppo-pendulum"),  # 48 chunks: 2 x 512 x 4 envs
]


def zoo_settings(algo: str, env_id: str) -> tuple[dict, int, dict]:
    """(hyperparameters, n_envs, env_kwargs) from the zoo, split as `polyak train --seeds N` does."""
    hp = tuned_hyperparameters(algo, env_id)
    assert hp, f"polyak/zoo.py has no entry for ({algo!r}, {env_id!r})"
    n_envs = int(hp.pop("n_envs", 1))
    env_kwargs = hp.pop("env_kwargs", {})
    return hp, n_envs, env_kwargs


@pytest.mark.slow
@pytest.mark.parametrize("algo, env_id, steps, threshold", CASES)
def test_reaches_threshold_for_two_of_three_seeds(algo, env_id, steps, threshold, tmp_path):
    hp, n_envs, env_kwargs = zoo_settings(algo, env_id)
    dirs = train_seeds(algo, env_id, SEEDS, steps, hp, env_kwargs=env_kwargs, n_envs=n_envs, run_dir=tmp_path,
                       eval_episodes=EVAL_EPISODES, progress_bar=False)
    results = [json.loads((d / "eval.json").read_text()) for d in dirs]
    assert [r["steps"] for r in results] == [steps] * len(SEEDS)  # the budget is whole rollouts: no rounding up
    returns = [r["eval_return_mean"] for r in results]
    print(f"\n{algo} {env_id} {steps} steps, per-seed eval returns: {[round(r, 1) for r in returns]}")
    assert sum(r >= threshold for r in returns) >= 2, returns
