"""Kernel maps, built once per resolution level and shared by every conv of that level.

Batches hold B scenes, each padded separately to a static capacity C:
  coords int32 [B, C, 3], mask bool [B, C].
Index C (one past the last row) means "no voxel": convs gather it from a zero row and
scatters drop it, so padding never changes a valid output. Voxels inside a scene must be
unique (one row per occupied voxel).
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.ops.sparse import keys as keys_lib
from jaxseg.ops.sparse.keys import CORNER_OFFSETS

_PAD_KEY = -1  # Sorts before every valid key; never equals an in-range query.
_PAD_PARENT_KEY = jnp.iinfo(jnp.int32).max  # Above every parent key (parents use < 31 bits).


@flax.struct.dataclass
class SparseLevel:
  """One resolution level of a batch.

  Attributes:
    coords: int32 [B, C, 3] voxel indices at this level (0 on padding rows).
    mask: bool [B, C] valid rows.
    neighbours: {kernel_size: int32 [B, K^3, C]}; neighbours[k][b, o, i] is the row holding
      voxel coords[b, i] + kernel_offsets(k)[o], or C when that voxel is absent or row i is
      padding. Symmetric: neighbours[b, o, i] = j  <=>  neighbours[b, K^3 - 1 - o, j] = i.
    corners: int32 [B, C, 8] rows of coords + CORNER_OFFSETS (C when absent), or None.
  """
  coords: jnp.ndarray
  mask: jnp.ndarray
  neighbours: dict[int, jnp.ndarray]
  corners: jnp.ndarray | None = None

  @property
  def capacity(self) -> int:
    return self.mask.shape[1]


@flax.struct.dataclass
class LevelLink:
  """The map between a fine level (capacity C) and its parent level (capacity P).

  Attributes:
    parent: int32 [B, C] row of each voxel's parent cell (coords >> 1) at the coarse level;
      P for padding rows (and for voxels dropped because the coarse level overflowed).
    child_offset: int32 [B, C] in [0, 8): keys.child_offsets of each fine voxel.
    children: int32 [B, P, 8] fine row of each child, C where absent.
    overflow: bool [B]: the scene has more than P parent cells (the extra ones are dropped).
  """
  parent: jnp.ndarray
  child_offset: jnp.ndarray
  children: jnp.ndarray
  overflow: jnp.ndarray



def _neighbour_map(coords, mask, sorted_keys, order, offsets, method):
  """Single scene: int32 [C, 3], bool [C], sorted keys / argsort [C], offsets int32 [K, 3]
  -> int32 [K, C], the row of coords + offset (C when absent)."""
  capacity = coords.shape[0]
  offsets = jnp.asarray(offsets)
  query = coords[None, :, :] + offsets[:, None, :]                   # [K^3, C, 3]
  query_keys = keys_lib.encode_keys(query)
  pos = jnp.searchsorted(sorted_keys, query_keys, method=method)
  pos = jnp.minimum(pos, capacity - 1).astype(jnp.int32)
  hit = (sorted_keys[pos] == query_keys) & keys_lib.in_range(query) & mask[None, :]
  return jnp.where(hit, order[pos], capacity).astype(jnp.int32)


def _build_level_single(coords, mask, kernel_sizes, with_corners, method):
  keys = jnp.where(mask, keys_lib.encode_keys(coords), _PAD_KEY)
  order = jnp.argsort(keys).astype(jnp.int32)
  sorted_keys = keys[order]
  neighbours = {k: _neighbour_map(coords, mask, sorted_keys, order,
                                  keys_lib.kernel_offsets(k), method) for k in kernel_sizes}
  corners = None
  if with_corners:
    corners = _neighbour_map(coords, mask, sorted_keys, order, CORNER_OFFSETS, method).T
  return neighbours, corners


# `build_level` and `downsample` are jitted (sizes and methods static, so tuples): called
# eagerly, as the tests do, each would compile a program per primitive and shape.
@functools.partial(jax.jit, static_argnames=("kernel_sizes", "method", "with_corners"))
def build_level(coords: jnp.ndarray, mask: jnp.ndarray, kernel_sizes: Sequence[int] = (3,),
                method: str = "scan", with_corners: bool = False) -> SparseLevel:
  """Sorts the voxel keys once and finds the neighbours for each kernel size.

  Args:
    coords: int32 [B, C, 3] non-negative voxel indices, x, y < 2048 and z < 512
      (keys.COORD_LIMITS; `jaxseg.data.packing` checks packs for the dense engine).
    mask: bool [B, C].
    kernel_sizes: static tuple of the odd submanifold kernel sizes whose maps to build (e.g.
      (3,) or (3, 5)).
    method: `jnp.searchsorted` method ('scan' suits CPU, 'sort' often suits GPU/TPU).
    with_corners: also find the trilinear-interpolation corners (SparseLevel.corners).
  Returns:
    SparseLevel with padding rows' coords set to 0.
  """
  coords = jnp.where(mask[..., None], coords.astype(jnp.int32), 0)
  neighbours, corners = jax.vmap(lambda c, m: _build_level_single(
      c, m, tuple(kernel_sizes), with_corners, method))(coords, mask)
  return SparseLevel(coords=coords, mask=mask, neighbours=neighbours, corners=corners)


def _downsample_single(coords, mask, capacity):
  """Single scene: int32 [C, 3], bool [C] -> coarse coords [P, 3], mask [P], link fields."""
  num_rows = coords.shape[0]
  parent_coords = coords >> 1
  parent_keys = jnp.where(mask, keys_lib.encode_keys(parent_coords), _PAD_PARENT_KEY)
  order = jnp.argsort(parent_keys).astype(jnp.int32)
  sorted_keys = parent_keys[order]
  sorted_valid = mask[order]
  first = jnp.concatenate([jnp.ones((1,), bool), sorted_keys[1:] != sorted_keys[:-1]])
  is_new = sorted_valid & first
  segment = jnp.cumsum(is_new.astype(jnp.int32)) - 1
  count = jnp.sum(is_new.astype(jnp.int32))
  kept = sorted_valid & (segment < capacity)
  sorted_parent = jnp.where(kept, segment, capacity)
  parent = jnp.zeros((num_rows,), jnp.int32).at[order].set(sorted_parent)
  slot = jnp.where(is_new & kept, segment, capacity)
  coarse_coords = jnp.zeros((capacity, 3), jnp.int32).at[slot].set(
      parent_coords[order], mode="drop")
  coarse_mask = jnp.arange(capacity) < count
  child_offset = keys_lib.child_offsets(coords)
  children = jnp.full((capacity, 8), num_rows, jnp.int32).at[parent, child_offset].set(
      jnp.arange(num_rows, dtype=jnp.int32), mode="drop")
  return coarse_coords, coarse_mask, parent, child_offset, children, count > capacity


@functools.partial(jax.jit, static_argnames="capacity")
def downsample(level: SparseLevel, capacity: int) -> tuple[jnp.ndarray, jnp.ndarray, LevelLink]:
  """Parent cells (coords >> 1) of a level, unique, in key order, at a static capacity.

  Args:
    level: the fine level (capacity C).
    capacity: static capacity P of the coarse level. A scene with more than P parent cells
      sets LevelLink.overflow and loses the extra cells (their children map to row P).
  Returns:
    coarse coords int32 [B, P, 3], coarse mask bool [B, P], and the LevelLink.
  """
  coarse_coords, coarse_mask, parent, offset, children, overflow = jax.vmap(
      lambda c, m: _downsample_single(c, m, capacity))(level.coords, level.mask)
  link = LevelLink(parent=parent, child_offset=offset, children=children, overflow=overflow)
  return coarse_coords, coarse_mask, link


def build_pyramid(coords: jnp.ndarray, mask: jnp.ndarray,
                  kernel_sizes: Sequence[Sequence[int]], capacities: Sequence[int],
                  method: str = "scan") -> tuple[list[SparseLevel], list[LevelLink]]:
  """Levels 0..L-1 (level l has voxel size 2^l) with their kernel maps and links, on device.

  Args:
    coords: int32 [B, C, 3]; mask: bool [B, C] (level 0).
    kernel_sizes: per level, the submanifold kernel sizes its convs use (L tuples).
    capacities: static capacity per level (L entries, the first equal to C), e.g. from the
      host's level counts (`jaxseg.ops.sparse.host_maps`) rounded up on the capacity ladder.
    method: `jnp.searchsorted` method.
  Returns:
    (levels [L], links [L - 1]); links[l] joins level l to level l + 1; levels >= 1 carry
    their interpolation corners.
  """
  num_levels = len(kernel_sizes)
  if len(capacities) != num_levels or capacities[0] != mask.shape[1]:
    raise ValueError(f"capacities {capacities} must have {num_levels} entries starting with "
                     f"the input capacity {mask.shape[1]}")
  levels = [build_level(coords, mask, kernel_sizes[0], method)]
  links = []
  for lvl in range(1, num_levels):
    coarse_coords, coarse_mask, link = downsample(levels[-1], capacities[lvl])
    links.append(link)
    levels.append(build_level(coarse_coords, coarse_mask, kernel_sizes[lvl], method,
                              with_corners=True))
  return levels, links
