"""One sparse conv layer (64 -> 64, kernel 3) and the kernel-map build, on surface-like scans.

Scenes are rooms (floor, ceiling, four walls) with random boxes, sampled on their surfaces and
voxelised at 3 cm, so the density is that of an indoor scan. Reported: voxels per second of
the map build (key sort + searchsorted for 27 offsets), the conv forward and forward+backward
(jitted, CPU unless an accelerator is present).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.ops.sparse import conv
from jaxseg.ops.sparse import kernel_map

VOXEL_SIZE = 0.03


def _box_surface(rng, low, high, num_points):
  """Points uniformly on the six faces of an axis-aligned box: float [N, 3]."""
  low, high = np.asarray(low, float), np.asarray(high, float)
  size = high - low
  areas = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]] * 2)
  face = rng.choice(6, size=num_points, p=areas / areas.sum())
  points = low + rng.random((num_points, 3)) * size
  axis = face % 3
  points[np.arange(num_points), axis] = np.where(face < 3, low[axis], high[axis])
  return points


def surface_scene(rng: np.random.Generator, target_voxels: int):
  """A room scan with about `target_voxels` occupied 3 cm voxels.

  The room (floor, ceiling, walls 0.4 x its side high) and eight pieces of furniture are laid
  out in a unit square and scaled so that their surface holds target_voxels voxels.

  Returns:
    coords int32 [N, 3] unique voxel indices, N <= target_voxels (a few % are dropped at
    random when the surface holds more).
  """
  boxes = [((0.0, 0.0, 0.0), (1.0, 1.0, 0.4))]
  for _ in range(8):
    corner = np.append(rng.random(2) * 0.8, 0.0)
    boxes.append((corner, corner + rng.uniform([0.05, 0.05, 0.05], [0.2, 0.2, 0.15])))
  unit_areas = [2 * (d[1] * d[2] + d[0] * d[2] + d[0] * d[1])
                for d in (np.subtract(h, l) for l, h in boxes)]
  # 15% more surface than needed: furniture on the floor hides some of it.
  side = np.sqrt(1.15 * target_voxels * VOXEL_SIZE ** 2 / np.sum(unit_areas))
  points = np.concatenate([
      _box_surface(rng, np.multiply(l, side), np.multiply(h, side),
                   int(8 * a * side ** 2 / VOXEL_SIZE ** 2))
      for (l, h), a in zip(boxes, unit_areas)])
  voxels = np.unique(np.floor(points / VOXEL_SIZE).astype(np.int64), axis=0)
  voxels -= voxels.min(axis=0)
  rng.shuffle(voxels)
  return voxels[:target_voxels].astype(np.int32)


def padded_batch(voxels: np.ndarray, capacity: int, num_features: int, seed: int = 0):
  """One scene padded to `capacity`: coords [1, C, 3], feats [1, C, F], mask [1, C]."""
  n = len(voxels)
  coords = np.zeros((1, capacity, 3), np.int32)
  coords[0, :n] = voxels
  mask = np.zeros((1, capacity), bool)
  mask[0, :n] = True
  feats = np.random.default_rng(seed).normal(size=(1, capacity, num_features))
  return coords, feats.astype(np.float32), mask


def timed(fn, *args, repeats: int) -> tuple[float, float]:
  """(first call seconds incl. compile, median seconds of `repeats` further calls)."""
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return first, float(np.median(times))


def run(quick: bool) -> dict:
  sizes = (5_000, 10_000) if quick else (50_000, 100_000, 200_000)
  rng = np.random.default_rng(0)
  build = jax.jit(lambda c, m: kernel_map.build_level(c, m, (3,)).neighbours[3])
  results = []
  for target in sizes:
    voxels = surface_scene(rng, target)
    capacity = -(-len(voxels) // 1024) * 1024
    coords, feats, mask = padded_batch(voxels, capacity, 64)
    kernel = jnp.asarray(np.random.default_rng(1).normal(size=(27, 64, 64)) / 40, jnp.float32)
    compile_map, map_s = timed(build, coords, mask, repeats=3)
    nbr = build(coords, mask)
    forward = jax.jit(lambda f, w: conv.submanifold_conv(f, mask, nbr, w))
    backward = jax.jit(jax.grad(lambda f, w: jnp.sum(conv.submanifold_conv(f, mask, nbr, w) ** 2),
                                (0, 1)))
    _, fwd_s = timed(forward, feats, kernel, repeats=3)
    _, fwdbwd_s = timed(backward, feats, kernel, repeats=3)
    mean_neighbours = float(np.mean(np.sum(np.asarray(nbr)[0] < capacity, 0)[:len(voxels)]))
    row = {"voxels": len(voxels), "capacity": capacity,
           "mean_neighbours": round(mean_neighbours, 2),
           "map_build_s": round(map_s, 4), "map_first_call_s": round(compile_map, 2),
           "conv_forward_s": round(fwd_s, 4), "conv_forward_backward_s": round(fwdbwd_s, 4),
           "map_voxels_per_s": round(len(voxels) / map_s),
           "conv_forward_voxels_per_s": round(len(voxels) / fwd_s),
           "conv_train_voxels_per_s": round(len(voxels) / fwdbwd_s)}
    print(row, flush=True)
    results.append(row)
  return {"layer": "submanifold conv 64->64 k3, float32, batch 1, 3 cm surface scans",
          "backend": jax.default_backend(), "rows": results}
