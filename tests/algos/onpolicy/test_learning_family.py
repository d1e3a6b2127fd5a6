"""It learns, family tree: PPO, DQN, Double DQN, A2C and REINFORCE (state baseline) on CartPole and PPO on
Pendulum reach the issue's deterministic evaluation return for at least 2 of 3 seeds (3 of 5 where noted, below),
with the tuned hyperparameters recorded in polyak/zoo.py, in the fully jitted loop: `polyak.runs.seeds.train_seeds`
trains the seeds vmapped in one compiled program on `gymnax/CartPole-v1` (Gymnasium's CartPole-v1 dynamics;
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

DQN and Double DQN are the tight ones and train 5 seeds (vmapped), of which 3 must reach the threshold:
their CartPole results depend on the CPU's floating point (the same code gave 500/380/500 on one machine
and 500/415/226 for Double DQN's 3 seeds on another). With the zoo's constant learning rate of before,
5 seeds on the latter (Intel Xeon, 2026-12-06) gave DQN 500 x 5 and Double DQN 500/458.6/500/500/431.1 (no
spare seed); with the zoo's learning-rate schedule (1e-3 -> 1e-4 over 25k gradient steps) DQN 500 x 5 and
Double DQN 339.7/500/500/500/500: 2 and 1 spare seeds (BENCHMARKS.md). In CI, DQN and Double DQN train [64, 64]
Q-networks instead of the zoo's [256, 256] (the same update code, budget, threshold and seeds, in about a third of the
time); measured on the 2-core AMD EPYC, 10 seeds each at [64, 64]: DQN 8 and Double DQN 9 of 10 at >= 475, seeds 0-4
giving 4 of 5 for both (the zoo's widths there: DQN 4 of 5) (BENCHMARKS.md, "Test suite: the learning tests'
networks"). The zoo's own widths run under `pytest -m long`.
PPO on Pendulum trains 5 seeds too (3 must reach -300): with 3 seeds this machine gave -262.9/-368.6/-239.6,
no spare seed; with 5, -262.9/-368.6/-239.6/-264.5/-247.2 (seeds 0-2 unchanged: the on-policy loop's vmapped
seeds do not interact), one spare, for about 15 s more (2026-12-06, BENCHMARKS.md).
AWR on Pendulum (>= -300 within 100k steps) is not here, for time: its 100k steps (2 of 3 seeds) take
over two minutes on their own.
"""

import json

import pytest

from polyak.runs.seeds import train_seeds
from polyak.runs.zoo import tuned_hyperparameters

SEEDS = [0, 1, 2]
FIVE_SEEDS = [0, 1, 2, 3, 4]  # value-based CartPole and PPO on Pendulum: 3 of 5
EVAL_EPISODES = 10
CARTPOLE = "gymnax/CartPole-v1"

CI_Q_NETS = {"net_arch": [64, 64]}  # DQN and Double DQN in CI (the docstring); the zoo's [256, 256] under -m long

# (algorithm, JAX env, steps, threshold, seeds, seeds that must reach it, hyperparameters over the zoo's)
CASES = [
    pytest.param("ppo", CARTPOLE, 47_616, 475.0, SEEDS, 2, {}, id="ppo-cartpole"),  # 6 chunks: 31 x 32 steps x 8 envs
    pytest.param("dqn", CARTPOLE, 50_000, 475.0, FIVE_SEEDS, 3, CI_Q_NETS, id="dqn-cartpole"),  # 50 x 1000 x 1 env
    pytest.param("double_dqn", CARTPOLE, 50_000, 475.0, FIVE_SEEDS, 3, CI_Q_NETS, id="double_dqn-cartpole"),
    pytest.param("a2c", CARTPOLE, 200_000, 475.0, SEEDS, 2, {}, id="a2c-cartpole"),  # 25 chunks: 1000 x 8 envs
    pytest.param("reinforce", CARTPOLE, 100_352, 400.0, SEEDS, 2, {}, id="reinforce-cartpole"),  # 14: 7 x 128 x 8
    pytest.param("ppo", "polyak/Pendulum-v1", 196_608, -300.0, FIVE_SEEDS, 3, {}, id="ppo-pendulum"),  # 48: 2 x 512 x 4
]


def zoo_settings(algo: str, env_id: str) -> tuple[dict, int, dict]:
    """(hyperparameters, n_envs, env_kwargs) from the zoo, split as `polyak train --seeds N` does."""
    hp = tuned_hyperparameters(algo, env_id)
    assert hp, f"polyak/zoo.py has no entry for ({algo!r}, {env_id!r})"
    n_envs = int(hp.pop("n_envs", 1))
    env_kwargs = hp.pop("env_kwargs", {})
    return hp, n_envs, env_kwargs


@pytest.mark.slow
@pytest.mark.parametrize("algo, env_id, steps, threshold, seeds, need, overrides", CASES)
def test_reaches_threshold_for_most_seeds(algo, env_id, steps, threshold, seeds, need, overrides, tmp_path):
    reaches_threshold_for_most_seeds(algo, env_id, steps, threshold, seeds, need, overrides, tmp_path)


@pytest.mark.long
@pytest.mark.parametrize("algo", ["dqn", "double_dqn"])
def test_value_based_reaches_threshold_with_the_zoo_networks(algo, tmp_path):
    reaches_threshold_for_most_seeds(algo, CARTPOLE, 50_000, 475.0, FIVE_SEEDS, 3, {}, tmp_path)


def reaches_threshold_for_most_seeds(algo, env_id, steps, threshold, seeds, need, overrides, tmp_path):
    hp, n_envs, env_kwargs = zoo_settings(algo, env_id)
    hp.update(overrides)
    dirs = train_seeds(algo, env_id, seeds, steps, hp, env_kwargs=env_kwargs, n_envs=n_envs, run_dir=tmp_path,
                       eval_episodes=EVAL_EPISODES, progress_bar=False)
    results = [json.loads((d / "eval.json").read_text()) for d in dirs]
    assert [r["steps"] for r in results] == [steps] * len(seeds)  # the budget is whole rollouts: no rounding up
    returns = [r["eval_return_mean"] for r in results]
    print(f"\n{algo} {env_id} {steps} steps, per-seed eval returns: {[round(r, 1) for r in returns]}")
    assert sum(r >= threshold for r in returns) >= need, returns
