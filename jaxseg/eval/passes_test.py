"""The super-voxels that clustering sees (training and evaluation alike)."""

import numpy as np

from jaxseg.eval import passes


def test_clustered_rows_apply_the_size_and_ground_truth_filters():
  counts = np.array([0, 1, 5, 9, 50, 3], np.float32)
  labelled = np.array([0, 1, 0, 2, 50, 3], np.float32)
  table = passes.SceneTable(np.array([0, 6]), np.zeros((6, 2), np.float32), counts, labelled,
                            np.full(6, -1, np.int32), np.zeros((0, 2)), np.zeros(0))
  np.testing.assert_array_equal(passes.clustered_rows(table, 0, False), [1, 2, 3, 4, 5])
  np.testing.assert_array_equal(passes.clustered_rows(table, 0, True), [1, 3, 4, 5])
  np.testing.assert_array_equal(passes.clustered_rows(table, 5, False), [2, 3, 4])
  np.testing.assert_array_equal(passes.clustered_rows(table, 5, True), [3, 4])
