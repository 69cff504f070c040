"""Random sparse voxel batches for the sparse-op and encoder tests."""

from __future__ import annotations

import numpy as np


def random_voxels(rng: np.random.Generator, grid: tuple[int, int, int], num_voxels: int,
                  capacity: int, num_features: int, origin=(0, 0, 0)):
  """One scene of `num_voxels` distinct voxels in `grid`, scattered over random rows of a
  `capacity`-row array (the other rows are padding, coords 0, features NaN).

  Returns:
    coords int32 [capacity, 3], feats float32 [capacity, F], mask bool [capacity].
  """
  cells = rng.choice(int(np.prod(grid)), size=num_voxels, replace=False)
  voxels = np.stack(np.unravel_index(cells, grid), axis=-1) + np.asarray(origin)
  rows = rng.choice(capacity, size=num_voxels, replace=False)
  coords = np.zeros((capacity, 3), np.int32)
  coords[rows] = voxels
  mask = np.zeros((capacity,), bool)
  mask[rows] = True
  feats = np.full((capacity, num_features), np.nan, np.float32)
  feats[rows] = rng.normal(size=(num_voxels, num_features))
  return coords, feats, mask


def random_batch(rng: np.random.Generator, grid, counts, capacity, num_features):
  """B = len(counts) scenes stacked: coords [B, C, 3], feats [B, C, F] (NaN padding), mask."""
  scenes = [random_voxels(rng, grid, n, capacity, num_features) for n in counts]
  return tuple(np.stack(parts) for parts in zip(*scenes))
