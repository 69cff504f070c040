"""Test scenes for the sparse engine: random voxel sets, packed and padded like the pipeline,
and dense-grid references (lax.conv on an occupancy grid)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.data import capacity
from jaxseg.data import packing
from jaxseg.ops.sparse import host_maps
from jaxseg.ops.sparse.geometry import GeometrySpec

DN = ("NDHWC", "DHWIO", "NDHWC")
HIGHEST = jax.lax.Precision.HIGHEST


def random_voxels(rng: np.random.Generator, grid, count: int) -> np.ndarray:
  """`count` distinct voxels of `grid`, sorted in (x, y, z) order: int32 (count, 3)."""
  cells = np.sort(rng.choice(int(np.prod(grid)), size=count, replace=False))
  return np.stack(np.unravel_index(cells, grid), axis=-1).astype(np.int32)


def surface_voxels(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
  """About `count` voxels on the floor and two walls of a size^3 room plus a box, sorted."""
  cells = set()
  while len(cells) < count:
    u, v = rng.integers(0, size, 2)
    face = rng.integers(0, 4)
    cells.add([(u, v, 0), (0, u, v), (u, 0, v), (u // 2 + 2, v // 2 + 2, size // 3)][face])
  voxels = np.array(sorted(cells), np.int32)
  return voxels


def scene_element(voxels: np.ndarray, spec: GeometrySpec, feats: np.ndarray,
                  index: int = 0) -> dict:
  """A minimal `pipeline.process_scene` output for given voxels: one point per voxel."""
  n = len(voxels)
  geometry = host_maps.build_scene_geometry(voxels, spec.level_kernels)
  return {"point_coords": voxels.astype(np.float32), "point_colors": np.zeros((n, 3), np.float32),
          "point_normals": np.zeros((n, 3), np.float32), "point_labels": np.zeros(n, np.int32),
          "point_segments": np.arange(n, dtype=np.int32) % 7, "point_index": np.arange(
              n, dtype=np.int32), "point_to_voxel": np.arange(n, dtype=np.int32),
          "voxel_coords": voxels, "voxel_feats": feats.astype(np.float32),
          "transform": np.eye(4, dtype=np.float32), "scene_index": np.int32(index),
          "num_segments": 7, "level_counts": geometry.counts,
          "geometry": geometry if spec.engine == "pairs" else None}


def padded_batch(scenes: list[np.ndarray], feats: list[np.ndarray], spec: GeometrySpec,
                 num_packs: int = 1, slack: int = 0) -> dict[str, np.ndarray]:
  """Scenes (voxel sets) packed into `num_packs` packs and padded `slack` rungs above tight."""
  elements = [scene_element(v, spec, f, i) for i, (v, f) in enumerate(zip(scenes, feats))]
  packs = packing.pack_batch(elements, num_packs, -(-len(scenes) // num_packs), spec)
  needs = packing.batch_needs(packs)
  signature = {q: capacity.rungs(q, n)[-1] for q, n in needs.items()}
  for _ in range(slack):
    signature = {q: capacity.rungs(q, v + 1)[-1] for q, v in signature.items()}
  return packing.pad_packs(packs, signature, spec)


def scene_rows(batch: dict, pack: int, slot: int) -> np.ndarray:
  """Level-0 rows of scene `slot` of `pack` (points are the voxels in these scenes)."""
  point_rows = np.flatnonzero(batch["point_scene"][pack] == slot)
  return np.sort(batch["point_to_voxel"][pack][point_rows])


def dense_grid(voxels: np.ndarray, feats, grid) -> jnp.ndarray:
  """[1, X, Y, Z, F] grid holding `feats` at `voxels` (differentiable in feats)."""
  dense = jnp.zeros((1,) + tuple(grid) + (feats.shape[-1],), feats.dtype)
  return dense.at[0, voxels[:, 0], voxels[:, 1], voxels[:, 2]].set(feats)


def dense_submanifold(voxels: np.ndarray, feats, kernel, grid):
  """Dense SAME conv read back at the voxels: feats [n, Ci], kernel [k, k, k, Ci, Co]."""
  out = jax.lax.conv_general_dilated(dense_grid(voxels, feats, grid), kernel, (1, 1, 1),
                                     "SAME", dimension_numbers=DN, precision=HIGHEST)[0]
  return out[voxels[:, 0], voxels[:, 1], voxels[:, 2]]


def encoder_inputs(rng: np.random.Generator, spec: GeometrySpec, counts, channels: int = 6,
                   size: int = 40, num_packs: int = 1, slack: int = 0, poison: bool = True):
  """A device batch of surface scenes with `counts` voxels and the padded host batch; padding
  feature rows hold NaN when `poison` (they must never be read)."""
  scenes = [surface_voxels(rng, size, n) for n in counts]
  feats = [rng.normal(size=(len(v), channels)).astype(np.float32) for v in scenes]
  host = padded_batch(scenes, feats, spec, num_packs, slack)
  if poison:
    host["voxel_feats"][~host["level0_mask"]] = np.nan
  return jax.device_put(host), host


def random_padded_voxels(rng: np.random.Generator, grid, num_voxels: int, capacity: int,
                         num_features: int):
  """One scene of `num_voxels` distinct voxels of `grid`, scattered over random rows of a
  `capacity`-row array (the other rows are padding: coords 0, features NaN). The layout of
  the dense engine's kernel-map tests.

  Returns:
    coords int32 [capacity, 3], feats float32 [capacity, F], mask bool [capacity].
  """
  cells = rng.choice(int(np.prod(grid)), size=num_voxels, replace=False)
  voxels = np.stack(np.unravel_index(cells, grid), axis=-1)
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
  scenes = [random_padded_voxels(rng, grid, n, capacity, num_features) for n in counts]
  return tuple(np.stack(parts) for parts in zip(*scenes))
