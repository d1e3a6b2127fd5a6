"""Host columns packed into one float32 array: one host->device transfer per environment step.

A `Columns` layout names blocks of columns by their per-row shape: `()` a scalar per row (reward,
flags), `(k,)` a vector (observation, action). The host loops fill a preallocated NumPy array in
place (`fill`); the jitted loops build the same array on the device (`pack`); the jitted steps read
it back by name (`unpack`). Discrete actions travel as one float column holding the index (exact
below 2^24).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Columns:
    """An ordered layout of named column blocks (hashable: part of a jit-static spec)."""

    shapes: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def of(cls, **shapes: tuple[int, ...]) -> "Columns":
        """Columns.of(obs=(3,), reward=(), ...): blocks in the order given."""
        return cls(tuple((name, tuple(shape)) for name, shape in shapes.items()))

    @cached_property
    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, shape in self.shapes:
            out[name] = slice(start, start + math.prod(shape))
            start += math.prod(shape)
        return out

    @cached_property
    def _scalars(self) -> frozenset[str]:
        return frozenset(name for name, shape in self.shapes if shape == ())

    @property
    def width(self) -> int:
        return sum(math.prod(shape) for _, shape in self.shapes)

    def zeros(self, n_rows: int) -> np.ndarray:
        """A host array to `fill` step after step."""
        return np.zeros((n_rows, self.width), np.float32)

    def fill(self, out: np.ndarray, values: dict[str, Any]) -> np.ndarray:
        """Write `values` (name -> (n,) or (n, k) array, or a number for every row) into `out`, in place."""
        scalars, slices = self._scalars, self.slices
        for name, value in values.items():
            if name in scalars and np.ndim(value) == 1:
                value = value[:, None]
            out[:, slices[name]] = value
        return out

    def pack(self, values: dict[str, jax.Array], n_rows: int) -> jax.Array:
        """The same array built on the device from every block (scalars may be numbers)."""
        def block(name: str, shape: tuple[int, ...]) -> jax.Array:
            x = jnp.asarray(values[name], jnp.float32)
            return jnp.broadcast_to(x.reshape(x.shape[:1] + (-1,)) if x.ndim else x, (n_rows, math.prod(shape)))

        return jnp.concatenate([block(name, shape) for name, shape in self.shapes], axis=1)

    def unpack(self, packed: jax.Array) -> dict[str, jax.Array]:
        """name -> (n,) for scalar blocks, (n, k) for vectors."""
        scalars = self._scalars
        return {name: packed[:, s.start] if name in scalars else packed[:, s] for name, s in self.slices.items()}
