"""VCCS super-voxels (Papon et al. 2013, PCL `SupervoxelClustering`), vectorised with numpy.

Formulation (on the voxels of `voxelize`, with per-voxel normals):
1. Seeds: the voxel centroids are binned on a `seed_resolution` grid; each occupied seed cell
   proposes the voxel nearest to the mean of its voxels. Like PCL, a seed is kept only when at
   least `seed_min_fraction * (4/3 pi r^3) / voxel^3` voxels lie within r = seed_resolution / 2
   of it (drops seeds in sparse clutter).
2. Distance between a voxel v and a super-voxel s (PCL `voxelDataDistance`):
   D = w_spatial |x_v - x_s| / seed_resolution + w_color |rgb_v - rgb_s| / 255
       + w_normal (1 - |n_v . n_s|).
3. Expansion: 1.8 * seed_resolution / voxel_size rounds. In each round every super-voxel tries
   to claim every voxel adjacent (26-neighbourhood) to one of its voxels; a voxel goes to the
   candidate with the smallest D if that beats the D it was claimed with (seeds are fixed).
   PCL lets the super-voxels claim one after the other within a round; here all claim at once
   and the best claim wins, which removes PCL's dependence on the super-voxel order. After each
   round the centroids are recomputed (mean position, mean colour, normalised mean normal).
4. Voxels no super-voxel reaches through the adjacency stay unassigned (-1), as in PCL.
"""

from __future__ import annotations

import numpy as np
from scipy import spatial

from jaxseg.supervoxels.voxelize import voxel_adjacency


def select_seeds(coords: np.ndarray, voxel_size: float, seed_resolution: float,
                 seed_min_fraction: float = 0.05) -> np.ndarray:
  """int64 (S,) voxel indices of the VCCS seeds (see module docstring, step 1)."""
  cells = np.floor(coords / seed_resolution).astype(np.int64)
  _, cell_of_voxel = np.unique(cells, axis=0, return_inverse=True)
  cell_of_voxel = cell_of_voxel.reshape(-1)
  num_cells = int(cell_of_voxel.max()) + 1
  sums = np.zeros((num_cells, 3))
  np.add.at(sums, cell_of_voxel, coords)
  means = sums / np.bincount(cell_of_voxel, minlength=num_cells)[:, None]
  tree = spatial.cKDTree(coords)
  _, seeds = tree.query(means, k=1)
  seeds = np.unique(seeds)
  radius = 0.5 * seed_resolution
  min_voxels = seed_min_fraction * (4.0 / 3.0 * np.pi * radius ** 3) / voxel_size ** 3
  support = tree.query_ball_point(coords[seeds], r=radius, return_length=True)
  return seeds[support >= min_voxels]


def _centroids(owner: np.ndarray, features: np.ndarray, num: int) -> np.ndarray:
  """float64 (num, 9) per super-voxel mean xyz, mean rgb, normalised mean normal."""
  valid = owner >= 0
  sums = np.zeros((num, features.shape[1]))
  np.add.at(sums, owner[valid], features[valid])
  counts = np.bincount(owner[valid], minlength=num)
  centroid = sums / np.maximum(counts, 1)[:, None]
  normal = centroid[:, 6:9]
  length = np.linalg.norm(normal, axis=1, keepdims=True)
  centroid[:, 6:9] = np.where(length > 0, normal / np.maximum(length, 1e-12), 0.0)
  return centroid


def vccs(coords: np.ndarray, colors: np.ndarray, normals: np.ndarray, cells: np.ndarray, *,
         voxel_size: float = 0.05, seed_resolution: float = 0.5,
         spatial_weight: float = 0.4, normal_weight: float = 1.0, color_weight: float = 0.2,
         seed_min_fraction: float = 0.05) -> np.ndarray:
  """VCCS over-segmentation of voxels.

  Args:
    coords: float (V, 3) voxel centroids, metres.
    colors: float (V, 3) voxel mean RGB in 0..255.
    normals: float (V, 3) unit voxel normals (sign does not matter for the distance; a
      consistent orientation makes the mean normal of a super-voxel meaningful).
    cells: int (V, 3) distinct integer voxel coordinates (for the 26-neighbourhood).
    voxel_size, seed_resolution: metres.
    spatial_weight, normal_weight, color_weight: VCCS importances (GrowSP: 0.4, 1, 0.2).
    seed_min_fraction: PCL's sparse-seed filter fraction (see `select_seeds`).
  Returns:
    int32 (V,) super-voxel id in [0, S) (contiguous), -1 for voxels no seed reaches.
  """
  coords = np.asarray(coords, np.float64)
  colors = np.asarray(colors, np.float64)
  normals = np.asarray(normals, np.float64)
  num_voxels = len(coords)
  seeds = select_seeds(coords, voxel_size, seed_resolution, seed_min_fraction)
  edges = voxel_adjacency(np.asarray(cells))
  src, dst = edges[:, 0], edges[:, 1]
  features = np.concatenate([coords, colors, normals], axis=1)
  owner = np.full(num_voxels, -1, np.int64)
  best = np.full(num_voxels, np.inf)
  owner[seeds] = np.arange(len(seeds))
  best[seeds] = 0.0
  centroid = features[seeds].copy()
  for _ in range(max(1, int(1.8 * seed_resolution / voxel_size))):
    claimant = owner[src]
    mask = (claimant >= 0) & (owner[dst] != claimant)
    s, v = claimant[mask], dst[mask]
    c = centroid[s]
    distance = (spatial_weight * np.linalg.norm(coords[v] - c[:, :3], axis=1) / seed_resolution
                + color_weight * np.linalg.norm(colors[v] - c[:, 3:6], axis=1) / 255.0
                + normal_weight * (1.0 - np.abs(np.einsum("ei,ei->e", normals[v], c[:, 6:9]))))
    # Per voxel the best claim: smallest distance, ties to the smallest super-voxel id.
    smallest = np.full(num_voxels, np.inf)
    np.minimum.at(smallest, v, distance)
    wins = (distance == smallest[v]) & (distance < best[v])
    if not wins.any():
      break
    v, s, distance = v[wins], s[wins], distance[wins]
    winner = np.full(num_voxels, len(seeds), np.int64)
    np.minimum.at(winner, v, s)
    owner[v] = winner[v]
    best[v] = distance
    centroid = _centroids(owner, features, len(seeds))
  used, labels = np.unique(owner, return_inverse=True)
  labels = labels.reshape(-1) - int(used[0] < 0)
  return labels.astype(np.int32)
