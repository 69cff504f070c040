"""Scenes of a padded evaluation batch, with their points' clusters."""

import numpy as np

from jaxseg.eval import renders


def test_scene_predictions_take_each_scenes_valid_points():
  host = {
      "scene_index": np.array([[4, 7], [9, -1]]),
      "point_mask": np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool),
      "point_scene": np.array([[0, 1, 0, 0], [0, 0, 0, 0]]),
      "point_coords": np.arange(24, dtype=np.float32).reshape(2, 4, 3),
      "point_labels": np.array([[1, 2, 3, -1], [0, -1, 5, 5]]),
  }
  clusters = np.array([[10, 11, 12, 13], [20, 21, 22, 23]])
  scenes = renders.scene_predictions(host, clusters)
  assert [s.scene_index for s in scenes] == [4, 7, 9]
  np.testing.assert_array_equal(scenes[0].clusters, [10, 12])
  np.testing.assert_array_equal(scenes[0].labels, [1, 3])
  np.testing.assert_array_equal(scenes[0].coords, host["point_coords"][0][[0, 2]])
  np.testing.assert_array_equal(scenes[1].clusters, [11])
  np.testing.assert_array_equal(scenes[2].labels, [0, -1])
