"""Evolution strategies on policy parameters: CEM, CMA-ES and NES (population.py holds what they share)."""

from polyak.algos.evolution.cem import CEM
from polyak.algos.evolution.cmaes import CMAES
from polyak.algos.evolution.nes import NES

__all__ = ["CEM", "CMAES", "NES"]
