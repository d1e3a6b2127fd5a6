"""Projection methods on a known model: the Euler-equation method (euler.py) and its value-iteration reference
on a fine grid (value_iteration.py)."""

from polyak.algos.collocation.euler import Euler

__all__ = ["Euler"]
