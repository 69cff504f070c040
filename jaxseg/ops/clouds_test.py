"""Farthest-point sampling against a plain float64 numpy loop and scipy's k-d tree; unit-sphere
normalisation against pc_normalize written out in numpy."""

import jax
import numpy as np
import pytest
from scipy.spatial import cKDTree

from jaxseg.ops import clouds


def _numpy_fps(points, num):
  """PointNet++'s sampling written out: start at row 0, then the farthest from the picks."""
  picks = [0]
  closest = np.full(len(points), np.inf)
  for _ in range(num - 1):
    closest = np.minimum(closest, ((points - points[picks[-1]]) ** 2).sum(1))
    picks.append(int(np.argmax(closest)))
  return np.asarray(picks)


_fps = jax.jit(clouds.farthest_point_sampling, static_argnums=2)


@pytest.mark.parametrize("num", [1, 17, 64])
def test_fps_matches_numpy_and_nearest_matches_kd_tree(num):
  rng = np.random.default_rng(num)
  points = rng.normal(size=(300, 3))
  valid = rng.random(300) < 0.8
  valid[:3] = False                       # the first pick is the first valid row
  poisoned = np.where(valid[:, None], points, np.nan).astype(np.float32)
  rows, found, nearest = _fps(poisoned, valid, num)
  kept = np.flatnonzero(valid)
  want = kept[_numpy_fps(points[kept], num)]
  np.testing.assert_array_equal(rows, want)
  assert np.all(found)
  _, slot = cKDTree(points[want]).query(points[valid])
  np.testing.assert_array_equal(np.asarray(nearest)[valid], slot)
  assert np.all(np.asarray(nearest)[~valid] == num)
  np.testing.assert_array_equal(np.asarray(nearest)[want], np.arange(num))


def test_fps_with_fewer_points_than_samples_takes_each_once():
  rng = np.random.default_rng(0)
  points = rng.normal(size=(40, 3)).astype(np.float32)
  valid = np.zeros(40, bool)
  valid[[5, 9, 11, 30]] = True
  rows, found, nearest = _fps(points, valid, 8)
  np.testing.assert_array_equal(found, [True] * 4 + [False] * 4)
  assert sorted(np.asarray(rows)[:4]) == [5, 9, 11, 30]
  assert np.all(np.asarray(rows)[4:] == 40)
  np.testing.assert_array_equal(np.asarray(rows)[np.asarray(nearest)[valid]], [5, 9, 11, 30])


def test_fps_of_an_empty_cloud_finds_nothing():
  rows, found, nearest = _fps(np.zeros((10, 3), np.float32), np.zeros(10, bool), 4)
  assert not np.any(found) and np.all(np.asarray(rows) == 10) and np.all(np.asarray(nearest) == 4)


def test_unit_sphere_is_pc_normalize():
  rng = np.random.default_rng(1)
  xyz = rng.normal(size=(50, 3)) * 3 + 7
  valid = rng.random(50) < 0.7
  centred = xyz[valid] - xyz[valid].mean(0)
  want = centred / np.linalg.norm(centred, axis=1).max()
  got = np.asarray(clouds.unit_sphere(xyz.astype(np.float32), valid))
  np.testing.assert_allclose(got[valid], want, atol=1e-6)
  assert np.all(got[~valid] == 0)
