"""Voxelisation of one point cloud on the host (numpy).

Voxel coordinates are floor(coords / voxel_size) shifted so the minimum is 0 on each axis,
sorted in lexicographic (x, y, z) order (int64 keys, `host_maps.host_keys`), so a scene has no
practical size limit (2 million voxels per axis).

Features (F = 6) are the mean over the voxel's points of
  [r, g, b] / 255 - 0.5                      colour,
  [x, y, z] / voxel_size - origin            position in voxel units, with x and y centred on
                                             the scene's mean (z is not centred), as in PointDC.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from jaxseg.errors import InputError
from jaxseg.ops.sparse import host_maps

NUM_FEATURES = 6


@dataclasses.dataclass
class Voxelized:
  """One voxelised scene (P points, V voxels).

  voxel_coords:   int32 (V, 3) non-negative, sorted by packed key.
  voxel_feats:    float32 (V, 6) mean point features (see module docstring).
  point_to_voxel: int32 (P,) voxel of each point.
  voxel_to_point: int32 (V,) one representative point per voxel (its first point).
  voxel_labels:   int32 (V,) majority label of the voxel's labelled points (-1 when none;
                  ties go to the smallest label), or None when not requested.
  """

  voxel_coords: np.ndarray
  voxel_feats: np.ndarray
  point_to_voxel: np.ndarray
  voxel_to_point: np.ndarray
  voxel_labels: Optional[np.ndarray] = None

  @property
  def num_voxels(self) -> int:
    return int(self.voxel_coords.shape[0])


def majority_labels(point_to_voxel: np.ndarray, labels: np.ndarray,
                    num_voxels: int) -> np.ndarray:
  """Most frequent label >= 0 per voxel (smallest on ties), -1 for voxels with none.

  point_to_voxel, labels: int (P,). Returns int32 (num_voxels,).
  """
  valid = labels >= 0
  voxel, label = point_to_voxel[valid].astype(np.int64), labels[valid].astype(np.int64)
  out = np.full(num_voxels, -1, np.int32)
  if not voxel.size:
    return out
  pairs, counts = np.unique(voxel * (label.max() + 1) + label, return_counts=True)
  pair_voxel, pair_label = np.divmod(pairs, label.max() + 1)
  order = np.lexsort((pair_label, -counts, pair_voxel))
  first = np.ones(order.size, bool)
  first[1:] = pair_voxel[order][1:] != pair_voxel[order][:-1]
  best = order[first]
  out[pair_voxel[best]] = pair_label[best]
  return out


def voxelize(coords: np.ndarray, colors: np.ndarray, voxel_size: float,
             labels: Optional[np.ndarray] = None, name: str = "scene") -> Voxelized:
  """Voxelises one scene.

  Args:
    coords: float (P, 3) metres.
    colors: (P, 3) RGB in 0..255.
    voxel_size: edge length in metres.
    labels: optional int (P,) (-1 ignore); when given, `voxel_labels` is the majority label.
    name: scene name for error messages.
  """
  scaled = coords.astype(np.float64) / voxel_size
  origin = np.floor(scaled.min(axis=0))
  voxel = np.floor(scaled) - origin  # exact integers (scaled - origin could round up)
  position = scaled - origin  # non-negative, in voxel units
  extent = voxel.max(axis=0) + 1
  if (extent > host_maps.COORD_LIMIT).any():
    raise InputError(name, f"the scene spans {extent.astype(int).tolist()} voxels of "
                     f"{voxel_size} m, more than {host_maps.COORD_LIMIT} per axis",
                     "check the coordinate units (metres) and the voxel size")
  voxel = voxel.astype(np.int32)
  keys = host_maps.host_keys(voxel)
  order = np.argsort(keys, kind="stable")  # stable: a voxel's first point comes first
  sorted_keys = keys[order]
  is_first = np.empty(keys.size, bool)
  is_first[0] = True
  np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=is_first[1:])
  starts = np.flatnonzero(is_first)
  point_to_voxel = np.empty(keys.size, np.int32)
  point_to_voxel[order] = np.cumsum(is_first, dtype=np.int32) - 1
  voxel_to_point = order[starts].astype(np.int32)
  position[:, :2] -= position[:, :2].mean(axis=0)
  point_feats = np.concatenate([colors.astype(np.float64) / 255.0 - 0.5, position], axis=1)
  sums = np.add.reduceat(point_feats[order], starts, axis=0)
  counts = np.diff(np.append(starts, keys.size))
  return Voxelized(
      voxel_coords=voxel[voxel_to_point], voxel_feats=(sums / counts[:, None]).astype(np.float32),
      point_to_voxel=point_to_voxel, voxel_to_point=voxel_to_point,
      voxel_labels=None if labels is None else majority_labels(point_to_voxel, labels,
                                                               starts.size))
