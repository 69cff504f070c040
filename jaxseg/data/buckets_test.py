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
      "point_normals": rng.normal(size=(num_points, 3)).astype(np.float32),
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
    for key in ("point_coords", "point_colors", "point_normals", "point_labels",
                "point_segments", "point_index", "point_to_voxel"):
      np.testing.assert_array_equal(batch[key][row, :n], e[key])
    for key in ("voxel_coords", "voxel_feats", "voxel_labels", "voxel_to_point"):
      np.testing.assert_array_equal(batch[key][row, :v], e[key])
    np.testing.assert_array_equal(batch["point_to_voxel"][row, n:], c)
    np.testing.assert_array_equal(batch["point_labels"][row, n:], -1)
    np.testing.assert_array_equal(batch["point_segments"][row, n:], -1)
    np.testing.assert_array_equal(batch["point_index"][row, n:], -1)
    np.testing.assert_array_equal(batch["point_coords"][row, n:], 0)
    np.testing.assert_array_equal(batch["point_normals"][row, n:], 0)
    np.testing.assert_array_equal(batch["voxel_coords"][row, v:], 0)
    np.testing.assert_array_equal(batch["voxel_feats"][row, v:], 0)
    np.testing.assert_array_equal(batch["voxel_labels"][row, v:], -1)
    np.testing.assert_array_equal(batch["voxel_to_point"][row, v:], p)
    np.testing.assert_array_equal(batch["transform"][row], elements[row]["transform"])
  # The filler scene is empty.
  assert not batch["point_mask"][2].any() and not batch["voxel_mask"][2].any()
  np.testing.assert_array_equal(batch["point_to_voxel"][2], c)
  np.testing.assert_array_equal(batch["point_labels"][2], -1)
  np.testing.assert_array_equal(batch["point_normals"][2], 0)
  assert batch["point_normals"].shape == (3, p, 3) and batch["point_normals"].dtype == np.float32
  np.testing.assert_array_equal(batch["transform"][2], np.eye(4))
  assert batch["point_to_voxel"].dtype == np.int32 and batch["voxel_mask"].dtype == bool


def test_small_batch_stays_in_small_bucket():
  batch = pad_batch([_element(3, 2, 0, 2), _element(8, 4, 1, 3)], BUCKETS)
  assert batch["point_mask"].shape == (2, 8) and batch["voxel_mask"].shape == (2, 4)


def test_level_caps_are_fractions_of_the_voxel_capacity_rounded_to_8():
  buckets = Buckets(point_caps=(100, 200), voxel_caps=(100, 200), level_fractions=(1.0, 0.3))
  assert buckets.level_caps(0) == (104, 32)    # ceil(100 / 8) * 8, ceil(30 / 8) * 8.
  assert buckets.level_caps(1) == (200, 64)
  assert buckets.index_of(200) == 1


def test_coarse_levels_that_do_not_fit_promote_the_scene():
  buckets = Buckets(point_caps=(64, 128), voxel_caps=(64, 128), level_fractions=(0.5, 0.25))
  assert buckets.select(60, 60, level_counts=(32, 16)) == 0
  assert buckets.select(60, 60, level_counts=(33, 16)) == 1   # level 1 holds 32 in bucket 0.
  with pytest.raises(InputError) as error:
    buckets.select(60, 60, name="sparse_scan", level_counts=(65, 16))
  assert "sparse_scan" in str(error.value) and "level_fractions" in str(error.value)


def test_selected_capacities_never_overflow_the_encoder_pyramid():
  """A sparse random cloud overflows halving capacities inside the network; the bucket chosen
  from its coarse level counts gives capacities under which no level overflows."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jaxseg.data.voxelize import coarse_level_counts  # pylint: disable=g-import-not-at-top
  from jaxseg.ops.sparse import kernel_map  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  voxels = np.unique(rng.integers(0, 64, (300, 3)), axis=0).astype(np.int32)
  counts = coarse_level_counts(voxels, 3)
  buckets = Buckets(point_caps=(512, 1024), voxel_caps=(512, 1024),
                    level_fractions=(1.0, 0.5, 0.25))
  bucket = buckets.select(len(voxels), len(voxels), level_counts=counts)
  cap = buckets.voxel_caps[bucket]
  coords = np.zeros((1, cap, 3), np.int32)
  coords[0, :len(voxels)] = voxels
  mask = np.arange(cap)[None] < len(voxels)
  sizes = [(3,)] * 4
  _, links = kernel_map.build_pyramid(jnp.asarray(coords), jnp.asarray(mask), sizes,
                                      (cap,) + buckets.level_caps(bucket))
  assert not any(bool(link.overflow.any()) for link in links)
  _, default_links = kernel_map.build_pyramid(jnp.asarray(coords), jnp.asarray(mask), sizes)
  assert any(bool(link.overflow.any()) for link in default_links)
