"""int32 voxel keys and kernel offsets.

A voxel (x, y, z) with 0 <= x, y < 2048 and 0 <= z < 512 packs into the non-negative int32
key `x << 20 | y << 9 | z`. Sorting int32 keys is fast on accelerators (radix sort); int64
keys are not. Key order is lexicographic (x, y, z) order.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


X_SHIFT = 20
Y_SHIFT = 9
# Exclusive upper bounds of the voxel indices along x, y, z.
COORD_LIMITS = (1 << 11, 1 << 11, 1 << 9)


def encode_keys(coords: jnp.ndarray) -> jnp.ndarray:
  """int32 [..., 3] voxel indices (inside COORD_LIMITS) -> int32 [...] keys."""
  coords = coords.astype(jnp.int32)
  return (coords[..., 0] << X_SHIFT) | (coords[..., 1] << Y_SHIFT) | coords[..., 2]


def in_range(coords: jnp.ndarray) -> jnp.ndarray:
  """int32 [..., 3] -> bool [...]: True where every index is inside [0, COORD_LIMITS)."""
  limits = jnp.asarray(COORD_LIMITS, jnp.int32)
  return jnp.all((coords >= 0) & (coords < limits), axis=-1)


def kernel_offsets(kernel_size: int) -> np.ndarray:
  """Offsets of an odd cubic kernel: int32 [kernel_size**3, 3].

  Row k = (a, b, c) flattened as a * K^2 + b * K + c holds (a - r, b - r, c - r), r = K // 2,
  i.e. the DHW order of a dense `[K, K, K, Cin, Cout]` kernel, so `kernel.reshape(K**3, Cin,
  Cout)` is the sparse kernel. Row K^3 - 1 - k holds the negated offset of row k.
  """
  if kernel_size % 2 != 1:
    raise ValueError(f"submanifold kernels must have an odd size, got {kernel_size}")
  r = kernel_size // 2
  grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1)] * 3, indexing="ij"), axis=-1)
  return grid.reshape(-1, 3).astype(np.int32)


# The 8 cells c + d, d in {0, 1}^3 (index d_x*4 + d_y*2 + d_z): trilinear interpolation corners.
CORNER_OFFSETS = np.array([[(j >> 2) & 1, (j >> 1) & 1, j & 1] for j in range(8)], np.int32)


def child_offsets(coords: jnp.ndarray) -> jnp.ndarray:
  """int32 [..., 3] -> int32 [...] in [0, 8): position of a voxel inside its parent cell,
  (x & 1) << 2 | (y & 1) << 1 | (z & 1), the DHW order of a dense [2, 2, 2, ...] kernel."""
  return ((coords[..., 0] & 1) << 2) | ((coords[..., 1] & 1) << 1) | (coords[..., 2] & 1)
