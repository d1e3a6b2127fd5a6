"""polyak: deep RL for continuous control on a fast JAX substrate."""

__version__ = "0.1.0"

from polyak.algos.a2c import A2C  # noqa: E402
from polyak.algos.a3c import A3C  # noqa: E402
from polyak.algos.awr import AWR  # noqa: E402
from polyak.algos.ddpg import DDPG  # noqa: E402
from polyak.algos.dqn import DQN, DoubleDQN  # noqa: E402
from polyak.algos.ppo import PPO  # noqa: E402
from polyak.algos.reinforce import REINFORCE  # noqa: E402
from polyak.algos.sac import SAC  # noqa: E402
from polyak.algos.td3 import TD3  # noqa: E402
from polyak.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise  # noqa: E402
from polyak import envs  # noqa: E402,F401  (registers polyak/... ids with Gymnasium)

ALGORITHMS = {"sac": SAC, "td3": TD3, "ddpg": DDPG, "dqn": DQN, "double_dqn": DoubleDQN,
              "ppo": PPO, "a2c": A2C, "a3c": A3C, "reinforce": REINFORCE,
              "awr": AWR}


def load(path, env=None):
    """Load any polyak model file, dispatching on the algorithm recorded inside it."""
    from polyak.common.checkpoint import CheckpointError, read_checkpoint

    _, meta = read_checkpoint(path)
    algo = meta.get("algorithm")
    if algo == "qlearning":  # tabular (polyak/algos/tabular.py): no MLP policy, so not in ALGORITHMS
        from polyak.algos.tabular import QLearning

        return QLearning.load(path, env=env)
    if algo not in ALGORITHMS:
        raise CheckpointError(f"{path}: unknown algorithm {algo!r} (known: {', '.join(ALGORITHMS)})")
    return ALGORITHMS[algo].load(path, env=env)


__all__ = ["SAC", "TD3", "DDPG", "DQN", "DoubleDQN", "PPO", "A2C", "A3C", "REINFORCE", "AWR", "NormalActionNoise", "OrnsteinUhlenbeckActionNoise", "ALGORITHMS", "load"]
