"""Offline RL: learn from a fixed dataset (`polyak.data.datasets`), evaluate online. TD3+BC, CQL, IQL, AWAC."""

from polyak.algos.offline.awac import AWAC
from polyak.algos.offline.cql import CQL
from polyak.algos.offline.iql import IQL
from polyak.algos.offline.td3_bc import TD3BC

__all__ = ["TD3BC", "CQL", "IQL", "AWAC"]
