"""Voxelisation against np.unique / np.add.at references in float64."""

import numpy as np
import pytest

from jaxseg.data.voxelize import (MAX_EXTENT, coarse_level_counts, majority_labels, pack_keys,
                                  unpack_keys, voxelize)
from jaxseg.errors import InputError


def _scene(n=3000, seed=0):
  rng = np.random.default_rng(seed)
  coords = (rng.random((n, 3)) * [4.0, 3.0, 2.0] - [1.0, 2.0, 0.5]).astype(np.float32)
  colors = rng.integers(0, 256, (n, 3)).astype(np.uint8)
  labels = rng.integers(-1, 4, n).astype(np.int32)
  return coords, colors, labels


@pytest.mark.parametrize("voxel_size", [0.05, 0.2])
def test_matches_unique_rows_reference(voxel_size):
  coords, colors, _ = _scene()
  vox = voxelize(coords, colors, voxel_size)
  floor = np.floor(coords.astype(np.float64) / voxel_size)
  rows = floor - floor.min(axis=0)
  ref_coords, ref_first, ref_inverse = np.unique(rows, axis=0, return_index=True,
                                                 return_inverse=True)
  assert vox.voxel_coords.dtype == np.int32 and vox.point_to_voxel.dtype == np.int32
  np.testing.assert_array_equal(vox.voxel_coords, ref_coords.astype(np.int32))
  np.testing.assert_array_equal(vox.point_to_voxel, ref_inverse.reshape(-1))
  np.testing.assert_array_equal(vox.voxel_to_point, ref_first)

  # Mean features: colour / 255 - 0.5 and positions in voxel units, x and y centred.
  position = coords.astype(np.float64) / voxel_size - floor.min(axis=0)
  position[:, :2] -= position[:, :2].mean(axis=0)
  point_feats = np.concatenate([colors / 255.0 - 0.5, position], axis=1)
  sums = np.zeros((len(ref_coords), 6))
  counts = np.zeros(len(ref_coords))
  np.add.at(sums, ref_inverse.reshape(-1), point_feats)
  np.add.at(counts, ref_inverse.reshape(-1), 1)
  np.testing.assert_allclose(vox.voxel_feats, sums / counts[:, None], rtol=1e-5, atol=1e-5)
  # Each voxel's mean position lies inside that voxel (z is not centred).
  z = vox.voxel_feats[:, 5]
  assert ((z >= vox.voxel_coords[:, 2] - 1e-4) & (z <= vox.voxel_coords[:, 2] + 1 + 1e-4)).all()


def test_majority_labels_against_loop():
  coords, colors, labels = _scene(2000, 1)
  vox = voxelize(coords, colors, 0.25, labels=labels)
  for v in range(vox.num_voxels):
    members = labels[vox.point_to_voxel == v]
    members = members[members >= 0]
    expected = np.bincount(members).argmax() if members.size else -1  # smallest on ties
    assert vox.voxel_labels[v] == expected
  np.testing.assert_array_equal(majority_labels(np.zeros(3, np.int32), np.full(3, -1), 1), [-1])


def test_keys_round_trip_and_sort_lexicographically():
  rng = np.random.default_rng(2)
  grid = rng.integers(0, MAX_EXTENT, size=(5000, 3))
  keys = pack_keys(grid)
  assert keys.dtype == np.int32 and (keys >= 0).all()
  np.testing.assert_array_equal(keys, grid[:, 0] * 2**20 + grid[:, 1] * 2**9 + grid[:, 2])
  np.testing.assert_array_equal(unpack_keys(keys), grid)
  np.testing.assert_array_equal(np.argsort(keys, kind="stable"),
                                np.lexsort((grid[:, 2], grid[:, 1], grid[:, 0])))


def test_scene_beyond_key_range_is_an_input_error():
  coords = np.float32([[0, 0, 0], [1, 1, 11.0]])
  with pytest.raises(InputError, match="big_room: the scene spans .* voxels.*larger voxel"):
    voxelize(coords, np.zeros((2, 3), np.uint8), 0.02, name="big_room")
  assert voxelize(coords, np.zeros((2, 3), np.uint8), 0.05).num_voxels == 2


def test_coarse_level_counts_match_the_encoder_pyramid_counts():
  from jaxseg.ops.sparse.kernel_map import level_voxel_counts  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(3)
  voxels = np.unique(rng.integers(0, 300, (5000, 3)), axis=0).astype(np.int32)
  reference = level_voxel_counts(voxels[None], np.ones((1, len(voxels)), bool), 5)[0, 1:]
  assert coarse_level_counts(voxels, 4) == tuple(int(c) for c in reference)
