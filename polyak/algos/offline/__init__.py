"""Offline RL: learn from a fixed dataset (`polyak.data.datasets`), evaluate online. TD3+BC, CQL, IQL, AWAC, MOPO; fitted
Q-iteration for continuous actions: FQI (explicit maximiser), amortised FQI, NFQCA."""

from polyak.algos.offline.amortized_fqi import AmortizedFQI
from polyak.algos.offline.awac import AWAC
from polyak.algos.offline.cql import CQL
from polyak.algos.offline.fqi import FQI
from polyak.algos.offline.iql import IQL
from polyak.algos.offline.mopo import MOPO
from polyak.algos.offline.nfqca import NFQCA
from polyak.algos.offline.td3_bc import TD3BC

__all__ = ["TD3BC", "CQL", "IQL", "AWAC", "MOPO", "FQI", "AmortizedFQI", "NFQCA"]
