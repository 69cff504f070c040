"""Normals vs analytic normals of planes and spheres and vs plain reference loops."""

import numpy as np
import pytest

from jaxseg.errors import InputError
from jaxseg.geometry import normals as normals_lib


def _uv_sphere(rings=24, segments=48):
  """Closed UV sphere of radius 1 with outward (counter-clockwise from outside) triangles."""
  vertices = [(0.0, 0.0, 1.0)]
  for i in range(1, rings):
    theta = np.pi * i / rings
    for j in range(segments):
      phi = 2 * np.pi * j / segments
      vertices.append((np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                       np.cos(theta)))
  vertices.append((0.0, 0.0, -1.0))
  ring = lambda i, j: 1 + (i - 1) * segments + j % segments
  faces = [(0, ring(1, j), ring(1, j + 1)) for j in range(segments)]
  for i in range(1, rings - 1):
    for j in range(segments):
      a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
      faces += [(a, c, d), (a, d, b)]
  bottom = len(vertices) - 1
  faces += [(bottom, ring(rings - 1, j + 1), ring(rings - 1, j)) for j in range(segments)]
  return np.array(vertices), np.array(faces)


def test_vertex_normals_of_sphere_are_radial():
  vertices, faces = _uv_sphere()
  normals = normals_lib.vertex_normals(vertices, faces)
  cosine = np.sum(normals * vertices, axis=1)
  assert normals.dtype == np.float32
  assert np.all(cosine > np.cos(np.deg2rad(2.0)))  # UV-sphere discretisation: ~1.3 deg


def test_vertex_normals_match_plain_loop():
  rng = np.random.default_rng(0)
  vertices = rng.normal(size=(40, 3))
  faces = rng.integers(0, 40, size=(70, 3))
  faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) &
                (faces[:, 0] != faces[:, 2])]
  expected = [[0.0, 0.0, 0.0] for _ in range(40)]
  for f in faces.tolist():
    p0, p1, p2 = (vertices[i].tolist() for i in f)
    u = [p1[k] - p0[k] for k in range(3)]
    v = [p2[k] - p0[k] for k in range(3)]
    cross = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]
    for i in f:
      expected[i] = [expected[i][k] + cross[k] for k in range(3)]
  expected = np.array(expected)
  length = np.linalg.norm(expected, axis=1, keepdims=True)
  expected = np.where(length > 0, expected / np.where(length > 0, length, 1), 0)
  np.testing.assert_allclose(normals_lib.vertex_normals(vertices, faces), expected, atol=1e-6)


def test_vertex_normals_reject_bad_faces():
  with pytest.raises(InputError, match="index vertices"):
    normals_lib.vertex_normals(np.zeros((3, 3)), np.array([[0, 1, 3]]))


def test_point_normals_of_plane_and_sphere():
  rng = np.random.default_rng(1)
  plane = np.concatenate([rng.uniform(-1, 1, size=(2000, 2)), np.zeros((2000, 1))], axis=1)
  rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
  normals, curvature = normals_lib.estimate_normals_and_curvature(plane @ rotation.T, 0.15)
  assert np.all(np.abs(normals @ rotation[:, 2]) > 1 - 1e-5)
  assert np.all(curvature < 1e-6)
  sphere = rng.normal(size=(4000, 3))
  sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
  normals = normals_lib.estimate_normals(sphere, radius=0.2, max_nn=30)
  cosine = np.sum(normals * sphere, axis=1)
  # Oriented towards the centroid (the centre of the sphere): inward.
  assert np.all(cosine < -np.cos(np.deg2rad(5.0)))


def test_point_normals_match_brute_force_pca():
  rng = np.random.default_rng(2)
  points = rng.uniform(0, 1, size=(300, 3)) * np.array([1.0, 1.0, 0.1])
  radius, max_nn = 0.2, 12
  normals, curvature = normals_lib.estimate_normals_and_curvature(points, radius, max_nn)
  distances = np.linalg.norm(points[:, None] - points[None], axis=2)
  for i in range(len(points)):
    order = np.argsort(distances[i])[:max_nn]
    neighbours = points[order[distances[i, order] <= radius]]
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(neighbours.T, bias=True))
    assert abs(abs(np.dot(normals[i], eigenvectors[:, 0])) - 1) < 1e-4
    np.testing.assert_allclose(curvature[i], eigenvalues[0] / eigenvalues.sum(), atol=1e-5)


def test_isolated_points_get_zero_normals():
  rng = np.random.default_rng(3)
  plane = np.concatenate([rng.uniform(0, 1, size=(500, 2)), np.zeros((500, 1))], axis=1)
  isolated = np.array([[5.0, 5.0, 5.0], [-5.0, 0.0, 3.0]])
  line = np.stack([np.linspace(10, 10.2, 20), np.zeros(20), np.zeros(20)], axis=1)
  normals, curvature = normals_lib.estimate_normals_and_curvature(
      np.concatenate([plane, isolated, line]), radius=0.1)
  assert np.all(normals[500:] == 0) and np.all(np.isfinite(curvature))
  assert np.all(np.abs(normals[:500, 2]) > 0.999)
