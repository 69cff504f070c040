"""The sparse geometry a batch's encoder layers share: levels, kernel maps, links, upsampling.

A batch holds G packs (one per device shard); each pack is one buffer of several scenes whose
voxels sit apart (see `jaxseg.data.packing`), so every op below treats a pack as one cloud.
Level l (voxel size 2^l) of a pack has a static capacity C_l; its valid rows come first.

Two engines build the maps (`GeometrySpec.engine`):
  'pairs'  (default) the host lists the neighbour pairs that exist, in the input workers
           (`host_maps.py`, `jaxseg.data.packing`), and the convs gather only those
           (`pairs.py`): the work is the real neighbour count.
  'dense'  the device sorts int32 voxel keys and searches every kernel offset
           (`kernel_map.py`) and the convs gather every offset of every row (`conv.py`): no
           host work, and the reference the pair lists are tested against.

Both give the same outputs (to float32 summation order); their interpolation corners and
parent maps have the same meaning, so the encoders are written once against this module.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.struct
import jax
import jax.numpy as jnp

from jaxseg.errors import InputError
from jaxseg.ops.rows import per_pack, scatter_add_weighted, take_rows
from jaxseg.ops.sparse import conv as dense_conv
from jaxseg.ops.sparse import kernel_map
from jaxseg.ops.sparse import keys as keys_lib
from jaxseg.ops.sparse import pairs

ENGINES = ("pairs", "dense")
SEARCH_METHODS = ("scan", "scan_unrolled", "sort", "compare_all")


@dataclasses.dataclass(frozen=True)
class GeometrySpec:
  """What an encoder needs built per batch.

  level_kernels: per level 0..L, the submanifold kernel sizes its convs use (the encoder's
    `level_kernels`), e.g. ((5,), (3,), (3,), (3,), (3,)) for Res16FPN18.
  bands: ((kernel size, bands), ...): into how many bands the half offsets of a kernel are
    split (`pairs.py`; more bands pad less but make more, smaller matmuls); child_bands: the
    same for the 8 child offsets of the stride-2 convs.
  engine: 'pairs' or 'dense' (see the module docstring).
  search_method: `jnp.searchsorted` method of the dense engine ('scan' suits CPU, 'sort'
    often GPU/TPU).
  scene_rows: the batch also lists each scene slot's voxel rows (`SCENE_ROWS`, for encoders
    that work per scene, `jaxseg.models.sampled_dgcnn`).
  """
  level_kernels: tuple[tuple[int, ...], ...]
  bands: tuple[tuple[int, int], ...] = ((3, 3), (5, 6))
  child_bands: int = 2
  engine: str = "pairs"
  search_method: str = "scan"
  scene_rows: bool = False

  def __post_init__(self):
    if self.engine not in ENGINES:
      raise InputError("model.engine", f"unknown sparse engine {self.engine!r}",
                       f"use one of {list(ENGINES)}")
    if self.search_method not in SEARCH_METHODS:
      raise InputError("model.search_method", f"unknown searchsorted method "
                       f"{self.search_method!r}", f"use one of {list(SEARCH_METHODS)}")
    for k in {k for kernels in self.level_kernels for k in kernels}:
      if not 1 <= self.num_bands(k) <= k ** 3 // 2:
        raise InputError("model.bands", f"{self.num_bands(k)} bands for the {k ** 3 // 2} half "
                         f"offsets of a {k}^3 kernel", f"use 1..{k ** 3 // 2}")
    if not 1 <= self.child_bands <= 8:
      raise InputError("model.child_bands", f"{self.child_bands} bands for 8 child offsets",
                       "use 1..8")

  @property
  def num_levels(self) -> int:
    return len(self.level_kernels)

  def num_bands(self, kernel_size: int) -> int:
    """Bands of a kernel's half offsets (one per 4 offsets unless `bands` says)."""
    return dict(self.bands).get(kernel_size, -(-(kernel_size ** 3 // 2) // 4))


# int32 [G, Z, L]: the pack rows of each scene slot's voxels, C_0 on padding (L: the capacity
# of the need 'scene_voxels', the most voxels of one scene).
SCENE_ROWS = "scene_rows"


def mask_key(level: int) -> str:
  return f"level{level}_mask"


def pair_key(level: int, kernel_size: int, band: int, part: str) -> str:
  """part: 'inputs' | 'outputs' | 'offset'."""
  return f"level{level}_k{kernel_size}_b{band}_{part}"


def link_key(level: int, part: str, band: int | None = None) -> str:
  """The link from `level` to `level + 1`; part: 'children' | 'parents' | 'offset' (per band)
  or 'parent' (band None)."""
  return f"link{level}_{part}" if band is None else f"link{level}_b{band}_{part}"


def corners_key(level: int) -> str:
  return f"level{level}_corners"


def batch_keys(spec: GeometrySpec) -> tuple[str, ...]:
  """The batch fields `from_batch` reads for `spec`."""
  keys = ["voxel_coords"] + [mask_key(l) for l in range(spec.num_levels)]
  if spec.scene_rows:
    keys.append(SCENE_ROWS)
  if spec.engine == "pairs":
    for level, kernels in enumerate(spec.level_kernels):
      keys += [pair_key(level, k, b, p) for k in kernels for b in range(spec.num_bands(k))
               for p in ("inputs", "outputs", "offset")]
    for level in range(spec.num_levels - 1):
      keys += [link_key(level, p, b) for b in range(spec.child_bands)
               for p in ("children", "parents", "offset")]
      keys += [link_key(level, "parent"), corners_key(level + 1)]
  return tuple(keys)


@flax.struct.dataclass
class Level:
  """One level of a batch: mask bool [G, C]; maps {kernel size: PairBands ('pairs') or
  int32 [G, K, C] neighbour rows ('dense')}."""
  mask: jax.Array
  maps: dict[int, Any]

  @property
  def capacity(self) -> int:
    return self.mask.shape[1]


@flax.struct.dataclass
class Link:
  """From level l to l + 1: maps (ChildBands or kernel_map.LevelLink) for the stride-2 convs;
  parent int32 [G, C_l], the level l+1 row of each voxel (C_{l+1} on padding rows)."""
  maps: Any
  parent: jax.Array


@flax.struct.dataclass
class Geometry:
  """coords int32 [G, C0, 3] level-0 voxel indices; levels[0..L]; links[0..L-1];
  corners[l] int32 [G, C_l, 8] (None at l = 0): rows of the cells c + {0,1}^3 at level l
  (C_l when absent); ancestors[l] int32 [G, C0] (None at l = 0): the level-l cell of each
  input voxel."""
  coords: jax.Array
  levels: list[Level]
  links: list[Link]
  corners: list[Any]
  ancestors: list[Any]


def _take(table: jax.Array, rows: jax.Array, fill) -> jax.Array:
  """Per pack: table [G, C, ...], rows int [G, ...] in [0, C] -> [G, ..., ...]; row C (the
  padding slot) reads `fill` (jnp.take wraps negative rows, so slots are never -1)."""
  return per_pack(lambda t, r: jnp.take(t, r, axis=0, mode="fill", fill_value=fill),
                        table, rows)


def _ancestors(links: list[Link], levels: list[Level]) -> list[Any]:
  """The level-l cell of each input voxel, l = 1..L, by chaining the parent maps."""
  out, rows = [None], None
  for level, link in enumerate(links):
    coarse_capacity = levels[level + 1].capacity
    rows = link.parent if rows is None else _take(link.parent, rows, coarse_capacity)
    out.append(rows)
  return out


def _from_pairs(batch: Mapping[str, jax.Array], spec: GeometrySpec) -> Geometry:
  levels, links, corners = [], [], [None]
  for level, kernels in enumerate(spec.level_kernels):
    maps = {}
    for k in kernels:
      parts = [tuple(batch[pair_key(level, k, b, p)] for b in range(spec.num_bands(k)))
               for p in ("inputs", "outputs", "offset")]
      maps[k] = pairs.PairBands(*parts, kernel_volume=k ** 3)
    levels.append(Level(batch[mask_key(level)], maps))
  for level in range(spec.num_levels - 1):
    parts = [tuple(batch[link_key(level, p, b)] for b in range(spec.child_bands))
             for p in ("children", "parents", "offset")]
    links.append(Link(pairs.ChildBands(*parts), batch[link_key(level, "parent")]))
    corners.append(batch[corners_key(level + 1)])
  return Geometry(batch["voxel_coords"], levels, links, corners, _ancestors(links, levels))


def _from_device_build(batch: Mapping[str, jax.Array], spec: GeometrySpec) -> Geometry:
  capacities = [batch[mask_key(l)].shape[1] for l in range(spec.num_levels)]
  built, built_links = kernel_map.build_pyramid(
      batch["voxel_coords"], batch[mask_key(0)], spec.level_kernels, capacities,
      spec.search_method)
  levels = [Level(lvl.mask, lvl.neighbours) for lvl in built]
  links = [Link(link, link.parent) for link in built_links]
  corners = [None] + [lvl.corners for lvl in built[1:]]
  return Geometry(built[0].coords, levels, links, corners, _ancestors(links, levels))


def from_batch(batch: Mapping[str, jax.Array], spec: GeometrySpec) -> Geometry:
  """The geometry of a device batch (inside jit): read ('pairs') or built ('dense')."""
  if spec.engine == "pairs":
    return _from_pairs(batch, spec)
  return _from_device_build(batch, spec)


def masked_input(x: jax.Array, level: Level, dtype) -> jax.Array:
  """Raw features [G, C, F] with padding rows (which may hold anything, NaN included) set to
  zero, in `dtype`: the input every op of this module expects."""
  return jnp.where(level.mask[..., None], x, 0).astype(dtype)


def submanifold_conv(x: jax.Array, level: Level, kernel: jax.Array) -> jax.Array:
  """Submanifold conv at `level`: x [G, C, Ci], kernel [K, Ci, Co] -> [G, C, Co].

  Every op of this module takes features whose padding rows are zero and returns features
  whose padding rows are zero (mask raw inputs once, e.g. at an encoder's entry)."""
  size = round(kernel.shape[0] ** (1 / 3))
  if size ** 3 != kernel.shape[0] or size not in level.maps:
    raise ValueError(f"no kernel map for a {kernel.shape[0]}-offset kernel at this level "
                     f"(maps for sizes {sorted(level.maps)})")
  kernel = kernel.astype(x.dtype)
  if isinstance(level.maps[size], pairs.PairBands):
    return pairs.submanifold_conv(x, level.maps[size], kernel)
  return dense_conv.submanifold_conv(x, level.mask, level.maps[size], kernel).astype(x.dtype)


def strided_conv(x: jax.Array, geometry: Geometry, fine: int, kernel: jax.Array) -> jax.Array:
  """Kernel-2 stride-2 conv from level `fine` to fine + 1: [G, C, Ci] -> [G, P, Co]."""
  link, coarse = geometry.links[fine], geometry.levels[fine + 1]
  kernel = kernel.astype(x.dtype)
  if isinstance(link.maps, pairs.ChildBands):
    return pairs.strided_conv(x, link.maps, kernel, coarse.capacity)
  mask = geometry.levels[fine].mask
  return dense_conv.strided_conv(x, mask, link.maps, kernel).astype(x.dtype)


def transposed_conv(x: jax.Array, geometry: Geometry, fine: int,
                    kernel: jax.Array) -> jax.Array:
  """Kernel-2 stride-2 transposed conv from level fine + 1 back to `fine`:
  [G, P, Ci] -> [G, C, Co]."""
  link = geometry.links[fine]
  kernel = kernel.astype(x.dtype)
  if isinstance(link.maps, pairs.ChildBands):
    return pairs.transposed_conv(x, link.maps, kernel, geometry.levels[fine].capacity)
  return dense_conv.transposed_conv(x, link.maps, kernel).astype(x.dtype)


def corner_weights(coords: jax.Array, level: int) -> jax.Array:
  """Trilinear weights of the 8 corners at `level` for level-0 voxels: int [..., 3] ->
  float32 [..., 8]. With f = (q mod 2^l) / 2^l per axis, corner d gets prod over the axes of
  (f if d = 1 else 1 - f), MinkowskiEngine's interpolation weights at the voxel coordinates."""
  stride = 1 << level
  frac = (coords & (stride - 1)).astype(jnp.float32) / stride          # [..., 3]
  bits = jnp.asarray(keys_lib.CORNER_OFFSETS, bool)                  # [8, 3]
  per_axis = jnp.where(bits, frac[..., None, :], 1.0 - frac[..., None, :])
  return jnp.prod(per_axis, axis=-1)


@jax.custom_vjp
def _interpolate(table, rows, weights):
  """table [C_l, F], rows int [C0, 8], weights f32 [C0, 8] -> [C0, F]: sum_j w_j table[r_j]."""
  out = 0.0
  for j in range(8):   # Padding rows' corners are all the padding slot: they read zeros.
    out = out + weights[:, j:j + 1] * take_rows(table, rows[:, j]).astype(jnp.float32)
  return out.astype(table.dtype)


def _interpolate_fwd(table, rows, weights):
  # An empty [C_l, 0] array carries the table's row count and dtype to the backward pass.
  return (_interpolate(table, rows, weights),
          (rows, weights, jnp.zeros((table.shape[0], 0), table.dtype)))


def _interpolate_bwd(residuals, grad):
  rows, weights, like = residuals
  return (scatter_add_weighted(rows, weights, grad, like.shape[0]).astype(like.dtype), None,
          None)


_interpolate.defvjp(_interpolate_fwd, _interpolate_bwd)


def interpolate_to_input(y: jax.Array, geometry: Geometry, level: int) -> jax.Array:
  """Features of `level` brought back to the input voxels by trilinear interpolation.

  As MinkowskiEngine's `interpolate` at the voxel coordinates: the 8 cells around each input
  voxel (its level-l cell c and c + {0,1}^3) weighted by `corner_weights`; absent cells add
  nothing and the weights are not renormalised. (Interpolation is linear, so it commutes with
  a following linear layer: interpolate narrow features, then widen them.)

  Args:
    y: float [G, C_l, F] at level l >= 1.
    geometry: the batch's geometry.
    level: l.
  Returns:
    float [G, C0, F] in y's dtype, zeros on padding rows.
  """
  capacity = y.shape[1]
  rows = _take(geometry.corners[level], geometry.ancestors[level], capacity)   # [G, C0, 8]
  weights = corner_weights(geometry.coords, level)
  return per_pack(_interpolate, y, rows, weights)
