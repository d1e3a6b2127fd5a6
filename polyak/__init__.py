"""polyak: deep RL for continuous control on a fast JAX substrate."""

from polyak import envs  # noqa: F401  (registers polyak/... ids with Gymnasium)
from polyak._version import __version__
from polyak.algos import registry
from polyak.algos.collocation import Euler
from polyak.algos.evolution import CEM, CMAES, NES
from polyak.algos.offpolicy.ddpg import DDPG
from polyak.algos.offpolicy.dqn import DQN, DoubleDQN
from polyak.algos.offpolicy.sac import SAC
from polyak.algos.offpolicy.td3 import TD3
from polyak.algos.offpolicy.tqc import TQC
from polyak.algos.offpolicy.crossq import CrossQ
from polyak.algos.offpolicy.redq import REDQ
from polyak.algos.offpolicy.sac_n import SACN
from polyak.algos.offpolicy.droq import DroQ
from polyak.algos.offline import AWAC, CQL, FQI, IQL, MOPO, NFQCA, TD3BC, AmortizedFQI
from polyak.algos.onpolicy.a2c import A2C
from polyak.algos.onpolicy.a3c import A3C
from polyak.algos.onpolicy.awr import AWR
from polyak.algos.onpolicy.pcl import PCL
from polyak.algos.onpolicy.ppo import PPO
from polyak.algos.onpolicy.reinforce import REINFORCE
from polyak.algos.onpolicy.unified_pcl import UnifiedPCL
from polyak.algos.tabular.qlearning import QLearning
from polyak.core.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

ALGORITHMS = registry.classes()  # name -> class, every algorithm (the registry's list)


def load(path, env=None):
    """Load any polyak model file, dispatching on the algorithm recorded inside it."""
    return registry.load_model(path, env=env)


__all__ = ["SAC", "TD3", "DDPG", "TQC", "CrossQ", "REDQ", "SACN", "DroQ", "DQN", "DoubleDQN", "PPO", "A2C", "A3C",
           "REINFORCE", "AWR", "PCL", "UnifiedPCL", "QLearning",
           "TD3BC", "CQL", "IQL", "AWAC", "MOPO", "FQI", "AmortizedFQI", "NFQCA",
           "CEM", "CMAES", "NES", "Euler",
           "NormalActionNoise", "OrnsteinUhlenbeckActionNoise", "ALGORITHMS", "load", "__version__"]
