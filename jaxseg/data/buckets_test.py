"""Bucket selection, overflow errors and padding conventions."""

import numpy as np
import pytest

from jaxseg.data.buckets import Buckets, pad_batch
from jaxseg.errors import InputError

BUCKETS = Buckets(point_caps=(8, 16, 32), voxel_caps=(4, 8, 16))


def _element(num_points, num_voxels, index, seed):
  rng = np.random.default_rng(seed)
  return {
      "point_coords": rng.normal(size=(num_points, 3)).astype(np.float32),
      "point_colors": rng.random((num_points, 3)).astype(np.float32),
      "point_labels": rng.integers(0, 5, num_points).astype(np.int32),
      "point_segments": rng.integers(0, 3, num_points).astype(np.int32),
      "point_index": np.arange(num_points, dtype=np.int32),
      "point_to_voxel": rng.integers(0, num_voxels, num_points).astype(np.int32),
      "voxel_coords": rng.integers(0, 9, (num_voxels, 3)).astype(np.int32),
      "voxel_feats": rng.normal(size=(num_voxels, 6)).astype(np.float32),
      "voxel_labels": rng.integers(0, 5, num_voxels).astype(np.int32),
      "voxel_to_point": rng.integers(0, num_points, num_voxels).astype(np.int32),
      "transform": np.diag([2.0, 2.0, 2.0, 1.0]).astype(np.float32),
      "scene_index": index,
      "bucket": BUCKETS.select(num_points, num_voxels),
  }


def test_smallest_fitting_bucket():
  assert BUCKETS.select(8, 4) == 0
  assert BUCKETS.select(9, 4) == 1
  assert BUCKETS.select(8, 5) == 1
  assert BUCKETS.select(1, 16) == 2
  assert BUCKETS.select(32, 16) == 2


def test_overflow_names_scene_size_bucket_and_fixes():
  with pytest.raises(InputError) as error:
    BUCKETS.select(33, 10, name="scene0707_00")
  message = str(error.value)
  for part in ("scene0707_00", "33 points", "32 points", "16 voxels", "data.buckets",
               "larger voxel size", "data.max_points"):
    assert part in message


def test_bucket_config_validation():
  assert Buckets.from_dict({"point_caps": [4, 8]}) == Buckets((4, 8), (4, 8))
  with pytest.raises(InputError, match="ascending"):
    Buckets((8, 4), (2, 2))
  with pytest.raises(InputError, match="equal length"):
    Buckets((4, 8), (4,))
  with pytest.raises(InputError, match="unknown option"):
    Buckets.from_dict({"point_caps": [4], "caps": [1]})


def test_batch_padded_to_largest_member_with_conventions():
  elements = [_element(5, 3, 7, 0), _element(12, 6, 2, 1)]  # buckets 0 and 1
  batch = pad_batch(elements, BUCKETS, batch_size=3)
  p, c = 16, 8
  assert batch["point_coords"].shape == (3, p, 3) and batch["voxel_feats"].shape == (3, c, 6)
  np.testing.assert_array_equal(batch["scene_index"], [7, 2, -1])
  for row, e in enumerate(elements):
    n, v = len(e["point_to_voxel"]), len(e["voxel_coords"])
    np.testing.assert_array_equal(batch["point_mask"][row], np.arange(p) < n)
    np.testing.assert_array_equal(batch["voxel_mask"][row], np.arange(c) < v)
    for key in ("point_coords", "point_colors", "point_labels", "point_segments",
                "point_index", "point_to_voxel"):
      np.testing.assert_array_equal(batch[key][row, :n], e[key])
    for key in ("voxel_coords", "voxel_feats", "voxel_labels", "voxel_to_point"):
      np.testing.assert_array_equal(batch[key][row, :v], e[key])
    np.testing.assert_array_equal(batch["point_to_voxel"][row, n:], c)
    np.testing.assert_array_equal(batch["point_labels"][row, n:], -1)
    np.testing.assert_array_equal(batch["point_segments"][row, n:], -1)
    np.testing.assert_array_equal(batch["point_index"][row, n:], -1)
    np.testing.assert_array_equal(batch["point_coords"][row, n:], 0)
    np.testing.assert_array_equal(batch["voxel_coords"][row, v:], 0)
    np.testing.assert_array_equal(batch["voxel_feats"][row, v:], 0)
    np.testing.assert_array_equal(batch["voxel_labels"][row, v:], -1)
    np.testing.assert_array_equal(batch["voxel_to_point"][row, v:], p)
    np.testing.assert_array_equal(batch["transform"][row], elements[row]["transform"])
  # The filler scene is empty.
  assert not batch["point_mask"][2].any() and not batch["voxel_mask"][2].any()
  np.testing.assert_array_equal(batch["point_to_voxel"][2], c)
  np.testing.assert_array_equal(batch["point_labels"][2], -1)
  np.testing.assert_array_equal(batch["transform"][2], np.eye(4))
  assert batch["point_to_voxel"].dtype == np.int32 and batch["voxel_mask"].dtype == bool


def test_small_batch_stays_in_small_bucket():
  batch = pad_batch([_element(3, 2, 0, 2), _element(8, 4, 1, 3)], BUCKETS)
  assert batch["point_mask"].shape == (2, 8) and batch["voxel_mask"].shape == (2, 4)
