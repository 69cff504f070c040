"""Surface normals: area-weighted vertex normals of a mesh and PCA normals of a point cloud."""

from __future__ import annotations

import numpy as np
from scipy import spatial

from jaxseg.errors import InputError


def _check_points(coords: np.ndarray, what: str) -> np.ndarray:
  coords = np.asarray(coords)
  if coords.ndim != 2 or coords.shape[1] != 3:
    raise InputError(None, f"{what} have shape {coords.shape}, expected (N, 3)",
                     "pass x, y, z per point")
  return coords.astype(np.float64)


def check_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Validates a triangle mesh; returns (float64 (N, 3) vertices, int64 (F, 3) faces)."""
  vertices = np.asarray(vertices)
  faces = np.asarray(faces)
  if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
    raise InputError(None, f"mesh vertices have shape {vertices.shape}, expected (N>0, 3)",
                     "pass x, y, z per vertex")
  if faces.ndim != 2 or faces.shape[1] != 3:
    raise InputError(None, f"mesh faces have shape {faces.shape}, expected (F, 3)",
                     "triangulate the mesh; only triangle faces are supported")
  if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
    raise InputError(None, "mesh faces index vertices that do not exist",
                     "faces must index [0, num_vertices)")
  return vertices.astype(np.float64), faces.astype(np.int64)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """Unit vertex normals: the area-weighted sum of incident face normals (ScanNet segmentator).

  Args:
    vertices: float (N, 3).
    faces: int (F, 3) counter-clockwise triangles indexing [0, N).
  Returns:
    float32 (N, 3) unit normals; vertices in no face (or only degenerate faces) get (0, 0, 0).
  """
  vertices, faces = check_mesh(vertices, faces)
  v0, v1, v2 = (vertices[faces[:, i]] for i in range(3))
  face_normals = np.cross(v1 - v0, v2 - v0)  # length = 2 * area: area weighting
  summed = np.zeros_like(vertices)
  for i in range(3):
    np.add.at(summed, faces[:, i], face_normals)
  length = np.linalg.norm(summed, axis=1, keepdims=True)
  return np.where(length > 0, summed / np.maximum(length, 1e-30), 0.0).astype(np.float32)


def estimate_normals_and_curvature(
    coords: np.ndarray, radius: float, max_nn: int = 30,
    orient_towards: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """PCA normals and surface variation of a point cloud (hybrid radius / k-nearest search).

  Each point's neighbourhood is its `max_nn` nearest neighbours within `radius` (itself
  included), like open3d's KDTreeSearchParamHybrid. The normal is the eigenvector of the
  neighbourhood covariance with the smallest eigenvalue; the curvature is PCL's surface
  variation lambda_min / (lambda_0 + lambda_1 + lambda_2), in [0, 1/3].

  Args:
    coords: float (N, 3) metres.
    radius: neighbourhood radius in metres.
    max_nn: most neighbours used per point.
    orient_towards: float (3,) point the normals are flipped to face; default the centroid of
      the cloud (inside an indoor room, so normals face into the room).
  Returns:
    normals float32 (N, 3) unit vectors, curvature float32 (N,). Points with fewer than 3
    neighbours (or collinear ones) have no defined normal: they get normal (0, 0, 0), which no
    smoothness test accepts (PCL gives NaN there), and curvature 0; never NaN.
  """
  coords = _check_points(coords, "point coordinates")
  if radius <= 0 or max_nn < 3:
    raise InputError(None, f"radius={radius}, max_nn={max_nn}",
                     "use a positive radius and max_nn >= 3")
  n = len(coords)
  k = min(max_nn, n)
  dist, idx = spatial.cKDTree(coords).query(coords, k=k, distance_upper_bound=radius)
  dist = dist.reshape(n, k)
  idx = idx.reshape(n, k)
  valid = np.isfinite(dist)
  idx = np.where(valid, idx, 0)
  weight = valid.astype(np.float64)
  count = weight.sum(axis=1)
  neighbours = coords[idx]  # (N, k, 3)
  mean = (neighbours * weight[..., None]).sum(axis=1) / count[:, None]
  centred = (neighbours - mean[:, None, :]) * weight[..., None]
  covariance = np.einsum("nki,nkj->nij", centred, centred) / count[:, None, None]
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
  normals = eigenvectors[:, :, 0]
  total = eigenvalues.sum(axis=1)
  curvature = np.where(total > 0, eigenvalues[:, 0] / np.maximum(total, 1e-300), 0.0)
  degenerate = (count < 3) | ~(eigenvalues[:, 1] > 1e-12 * np.maximum(total, 1e-300))
  normals[degenerate] = 0.0
  curvature[degenerate] = 0.0
  target = coords.mean(axis=0) if orient_towards is None else np.asarray(orient_towards,
                                                                           np.float64)
  flip = np.einsum("ni,ni->n", normals, target[None, :] - coords) < 0
  normals[flip] *= -1.0
  return normals.astype(np.float32), np.clip(curvature, 0.0, None).astype(np.float32)


def estimate_normals(coords: np.ndarray, radius: float, max_nn: int = 30,
                     orient_towards: np.ndarray | None = None) -> np.ndarray:
  """float32 (N, 3) unit PCA normals, (0, 0, 0) where undefined; see
  `estimate_normals_and_curvature`."""
  return estimate_normals_and_curvature(coords, radius, max_nn, orient_towards)[0]
