"""polyak: deep RL for continuous control on a fast JAX substrate."""

from polyak import envs  # noqa: E402,F401  (registers polyak/... ids with Gymnasium)
from polyak._version import __version__  # noqa: E402,F401
from polyak.algos.offpolicy.ddpg import DDPG  # noqa: E402
from polyak.algos.offpolicy.dqn import DQN, DoubleDQN  # noqa: E402
from polyak.algos.offpolicy.sac import SAC  # noqa: E402
from polyak.algos.offpolicy.td3 import TD3  # noqa: E402
from polyak.algos.onpolicy.a2c import A2C  # noqa: E402
from polyak.algos.onpolicy.a3c import A3C  # noqa: E402
from polyak.algos.onpolicy.awr import AWR  # noqa: E402
from polyak.algos.onpolicy.ppo import PPO  # noqa: E402
from polyak.algos.onpolicy.reinforce import REINFORCE  # noqa: E402
from polyak.core.noise import (  # noqa: E402
    NormalActionNoise,
    OrnsteinUhlenbeckActionNoise,
)

ALGORITHMS = {"sac": SAC, "td3": TD3, "ddpg": DDPG, "dqn": DQN, "double_dqn": DoubleDQN,
              "ppo": PPO, "a2c": A2C, "a3c": A3C, "reinforce": REINFORCE,
              "awr": AWR}


def load(path, env=None):
    """Load any polyak model file, dispatching on the algorithm recorded inside it."""
    from polyak.io.checkpoint import CheckpointError, read_checkpoint

    _, meta = read_checkpoint(path)
    algo = meta.get("algorithm")
    if algo == "qlearning":  # tabular (polyak/algos/tabular.py): no MLP policy, so not in ALGORITHMS
        from polyak.algos.tabular.qlearning import QLearning

        return QLearning.load(path, env=env)
    if algo not in ALGORITHMS:
        raise CheckpointError(f"{path}: unknown algorithm {algo!r} (known: {', '.join(ALGORITHMS)})")
    return ALGORITHMS[algo].load(path, env=env)


__all__ = ["SAC", "TD3", "DDPG", "DQN", "DoubleDQN", "PPO", "A2C", "A3C", "REINFORCE", "AWR", "NormalActionNoise", "OrnsteinUhlenbeckActionNoise", "ALGORITHMS", "load"]
