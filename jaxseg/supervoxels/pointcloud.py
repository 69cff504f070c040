"""Super-voxels of a point cloud without a mesh: VCCS merged with region growing (GrowSP).

Recipe of GrowSP / PointDC `initialSP_prepare` (S3DIS): voxelise at 5 cm; VCCS with seed
resolution 0.5 m and importances spatial 0.4 / normal 1 / colour 0.2; region growing on the
voxels with 15 neighbours, smoothness 3 deg (S3DIS) or 5 deg (ScanNet), curvature threshold 1;
a VCCS cell takes the region-growing label when that label covers more than 50% of its voxels,
else it stays its own segment; voxel segments are mapped back to the points.
"""

from __future__ import annotations

import numpy as np

from jaxseg.errors import InputError
from jaxseg.geometry.normals import estimate_normals_and_curvature
from jaxseg.supervoxels.region_growing import region_growing
from jaxseg.supervoxels.vccs import vccs
from jaxseg.supervoxels.voxelize import voxelize


def merge_by_majority(cells: np.ndarray, regions: np.ndarray) -> np.ndarray:
  """Merges VCCS cells with region-growing regions.

  Args:
    cells: int (V,) VCCS cell per voxel, -1 = none.
    regions: int (V,) region-growing label per voxel, -1 = none.
  Returns:
    int64 (V,) merged labels (not contiguous): a cell whose most common region label (-1
    counted as its own label) covers more than half of its voxels takes that region;
    otherwise it keeps itself. Voxels without a cell take their region; -1 when neither.
  """
  cells = np.asarray(cells, np.int64)
  regions = np.asarray(regions, np.int64)
  num_regions = int(regions.max()) + 1 if regions.size else 0
  merged = np.where(regions >= 0, regions, -1)
  in_cell = cells >= 0
  if not in_cell.any():
    return merged
  # Count (cell, region) pairs; region -1 is shifted to num_regions so it is counted too.
  region_key = np.where(regions >= 0, regions, num_regions)[in_cell]
  cell_key = cells[in_cell]
  pairs, pair_counts = np.unique(np.stack([cell_key, region_key], axis=1), axis=0,
                                 return_counts=True)
  cell_sizes = np.bincount(cell_key)
  order = np.lexsort((pairs[:, 1], -pair_counts, pairs[:, 0]))  # biggest pair first per cell
  pairs, pair_counts = pairs[order], pair_counts[order]
  first = np.ones(len(pairs), bool)
  first[1:] = pairs[1:, 0] != pairs[:-1, 0]
  top_cell, top_region, top_count = pairs[first, 0], pairs[first, 1], pair_counts[first]
  takes_region = (2 * top_count > cell_sizes[top_cell]) & (top_region < num_regions)
  cell_label = num_regions + np.arange(len(cell_sizes))  # a cell's own id, after regions
  cell_label[top_cell[takes_region]] = top_region[takes_region]
  merged[in_cell] = cell_label[cell_key]
  return merged


def contiguous_segments(labels: np.ndarray, min_points: int = 1) -> np.ndarray:
  """int32 labels renumbered 0..S-1 by first occurrence; groups < min_points (and -1) -> -1."""
  labels = np.asarray(labels, np.int64)
  out = np.full(labels.shape, -1, np.int32)
  valid = labels >= 0
  if not valid.any():
    return out
  _, first, inverse, counts = np.unique(labels[valid], return_index=True, return_inverse=True,
                                        return_counts=True)
  keep = counts >= min_points
  rank = np.full(len(first), -1, np.int64)
  kept = np.flatnonzero(keep)
  rank[kept[np.argsort(first[kept], kind="stable")]] = np.arange(len(kept))
  out[valid] = rank[inverse.reshape(-1)]
  return out


def pointcloud_supervoxels(coords: np.ndarray, colors: np.ndarray, *,
                           voxel_size: float = 0.05, seed_resolution: float = 0.5,
                           spatial_weight: float = 0.4, normal_weight: float = 1.0,
                           color_weight: float = 0.2, normal_radius_voxels: float = 3.0,
                           normal_max_nn: int = 30, num_neighbors: int = 15,
                           smoothness_deg: float = 5.0, curvature_threshold: float = 1.0,
                           min_points: int = 1, source: str = "") -> np.ndarray:
  """VCCS + region growing super-voxels of a point cloud.

  Args:
    coords: float (N, 3) metres.
    colors: (N, 3) RGB 0..255.
    voxel_size, seed_resolution: metres (GrowSP: 0.05, 0.5).
    spatial_weight, normal_weight, color_weight: VCCS importances (0.4, 1, 0.2).
    normal_radius_voxels, normal_max_nn: voxel normals from the `normal_max_nn` nearest voxel
      centroids within `normal_radius_voxels * voxel_size`.
    num_neighbors, smoothness_deg, curvature_threshold: region growing (15, 3 S3DIS /
      5 ScanNet, 1).
    min_points: segments with fewer points become -1 (dropped from clustering).
    source: file name for error messages.
  Returns:
    int32 (N,) super-voxel ids 0..S-1 (contiguous, numbered by first point), -1 = none.
  """
  coords = np.asarray(coords)
  if coords.ndim != 2 or coords.shape[1] != 3 or len(coords) == 0:
    raise InputError(source or None, f"coordinates have shape {coords.shape}, expected "
                     "(N>0, 3)", "pass x, y, z per point")
  if np.shape(colors) != coords.shape:
    raise InputError(source or None, f"colours have shape {np.shape(colors)}, expected "
                     f"{coords.shape}", "pass r, g, b per point")
  if not 0 < voxel_size < seed_resolution:
    raise InputError(source or None, f"voxel_size={voxel_size}, seed_resolution="
                     f"{seed_resolution}", "use 0 < voxel_size < seed_resolution")
  grid = voxelize(coords, colors, voxel_size)
  normals, curvature = estimate_normals_and_curvature(
      grid.coords, radius=normal_radius_voxels * voxel_size, max_nn=normal_max_nn)
  cells = vccs(grid.coords, grid.colors, normals, grid.cells, voxel_size=voxel_size,
               seed_resolution=seed_resolution, spatial_weight=spatial_weight,
               normal_weight=normal_weight, color_weight=color_weight)
  regions = region_growing(grid.coords, normals, curvature, num_neighbors=num_neighbors,
                           smoothness_deg=smoothness_deg,
                           curvature_threshold=curvature_threshold)
  merged = merge_by_majority(cells, regions)
  return contiguous_segments(merged[grid.point_to_voxel], min_points)
