"""Point <- voxel feature gather against numpy indexing."""

import numpy as np

from jaxseg.models.point_voxel import gather_point_features


def test_points_take_their_voxel_feature():
  rng = np.random.default_rng(0)
  voxel_feats = rng.normal(size=(2, 10, 4)).astype(np.float32)
  point_to_voxel = rng.integers(0, 10, size=(2, 30)).astype(np.int32)
  point_to_voxel[0, 3] = -1      # Out-of-range indices give zeros even on valid points.
  point_to_voxel[1, 4] = 10
  point_mask = rng.random((2, 30)) < 0.8
  out = np.asarray(gather_point_features(voxel_feats, point_to_voxel, point_mask))
  for b in range(2):
    for p in range(30):
      v = point_to_voxel[b, p]
      expected = voxel_feats[b, v] if point_mask[b, p] and 0 <= v < 10 else np.zeros(4)
      np.testing.assert_array_equal(out[b, p], expected)
