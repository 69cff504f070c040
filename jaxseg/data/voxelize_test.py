"""Voxelisation against np.unique / np.add.at references in float64."""

import numpy as np
import pytest

from jaxseg.data.voxelize import majority_labels, voxelize
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


def test_voxels_sort_lexicographically_and_large_scenes_fit():
  rng = np.random.default_rng(2)
  coords = (rng.random((3000, 3)) * [60.0, 45.0, 12.0]).astype(np.float32)  # 3000 x 2250 voxels
  vox = voxelize(coords, np.zeros((3000, 3), np.uint8), 0.02)
  grid = vox.voxel_coords
  np.testing.assert_array_equal(np.lexsort((grid[:, 2], grid[:, 1], grid[:, 0])),
                                np.arange(len(grid)))
  np.testing.assert_array_equal(np.unique(np.floor(coords / 0.02).astype(np.int64), axis=0)
                                - np.floor(coords.min(0) / 0.02).astype(np.int64), grid)


def test_scene_beyond_the_host_key_range_is_an_input_error():
  coords = np.float32([[0, 0, 0], [1e5, 1, 11.0]])
  with pytest.raises(InputError, match="big_room: the scene spans .* voxels.*units"):
    voxelize(coords, np.zeros((2, 3), np.uint8), 0.02, name="big_room")
