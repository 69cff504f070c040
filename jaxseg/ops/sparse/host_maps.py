"""Kernel maps of one voxelised scene, built on the host with numpy (in the input workers).

For every resolution level l = 0..L (level l has voxel size 2^l):
  coords[l]        int32 (n_l, 3) unique voxel indices, sorted in (x, y, z) order;
  parent[l]        int32 (n_l,) row of each voxel's parent cell (coords >> 1) at level l + 1;
  child_offset[l]  int32 (n_l,) position inside the parent cell, (x&1)<<2 | (y&1)<<1 | (z&1);
  pairs[(l, k)]    the neighbour pairs of a k^3 submanifold kernel at level l (see below);
  corners[l]       int32 (n_l, 8) for l >= 1 (None at level 0): row of the cell c + d for d in {0, 1}^3 (index
                   d_x*4 + d_y*2 + d_z), -1 where that cell is empty: the corners of the
                   trilinear interpolation from level l back to the input voxels.

Pair lists. Kernel offset index o = a*k^2 + b*k + c holds the displacement
(a - r, b - r, c - r), r = k // 2 (the layout of a dense [k, k, k, Cin, Cout] kernel). A pair
(in, out) of offset o means coords[in] = coords[out] + displacement(o): the convolution adds
feats[in] @ kernel[o] to output row out. The map is symmetric: (in, out) is a pair of o exactly
when (out, in) is a pair of the mirrored offset k^3 - 1 - o, so only the "half" offsets
o < k^3 // 2 are stored (the centre offset is the identity and needs no list). Each stored
list is grouped by offset (ascending) and sorted by `out` inside an offset.

Keys are int64 on the host (x, y, z each below 2^21 - 8), so a scene has no size limit here;
only the on-device builder (`kernel_map.py`) needs the int32 key range.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxseg.ops.sparse import keys as keys_lib

_GUARD = 4          # Added to every coordinate so queries up to 4 voxels below 0 stay >= 0.
_Y_SHIFT = 21
_X_SHIFT = 42
COORD_LIMIT = (1 << 21) - 2 * _GUARD


def host_keys(coords: np.ndarray) -> np.ndarray:
  """int (N, 3) voxel indices in [0, COORD_LIMIT) -> int64 (N,) keys in (x, y, z) order."""
  c = np.asarray(coords, np.int64) + _GUARD
  return (c[:, 0] << _X_SHIFT) | (c[:, 1] << _Y_SHIFT) | c[:, 2]


def decode_keys(keys: np.ndarray) -> np.ndarray:
  """int64 (N,) keys -> int32 (N, 3) voxel indices (inverse of `host_keys`)."""
  mask = (1 << _Y_SHIFT) - 1
  return np.stack([(keys >> _X_SHIFT) - _GUARD, ((keys >> _Y_SHIFT) & mask) - _GUARD,
                   (keys & mask) - _GUARD], axis=1).astype(np.int32)


def _delta(dx: int, dy: int, dz: int) -> int:
  return (dx << _X_SHIFT) + (dy << _Y_SHIFT) + dz


@dataclasses.dataclass
class PairList:
  """Neighbour pairs of the half offsets of one kernel at one level.

  inputs, outputs: int32 (m,) rows; offset: int32 (m,) offset index in [0, k^3 // 2),
  ascending (grouped); counts: int64 (k^3 // 2,) pairs per offset.
  """
  inputs: np.ndarray
  outputs: np.ndarray
  offset: np.ndarray
  counts: np.ndarray


def neighbour_pairs(sorted_keys: np.ndarray, kernel_size: int) -> PairList:
  """The half-offset pair list of a k^3 submanifold kernel over sorted unique keys.

  For every (dx, dy) column one binary search (of sorted queries, which numpy runs fast)
  finds the first key >= (x+dx, y+dy, z-r); the 2r+1 keys from there hold every neighbour of
  that column, whatever its dz.

  Args:
    sorted_keys: int64 (n,) ascending unique keys (`host_keys`).
    kernel_size: odd k.
  Returns:
    PairList with outputs sorted inside each offset.
  """
  if kernel_size % 2 != 1:
    raise ValueError(f"submanifold kernels must have an odd size, got {kernel_size}")
  r, k = kernel_size // 2, kernel_size
  half = k ** 3 // 2
  padded = np.concatenate([sorted_keys, np.full(2 * r + 1, np.iinfo(np.int64).max)])
  window = np.arange(2 * r + 1)
  ins, outs, offs = [], [], []
  for dx in range(-r, 1):
    for dy in range(-r, r + 1):
      if dx == 0 and dy > 0:
        break
      base = sorted_keys + (_delta(dx, dy, 0) - r)
      start = np.searchsorted(sorted_keys, base)
      dz = padded[start[:, None] + window] - (base + r)[:, None]      # (n, 2r+1)
      hit = (dz >= -r) & ((dz < 0) if dx == 0 and dy == 0 else (dz <= r))
      out, j = np.nonzero(hit)                                        # out ascending
      dz = dz[out, j]
      order = np.argsort(dz, kind="stable")                           # by dz, then out
      ins.append((start[out] + j)[order].astype(np.int32))
      outs.append(out[order].astype(np.int32))
      offs.append((((dx + r) * k + (dy + r)) * k + r + dz[order]).astype(np.int32))
  inputs, outputs, offset = (np.concatenate(a) for a in (ins, outs, offs))
  return PairList(inputs, outputs, offset,
                  np.bincount(offset, minlength=half).astype(np.int64))


def interpolation_corners(sorted_keys: np.ndarray) -> np.ndarray:
  """int32 (n, 8): row of the cell key + d for d in {0, 1}^3 (d_x*4 + d_y*2 + d_z), -1 when
  that cell is absent. sorted_keys: int64 (n,) ascending unique keys of one level."""
  n = sorted_keys.shape[0]
  corners = np.full((n, 8), -1, np.int32)
  for j, (dx, dy, dz) in enumerate(keys_lib.CORNER_OFFSETS.tolist()):
    query = sorted_keys + _delta(dx, dy, dz)
    pos = np.minimum(np.searchsorted(sorted_keys, query), max(n - 1, 0))
    hit = sorted_keys[pos] == query if n else np.zeros(0, bool)
    corners[hit, j] = pos[hit]
  return corners


@dataclasses.dataclass
class SceneGeometry:
  """Every kernel map of one scene (see the module docstring); L + 1 levels."""
  coords: list[np.ndarray]
  parent: list[np.ndarray]
  child_offset: list[np.ndarray]
  pairs: dict[tuple[int, int], PairList]
  corners: list[np.ndarray | None]

  @property
  def counts(self) -> list[int]:
    """Voxels per level."""
    return [int(c.shape[0]) for c in self.coords]


def build_scene_geometry(voxel_coords: np.ndarray,
                         level_kernels: tuple[tuple[int, ...], ...]) -> SceneGeometry:
  """All levels of one scene.

  Args:
    voxel_coords: int (n, 3) unique non-negative voxel indices of level 0 (any order is
      accepted; the pipeline passes them sorted, and then rows keep their order).
    level_kernels: per level 0..L the submanifold kernel sizes its convs use, e.g.
      ((5,), (3,), (3,), (3,), (3,)) for Res16FPN18.
  Returns:
    SceneGeometry whose level-0 rows are the rows of `voxel_coords` when they are sorted.
  Raises:
    ValueError: unsorted or duplicate level-0 voxels, or coordinates outside
      [0, COORD_LIMIT).
  """
  coords = np.asarray(voxel_coords, np.int64)
  if coords.size and (coords.min() < 0 or coords.max() >= COORD_LIMIT):
    raise ValueError(f"voxel indices must lie in [0, {COORD_LIMIT}), got "
                     f"{coords.min()}..{coords.max()}")
  keys = host_keys(coords)
  if np.any(keys[1:] <= keys[:-1]):
    raise ValueError("level-0 voxels must be unique and sorted in (x, y, z) order")
  levels, parents, offsets, corners = [coords.astype(np.int32)], [], [], []
  all_keys = [keys]
  for _ in range(1, len(level_kernels)):
    fine = levels[-1]
    coarse_keys, parent = np.unique(host_keys(fine >> 1), return_inverse=True)
    parents.append(parent.astype(np.int32).reshape(-1))
    offsets.append(keys_lib.child_offsets(fine).astype(np.int32))
    levels.append(decode_keys(coarse_keys))
    all_keys.append(coarse_keys)
    corners.append(interpolation_corners(coarse_keys))
  pairs = {(level, k): neighbour_pairs(all_keys[level], k)
           for level, kernels in enumerate(level_kernels) for k in kernels if k > 1}
  return SceneGeometry(levels, parents, offsets, pairs, [None] + corners)
