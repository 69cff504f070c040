"""Grid pre-subsampling against a plain Python reference of MinkowskiEngine's rule."""

import math

import numpy as np

from jaxseg.data.presample import grid_presample
from jaxseg.data.scene import Scene


def _reference(coords, labels, cell):
  """{cell: (first point, label or -1)} by walking the points in order."""
  cells = {}
  for i, (point, label) in enumerate(zip(coords.tolist(), labels.tolist())):
    key = tuple(math.floor(v / cell) for v in point)
    if key not in cells:
      cells[key] = [i, label]
    elif cells[key][1] != label:
      cells[key][1] = -1
  return cells


def test_one_point_per_cell_with_the_common_label_or_ignore():
  rng = np.random.default_rng(0)
  n = 3000
  coords = (rng.random((n, 3)) * [0.2, 0.15, 0.1] - [0.05, 0.0, 0.02]).astype(np.float32)
  labels = rng.integers(-1, 3, n).astype(np.int32)
  scene = Scene(name="room", coords=coords, colors=rng.integers(0, 256, (n, 3)).astype(np.uint8),
                normals=rng.normal(size=(n, 3)).astype(np.float32), labels=labels,
                instances=rng.integers(0, 9, n).astype(np.int32),
                faces=np.zeros((1, 3), np.int32))
  out = grid_presample(scene, 0.01)
  cells = _reference(coords.astype(np.float64), labels, 0.01)
  keep = sorted(first for first, _ in cells.values())
  assert out.num_points == len(cells) < n
  np.testing.assert_array_equal(out.coords, coords[keep])
  np.testing.assert_array_equal(out.colors, scene.colors[keep])
  np.testing.assert_array_equal(out.normals, scene.normals[keep])
  np.testing.assert_array_equal(out.instances, scene.instances[keep])
  by_first = {first: label for first, label in cells.values()}
  np.testing.assert_array_equal(out.labels, [by_first[i] for i in keep])
  assert (out.labels == -1).any() and (out.labels >= 0).any()
  assert out.faces is None and out.segments is None
  out.validate()


def test_unlabelled_scene_and_a_cell_larger_than_the_scene():
  coords = np.array([[0.0, 0.0, 0.0], [0.001, 0.002, 0.0], [0.5, 0.5, 0.5]], np.float32)
  scene = Scene(name="s", coords=coords, colors=np.zeros((3, 3), np.uint8))
  out = grid_presample(scene, 0.01)
  np.testing.assert_array_equal(out.coords, coords[[0, 2]])
  assert out.labels is None
  assert grid_presample(scene, 10.0).num_points == 1
