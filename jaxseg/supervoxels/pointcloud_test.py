"""VCCS + region growing on synthetic planes, vs a plain PCL-style region-growing loop."""

import numpy as np
import pytest

from jaxseg.geometry.normals import estimate_normals_and_curvature
from jaxseg.supervoxels import pointcloud
from jaxseg.supervoxels.region_growing import region_growing
from jaxseg.supervoxels.vccs import vccs
from jaxseg.supervoxels.voxelize import voxel_adjacency, voxelize


def _room_corner(seed, spacing=0.025, size=2.0, height=1.5):
  """A floor and two walls meeting at right angles, jittered grid samples.

  Returns coords (N, 3), uniform grey colours (N, 3) (only geometry separates the planes) and
  the plane id (N,) of every point.
  """
  rng = np.random.default_rng(seed)

  def sheet(extent_u, extent_v):
    u, v = np.meshgrid(np.arange(0, extent_u, spacing), np.arange(0, extent_v, spacing),
                       indexing="ij")
    jitter = rng.uniform(-0.3, 0.3, size=(2, u.size)) * spacing
    return u.reshape(-1) + jitter[0], v.reshape(-1) + jitter[1]

  u, v = sheet(size, size)
  floor = np.stack([u, v, np.zeros_like(u)], axis=1)
  u, v = sheet(size, height)
  wall_x = np.stack([np.zeros_like(u), u, v], axis=1)
  u, v = sheet(size, height)
  wall_y = np.stack([u, np.zeros_like(u), v], axis=1)
  coords = np.concatenate([floor, wall_x, wall_y])
  plane = np.repeat([0, 1, 2], [len(floor), len(wall_x), len(wall_y)])
  return coords, np.full(coords.shape, 128.0), plane


def test_supervoxels_do_not_cross_right_angle_creases():
  coords, colors, plane = _room_corner(0)
  segments = pointcloud.pointcloud_supervoxels(coords, colors)
  # Points within 2 voxels of a crease share voxels and normals with the other plane: skipped.
  far = np.sort(coords, axis=1)[:, 1] > 0.1  # second-smallest coordinate: crease distance
  assert segments.min() >= 0
  for s in np.unique(segments):
    assert len(np.unique(plane[(segments == s) & far])) <= 1
  # Region growing merges each flat plane into one super-voxel.
  for p in range(3):
    _, counts = np.unique(segments[(plane == p) & far], return_counts=True)
    assert counts.max() > 0.9 * counts.sum()


def test_vccs_cells_are_compact():
  coords, colors, _ = _room_corner(1)
  grid = voxelize(coords, colors, 0.05)
  normals, _ = estimate_normals_and_curvature(grid.coords, 0.15)
  cells = vccs(grid.coords, grid.colors, normals, grid.cells, voxel_size=0.05,
               seed_resolution=0.5)
  assert cells.min() >= 0
  num_cells = cells.max() + 1
  # About one cell per seed cell of the 0.5 m grid over ~10 m^2 of surface.
  assert 20 <= num_cells <= 80
  for c in range(num_cells):
    member = grid.coords[cells == c]
    assert np.linalg.norm(member.max(axis=0) - member.min(axis=0)) <= 2 * 0.5


def test_ids_contiguous_and_deterministic():
  coords, colors, _ = _room_corner(2, spacing=0.03)
  rng = np.random.default_rng(0)
  colors = rng.uniform(0, 255, size=coords.shape)
  first = pointcloud.pointcloud_supervoxels(coords, colors, smoothness_deg=3.0)
  second = pointcloud.pointcloud_supervoxels(coords, colors, smoothness_deg=3.0)
  np.testing.assert_array_equal(first, second)
  assert first.dtype == np.int32
  assert set(np.unique(first)) == set(range(first.max() + 1))


def test_min_points_drops_small_segments():
  coords, colors, _ = _room_corner(3, spacing=0.03)
  rng = np.random.default_rng(1)
  clutter = rng.uniform(0.5, 1.5, size=(40, 3))  # sparse points in the air
  coords = np.concatenate([coords, clutter])
  colors = np.concatenate([colors, np.full((40, 3), 20.0)])
  full = pointcloud.pointcloud_supervoxels(coords, colors)
  dropped = pointcloud.pointcloud_supervoxels(coords, colors, min_points=30)
  sizes = np.bincount(full)
  np.testing.assert_array_equal(dropped < 0, sizes[full] < 30)
  assert (dropped < 0).any()
  assert np.bincount(dropped[dropped >= 0]).min() >= 30


def test_merge_by_majority_hand_example():
  cells = np.array([0, 0, 0, 1, 1, 1, 1, -1, 2, 2, 3, 3, 3])
  regions = np.array([5, 5, -1, 5, 6, 6, -1, 7, 3, 4, -1, -1, 2])
  # 8 regions (0..7); a cell's own id is 8 + cell.
  # cell 0: region 5 covers 2/3 -> 5; cell 1: region 6 covers exactly 1/2 -> own (9);
  # voxel 7: no cell -> its region 7; cell 2: 1/2 each -> own (10);
  # cell 3: "no region" covers 2/3, but it is not a region -> own (11).
  np.testing.assert_array_equal(pointcloud.merge_by_majority(cells, regions),
                                [5, 5, 5, 9, 9, 9, 9, 7, 10, 10, 11, 11, 11])


def _pcl_region_growing(coords, normals, curvature, k, angle_deg, curvature_threshold):
  """PCL RegionGrowing (smooth mode) as a plain loop, on the symmetrised k-NN graph found by
  brute force."""
  n = len(coords)
  distances = np.linalg.norm(coords[:, None] - coords[None], axis=2)
  knn = np.argsort(distances, axis=1)[:, :k]
  neighbours = [set() for _ in range(n)]
  for i in range(n):
    for j in knn[i].tolist():
      if j != i:
        neighbours[i].add(j)
        neighbours[j].add(i)
  cos_threshold = np.cos(np.deg2rad(angle_deg))
  labels = [-1] * n
  region = 0
  for seed in sorted(range(n), key=lambda i: (curvature[i], i)):
    if labels[seed] != -1:
      continue
    labels[seed] = region
    queue = [seed]
    while queue:
      p = queue.pop()
      for q in sorted(neighbours[p]):
        if labels[q] == -1 and abs(float(np.dot(normals[p], normals[q]))) >= cos_threshold:
          labels[q] = region
          if curvature[q] < curvature_threshold:
            queue.append(q)
    region += 1
  return np.array(labels)


@pytest.mark.parametrize("seed", [0, 1])
def test_region_growing_matches_pcl_loop(seed):
  rng = np.random.default_rng(seed)
  n = 600
  coords = rng.uniform(0, 1, size=(n, 3)) * np.array([1.0, 1.0, 0.2])
  normals = np.array([0.0, 0.0, 1.0]) + rng.normal(scale=0.05, size=(n, 3))
  normals /= np.linalg.norm(normals, axis=1, keepdims=True)
  curvature = rng.uniform(0, 0.3, size=n)
  expected = _pcl_region_growing(coords, normals, curvature, 15, 5.0, 1.0)
  result = region_growing(coords, normals, curvature, num_neighbors=15, smoothness_deg=5.0,
                          curvature_threshold=1.0)
  assert 5 < len(np.unique(expected)) < n // 2
  pairs = np.unique(np.stack([result, expected], axis=1), axis=0)
  assert len(pairs) == len(np.unique(result)) == len(np.unique(expected))


def test_region_growing_min_region_size():
  rng = np.random.default_rng(3)
  coords = rng.uniform(0, 1, size=(300, 3))
  normals = rng.normal(size=(300, 3))
  normals /= np.linalg.norm(normals, axis=1, keepdims=True)
  labels = region_growing(coords, normals, np.zeros(300), smoothness_deg=20.0)
  sizes = np.bincount(labels)
  kept = region_growing(coords, normals, np.zeros(300), smoothness_deg=20.0, min_region_size=3)
  np.testing.assert_array_equal(kept < 0, sizes[labels] < 3)


def test_voxel_adjacency_matches_brute_force():
  rng = np.random.default_rng(4)
  cells = np.unique(rng.integers(0, 6, size=(120, 3)), axis=0)
  edges = {tuple(e) for e in voxel_adjacency(cells).tolist()}
  expected = {(i, j) for i in range(len(cells)) for j in range(len(cells))
              if i != j and np.abs(cells[i] - cells[j]).max() <= 1}
  assert edges == expected
