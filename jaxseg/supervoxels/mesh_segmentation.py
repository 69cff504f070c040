"""ScanNet's mesh over-segmentation: Felzenszwalb-Huttenlocher graph segmentation on a mesh.

Follows ScanNet's `Segmentator/segmentator.cpp`, which produced the `*.segs.json` files:
1. Vertex normals: the running mean (`lerp` by 1 / (count + 1)) of the unit normals of the
   faces touching the vertex, NOT re-normalised (a vertex on a crease gets a shorter normal,
   so 1 - dot grows there). `segmentator_vertex_normals`.
2. Graph: each face (i1, i2, i3) adds the directed edges (i1, i2), (i1, i3), (i3, i2); edges
   shared by two faces appear twice, possibly in opposite directions.
3. Edge (a, b) weight: w = 1 - dot(n_a, n_b); when dot(n_b, p_b - p_a) > 0 (convex) the weight
   is squared, w = (1 - dot)^2, "so convex regions with a normal difference matter less".
4. Kruskal order: edges sorted by ascending weight. C++ `std::sort` leaves the order of equal
   weights unspecified; here it is a stable sort, i.e. ties keep face order (deterministic).
   Union-find; every component C has a threshold, initially kthresh. Edge (a, b) joins the two
   components when w <= threshold of both; the joined component's threshold becomes
   w + kthresh / |C|.
5. Small segments: one more pass over the sorted edges joins the two components of an edge
   when they differ and either has fewer than `min_vertices` vertices.
Differences: float64 arithmetic instead of float32; degenerate (zero-area) faces contribute a
zero normal (C++ divides by zero); segment ids are contiguous 0..S-1 numbered by first vertex
(segs.json uses the root vertex index). The union-find passes are tight Python loops over plain
lists (numba is unavailable and Kruskal is sequential); everything else is vectorised numpy.
"""

from __future__ import annotations

import numpy as np

from jaxseg.errors import InputError
from jaxseg.geometry.normals import check_mesh


def segmentator_vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """float64 (N, 3): per vertex the mean unit normal of its faces, not re-normalised.

  Args:
    vertices: float (N, 3).
    faces: int (F, 3).
  """
  vertices, faces = check_mesh(vertices, faces)
  p1, p2, p3 = (vertices[faces[:, i]] for i in range(3))
  face_normals = np.cross(p2 - p1, p3 - p1)
  length = np.linalg.norm(face_normals, axis=1, keepdims=True)
  face_normals = np.where(length > 0, face_normals / np.maximum(length, 1e-300), 0.0)
  summed = np.zeros_like(vertices)
  for i in range(3):
    np.add.at(summed, faces[:, i], face_normals)
  counts = np.bincount(faces.reshape(-1), minlength=len(vertices))
  return summed / np.maximum(counts, 1)[:, None]


def segmentator_edges(faces: np.ndarray) -> np.ndarray:
  """int64 (3F, 2) directed edges (i1, i2), (i1, i3), (i3, i2) per face, in face order."""
  faces = np.asarray(faces, np.int64)
  return np.stack([faces[:, [0, 1]], faces[:, [0, 2]], faces[:, [2, 1]]], axis=1).reshape(-1, 2)


def edge_weights(vertices: np.ndarray, normals: np.ndarray, edges: np.ndarray) -> np.ndarray:
  """float64 (E,) segmentator weights: 1 - n_a.n_b, squared where n_b.(p_b - p_a) > 0."""
  a, b = edges[:, 0], edges[:, 1]
  normals = np.asarray(normals, np.float64)
  vertices = np.asarray(vertices, np.float64)
  weight = 1.0 - np.einsum("ei,ei->e", normals[a], normals[b])
  convex = np.einsum("ei,ei->e", normals[b], vertices[b] - vertices[a]) > 0
  return np.where(convex, weight * weight, weight)


def _find(parent: list, x: int) -> int:
  while parent[x] != x:
    parent[x] = parent[parent[x]]
    x = parent[x]
  return x


def _roots(parent: list) -> np.ndarray:
  """int64 (N,) root of every element of a union-find forest (vectorised pointer jumping)."""
  roots = np.asarray(parent, np.int64)
  while True:
    jumped = roots[roots]
    if np.array_equal(jumped, roots):
      return roots
    roots = jumped


def segment_graph(num_vertices: int, edges: np.ndarray, weights: np.ndarray,
                  kthresh: float = 0.01, min_vertices: int = 20) -> np.ndarray:
  """Felzenszwalb-Huttenlocher segmentation of a weighted graph plus the small-segment merge.

  Args:
    num_vertices: N.
    edges: int (E, 2) vertex pairs.
    weights: float (E,) edge weights; equal weights keep the given edge order.
    kthresh: the constant k of the paper (threshold k / |C|).
    min_vertices: components smaller than this are merged along the sorted edges.
  Returns:
    int32 (N,) segment ids 0..S-1, numbered by first vertex.
  """
  order = np.argsort(weights, kind="stable")
  a_list = edges[order, 0].tolist()
  b_list = edges[order, 1].tolist()
  w_list = weights[order].tolist()
  parent = list(range(num_vertices))
  size = [1] * num_vertices
  threshold = [float(kthresh)] * num_vertices
  highest = float(kthresh)  # no component threshold ever exceeds this
  for a, b, w in zip(a_list, b_list, w_list):
    if w > highest:
      break  # exact: no later (heavier) edge can pass, so no threshold can rise again
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra != rb and w <= threshold[ra] and w <= threshold[rb]:
      if size[ra] < size[rb]:
        ra, rb = rb, ra
      parent[rb] = ra
      size[ra] += size[rb]
      threshold[ra] = w + kthresh / size[ra]
      highest = max(highest, threshold[ra])
  # Small-segment pass. Components only grow, so an edge whose ends already share a component,
  # or whose two components are both big enough, can never join anything: skip them up front.
  roots = _roots(parent)
  sizes = np.asarray(size)[roots]
  ea, eb = edges[order, 0], edges[order, 1]
  useful = (roots[ea] != roots[eb]) & ((sizes[ea] < min_vertices) | (sizes[eb] < min_vertices))
  for a, b in zip(ea[useful].tolist(), eb[useful].tolist()):
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra != rb and (size[ra] < min_vertices or size[rb] < min_vertices):
      if size[ra] < size[rb]:
        ra, rb = rb, ra
      parent[rb] = ra
      size[ra] += size[rb]
  roots = _roots(parent)
  _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
  rank = np.empty(len(first), np.int64)
  rank[np.argsort(first, kind="stable")] = np.arange(len(first))
  return rank[inverse.reshape(-1)].astype(np.int32)


def segment_mesh(vertices: np.ndarray, faces: np.ndarray, *, kthresh: float = 0.01,
                 min_vertices: int = 20, normals: np.ndarray | None = None) -> np.ndarray:
  """ScanNet segmentator on a triangle mesh.

  Args:
    vertices: float (N, 3).
    faces: int (F, 3).
    kthresh: segmentator threshold (ScanNet: 0.01).
    min_vertices: segMinVerts (ScanNet: 20).
    normals: float (N, 3) vertex normals; default `segmentator_vertex_normals` (ScanNet's).
  Returns:
    int32 (N,) contiguous segment ids 0..S-1 (numbered by first vertex).
  """
  vertices, faces = check_mesh(vertices, faces)
  if normals is None:
    normals = segmentator_vertex_normals(vertices, faces)
  elif np.shape(normals) != vertices.shape:
    raise InputError(None, f"normals have shape {np.shape(normals)}, vertices "
                     f"{vertices.shape}", "pass one normal per vertex")
  if kthresh <= 0 or min_vertices < 1:
    raise InputError(None, f"kthresh={kthresh}, min_vertices={min_vertices}",
                     "use kthresh > 0 and min_vertices >= 1")
  edges = segmentator_edges(faces)
  weights = edge_weights(vertices, normals, edges)
  return segment_graph(len(vertices), edges, weights, kthresh, min_vertices)
