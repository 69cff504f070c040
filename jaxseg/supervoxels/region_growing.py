"""Normal-smoothness region growing (PCL `RegionGrowing`) as connected components.

PCL grows regions from seeds taken in increasing curvature: from a point p in the region it
adds each unlabelled k-nearest neighbour q whose normal satisfies |n_p . n_q| >= cos(theta)
(smooth mode), and q keeps growing only when its curvature is below the curvature threshold.

Formulation here (no per-point Python loop):
* The k-nearest-neighbour graph (k includes the point itself, as PCL's search does) is made
  symmetric, and an edge is "smooth" when |n_p . n_q| >= cos(theta). The test is symmetric.
* Points with curvature < threshold ("growing" points) form regions = connected components of
  the smooth edges among growing points. On a symmetric graph this is exactly what PCL's
  flood fill produces, whatever the seed order; with curvature threshold 1 (GrowSP), every
  point grows (PCL curvature is at most 1/3), so the result is PCL's on the symmetrised graph.
* A non-growing point joins the region of its nearest growing neighbour over a smooth edge
  (PCL: the first region that reaches it, which depends on seed order); with no such
  neighbour it forms its own region. This is an approximation of PCL only for curvature
  thresholds below 1/3.
* Regions smaller than `min_region_size` are unlabelled (-1), as in PCL's min cluster size.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy import spatial
from scipy.sparse import csgraph


def region_growing(coords: np.ndarray, normals: np.ndarray, curvature: np.ndarray, *,
                   num_neighbors: int = 15, smoothness_deg: float = 5.0,
                   curvature_threshold: float = 1.0, min_region_size: int = 1) -> np.ndarray:
  """Smoothness-constrained region growing.

  Args:
    coords: float (V, 3).
    normals: float (V, 3) unit normals (sign ignored).
    curvature: float (V,) surface variation in [0, 1/3].
    num_neighbors: k of the k-nearest-neighbour search (the point itself included).
    smoothness_deg: largest angle between neighbouring normals inside a region.
    curvature_threshold: points at or above it join regions but do not extend them.
    min_region_size: regions with fewer points get -1.
  Returns:
    int32 (V,) region id in [0, R) contiguous, numbered by first point; -1 for dropped points.
  """
  coords = np.asarray(coords, np.float64)
  normals = np.asarray(normals, np.float64)
  num = len(coords)
  k = min(num_neighbors, num)
  distance, neighbors = spatial.cKDTree(coords).query(coords, k=k)
  neighbors = neighbors.reshape(num, k)
  distance = distance.reshape(num, k)
  src = np.repeat(np.arange(num), k)
  dst = neighbors.reshape(-1)
  dist = distance.reshape(-1)
  smooth = np.abs(np.einsum("ei,ei->e", normals[src], normals[dst])) >= np.cos(
      np.deg2rad(smoothness_deg))
  smooth &= src != dst
  growing = np.asarray(curvature) < curvature_threshold
  keep = smooth & growing[src] & growing[dst]
  graph = sparse.coo_matrix((np.ones(int(keep.sum())), (src[keep], dst[keep])),
                            shape=(num, num))
  _, labels = csgraph.connected_components(graph, directed=False)
  labels = labels.astype(np.int64)
  if not growing.all():
    # Symmetric candidate list: (non-growing point, growing neighbour) over smooth edges.
    a = np.concatenate([src, dst])
    b = np.concatenate([dst, src])
    d = np.concatenate([dist, dist])
    ok = np.concatenate([smooth, smooth]) & ~growing[a] & growing[b]
    a, b, d = a[ok], b[ok], d[ok]
    order = np.lexsort((b, d, a))
    a, b = a[order], b[order]
    first = np.ones(len(a), bool)
    first[1:] = a[1:] != a[:-1]
    labels[a[first]] = labels[b[first]]
  return _contiguous(labels, min_region_size)


def _contiguous(labels: np.ndarray, min_size: int) -> np.ndarray:
  """Renumbers labels by first occurrence; groups smaller than min_size become -1."""
  _, first, inverse, counts = np.unique(labels, return_index=True, return_inverse=True,
                                        return_counts=True)
  inverse = inverse.reshape(-1)
  keep = counts >= min_size
  rank = np.full(len(first), -1, np.int64)
  kept = np.flatnonzero(keep)
  rank[kept[np.argsort(first[kept], kind="stable")]] = np.arange(len(kept))
  return rank[inverse].astype(np.int32)
