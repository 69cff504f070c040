"""Voxel grid of a point cloud and the 26-neighbourhood adjacency of its occupied voxels."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np


@dataclasses.dataclass
class VoxelGrid:
  """Occupied voxels of a cloud.

  point_to_voxel: int64 (N,) voxel of each point.
  cells:          int64 (V, 3) integer voxel coordinates, sorted by linear key.
  coords:         float64 (V, 3) mean point position per voxel (metres).
  colors:         float64 (V, 3) mean RGB 0..255 per voxel.
  counts:         int64 (V,) points per voxel.
  """

  point_to_voxel: np.ndarray
  cells: np.ndarray
  coords: np.ndarray
  colors: np.ndarray
  counts: np.ndarray

  @property
  def num_voxels(self) -> int:
    return int(self.cells.shape[0])


def _linear_keys(cells: np.ndarray, extent: np.ndarray) -> np.ndarray:
  return (cells[:, 0] * extent[1] + cells[:, 1]) * extent[2] + cells[:, 2]


def voxelize(coords: np.ndarray, colors: np.ndarray, voxel_size: float) -> VoxelGrid:
  """Groups points (float (N, 3) metres, colours (N, 3) 0..255) into cubic voxels."""
  coords = np.asarray(coords, np.float64)
  cells = np.floor(coords / voxel_size).astype(np.int64)
  cells -= cells.min(axis=0)
  unique_cells, point_to_voxel, counts = np.unique(cells, axis=0, return_inverse=True,
                                                   return_counts=True)
  point_to_voxel = point_to_voxel.reshape(-1)
  sums = np.zeros((len(unique_cells), 6))
  np.add.at(sums, point_to_voxel, np.concatenate(
      [coords, np.asarray(colors, np.float64)], axis=1))
  means = sums / counts[:, None]
  return VoxelGrid(point_to_voxel=point_to_voxel, cells=unique_cells, coords=means[:, :3],
                   colors=means[:, 3:], counts=counts)


def voxel_adjacency(cells: np.ndarray) -> np.ndarray:
  """int64 (E, 2) directed edges between voxels that touch (26-neighbourhood), both ways.

  Args:
    cells: int (V, 3) distinct non-negative voxel coordinates.
  """
  extent = cells.max(axis=0) + 3  # room for the +-1 offsets after shifting by one
  shifted = cells + 1
  keys = _linear_keys(shifted, extent)
  order = np.argsort(keys, kind="stable")
  sorted_keys = keys[order]
  sources, targets = [], []
  for offset in itertools.product((-1, 0, 1), repeat=3):
    if offset <= (0, 0, 0):  # each unordered pair once: the 13 "positive" offsets
      continue
    query = _linear_keys(shifted + np.array(offset), extent)
    pos = np.minimum(np.searchsorted(sorted_keys, query), len(sorted_keys) - 1)
    hit = sorted_keys[pos] == query
    sources.append(np.flatnonzero(hit))
    targets.append(order[pos[hit]])
  a = np.concatenate(sources)
  b = np.concatenate(targets)
  return np.stack([np.concatenate([a, b]), np.concatenate([b, a])], axis=1)
