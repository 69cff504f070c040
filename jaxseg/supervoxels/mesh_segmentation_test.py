"""ScanNet mesh segmentator vs a separately written reference of the paper's algorithm."""

import math

import numpy as np
import pytest

from jaxseg.errors import InputError
from jaxseg.supervoxels import mesh_segmentation


def _grid(origin, u, v, n):
  """(n+1)^2 vertices origin + i/n u + j/n v and 2 n^2 triangles with normal along u x v."""
  i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
  vertices = (np.asarray(origin, float) + (i.reshape(-1, 1) / n) * np.asarray(u, float) +
              (j.reshape(-1, 1) / n) * np.asarray(v, float))
  index = lambda a, b: a * (n + 1) + b
  faces = []
  for a in range(n):
    for b in range(n):
      p, q, r, s = index(a, b), index(a + 1, b), index(a, b + 1), index(a + 1, b + 1)
      faces += [(p, q, s), (p, s, r)]
  return vertices, np.array(faces)


def _weld(parts):
  """Concatenates (vertices, faces) parts and merges coincident vertices."""
  vertices, faces, offset = [], [], 0
  for v, f in parts:
    vertices.append(v)
    faces.append(f + offset)
    offset += len(v)
  vertices = np.concatenate(vertices)
  _, first, inverse = np.unique(np.round(vertices, 6), axis=0, return_index=True,
                                return_inverse=True)
  return vertices[first], inverse.reshape(-1)[np.concatenate(faces)]


def _reference_normals(vertices, faces):
  """segmentator.cpp: running mean (lerp) of unit face normals, not re-normalised."""
  normals = [[0.0, 0.0, 0.0] for _ in vertices]
  counts = [0] * len(vertices)
  for f in faces.tolist():
    p1, p2, p3 = (vertices[i].tolist() for i in f)
    u = [p2[k] - p1[k] for k in range(3)]
    v = [p3[k] - p1[k] for k in range(3)]
    c = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]
    length = math.sqrt(sum(x * x for x in c))
    c = [x / length for x in c]
    for i in f:
      t = 1.0 / (counts[i] + 1.0)
      normals[i] = [t * c[k] + (1.0 - t) * normals[i][k] for k in range(3)]
      counts[i] += 1
  return normals


def _reference_segmentation(vertices, faces, normals, k, min_size):
  """Felzenszwalb & Huttenlocher 2004, Algorithm 1, with explicit member lists and
  Int(C) = largest MST edge, on segmentator.cpp's graph and weights; then the small-segment
  pass."""
  weighted = []
  for f in faces.tolist():
    for a, b in ((f[0], f[1]), (f[0], f[2]), (f[2], f[1])):
      na, nb = normals[a], normals[b]
      w = 1.0 - sum(na[i] * nb[i] for i in range(3))
      if sum(nb[i] * (vertices[b][i] - vertices[a][i]) for i in range(3)) > 0:
        w = w * w
      weighted.append((w, a, b))
  weighted.sort(key=lambda e: e[0])  # stable: ties keep face order
  component = list(range(len(vertices)))
  members = {i: [i] for i in range(len(vertices))}
  internal = {i: 0.0 for i in range(len(vertices))}

  def merge(c1, c2, w):
    for x in members[c2]:
      component[x] = c1
    members[c1] += members.pop(c2)
    internal[c1] = max(internal[c1], internal.pop(c2), w)

  for w, a, b in weighted:
    c1, c2 = component[a], component[b]
    if c1 != c2 and w <= min(internal[c1] + k / len(members[c1]),
                             internal[c2] + k / len(members[c2])):
      merge(c1, c2, w)
  for w, a, b in weighted:
    c1, c2 = component[a], component[b]
    if c1 != c2 and (len(members[c1]) < min_size or len(members[c2]) < min_size):
      merge(c1, c2, w)
  return np.array(component)


def _same_partition(x, y):
  """True when label arrays x and y induce the same partition."""
  pairs = np.unique(np.stack([x, y], axis=1), axis=0)
  return len(pairs) == len(np.unique(x)) == len(np.unique(y))


def _bumpy_surface(seed, n=36):
  rng = np.random.default_rng(seed)
  vertices, faces = _grid((0, 0, 0), (2, 0, 0), (0, 2, 0), n)
  x, y = vertices[:, 0], vertices[:, 1]
  vertices[:, 2] = (0.3 * np.exp(-((x - 0.7) ** 2 + (y - 0.8) ** 2) / 0.05) -
                    0.2 * np.exp(-((x - 1.4) ** 2 + (y - 1.3) ** 2) / 0.08) +
                    0.02 * rng.normal(size=len(x)))
  return vertices, faces


@pytest.mark.parametrize("seed,min_size", [(0, 1), (1, 1), (2, 20), (3, 20)])
def test_matches_reference_implementation(seed, min_size):
  vertices, faces = _bumpy_surface(seed)
  normals = _reference_normals(vertices, faces)
  expected = _reference_segmentation(vertices, faces, normals, 0.01, min_size)
  result = mesh_segmentation.segment_mesh(vertices, faces, kthresh=0.01,
                                          min_vertices=min_size, normals=np.array(normals))
  assert len(np.unique(expected)) >= 3  # a non-trivial partition
  assert _same_partition(result, expected)


def test_default_normals_and_contiguous_ids():
  vertices, faces = _bumpy_surface(4)
  segments = mesh_segmentation.segment_mesh(vertices, faces)
  expected = _reference_segmentation(vertices, faces, _reference_normals(vertices, faces),
                                     0.01, 20)
  assert segments.dtype == np.int32 and segments.shape == (len(vertices),)
  assert set(np.unique(segments)) == set(range(segments.max() + 1))
  assert _same_partition(segments, expected)


def test_min_size_merge_respected():
  vertices, faces = _bumpy_surface(5)
  for min_size in (20, 60):
    segments = mesh_segmentation.segment_mesh(vertices, faces, min_vertices=min_size)
    assert np.bincount(segments).min() >= min_size


def test_segments_do_not_cross_creases():
  n = 10
  # A room corner (floor + two walls, normals into the room: concave creases) ...
  corner = [_grid((0, 0, 0), (2, 0, 0), (0, 2, 0), 2 * n),
            _grid((0, 0, 0), (0, 0, 1), (2, 0, 0), n * 2),
            _grid((0, 0, 0), (0, 2, 0), (0, 0, 1), n * 2)]
  # ... and a separate box (normals outward: convex creases).
  c = np.array([1.0, 1.0, 2.0])
  box = [_grid(c + (0, 0, 0), (0, 1, 0), (1, 0, 0), n), _grid(c + (0, 0, 1), (1, 0, 0), (0, 1, 0), n),
         _grid(c + (0, 0, 0), (1, 0, 0), (0, 0, 1), n), _grid(c + (0, 1, 0), (0, 0, 1), (1, 0, 0), n),
         _grid(c + (0, 0, 0), (0, 0, 1), (0, 1, 0), n), _grid(c + (1, 0, 0), (0, 1, 0), (0, 0, 1), n)]
  vertices, faces = _weld(corner + box)
  segments = mesh_segmentation.segment_mesh(vertices, faces)
  # Plane id of every vertex strictly inside one planar face; crease vertices are skipped.
  in_box = vertices[:, 2] >= 2.0 - 1e-9
  local = np.where(in_box[:, None], vertices - c, vertices / np.array([2.0, 2.0, 1.0]))
  on_bound = (np.abs(local) < 1e-9) | (np.abs(local - 1) < 1e-9)
  face_axis = np.argmax(on_bound, axis=1) * 2 + (np.abs(local - 1) < 1e-9)[
      np.arange(len(local)), np.argmax(on_bound, axis=1)]
  plane = np.where(on_bound.sum(axis=1) == 1, face_axis + 6 * in_box, -1)
  assert len(np.unique(plane[plane >= 0])) == 3 + 6
  for s in np.unique(segments):
    assert len(np.unique(plane[(segments == s) & (plane >= 0)])) <= 1
  # Each planar face is one segment (flat: zero weights).
  for p in np.unique(plane[plane >= 0]):
    assert len(np.unique(segments[plane == p])) == 1


def test_segmentator_normals_match_reference():
  vertices, faces = _bumpy_surface(6, n=8)
  np.testing.assert_allclose(mesh_segmentation.segmentator_vertex_normals(vertices, faces),
                             _reference_normals(vertices, faces), atol=1e-12)


def test_rejects_bad_parameters():
  vertices, faces = _bumpy_surface(0, n=4)
  with pytest.raises(InputError):
    mesh_segmentation.segment_mesh(vertices, faces, kthresh=0.0)
  with pytest.raises(InputError):
    mesh_segmentation.segment_mesh(vertices, faces, normals=np.zeros((3, 3)))
