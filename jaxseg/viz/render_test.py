"""Tests for the viz colouring and top-down renderer against direct numpy computations."""

import numpy as np

from jaxseg.viz import render


def test_palette_colours_are_distinct_and_reproducible():
  colors = render.palette(40)
  assert colors.shape == (40, 3) and colors.dtype == np.uint8
  assert len({tuple(c) for c in colors}) == 40
  np.testing.assert_array_equal(colors, render.palette(40))


def test_ignored_ids_are_black():
  ids = np.array([2, -1, 0, 2])
  colors = render.color_by_ids(ids)
  np.testing.assert_array_equal(colors[1], [0, 0, 0])
  np.testing.assert_array_equal(colors[0], colors[3])
  assert not np.array_equal(colors[0], colors[2])


def test_top_down_highest_point_wins():
  coords = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.5, 0.2]])
  colors = np.array([[10, 10, 10], [200, 0, 0], [0, 0, 250]], np.uint8)
  image = render.top_down_image(coords, colors, resolution=0.5)
  # x spans 0..1 (3 columns), y spans 0..0.5 (2 rows); y grows upwards in the image.
  assert image.shape == (2, 3, 3)
  np.testing.assert_array_equal(image[1, 0], [200, 0, 0])   # (0, 0): the z=1 point.
  np.testing.assert_array_equal(image[0, 2], [0, 0, 250])   # (1, 0.5).
  np.testing.assert_array_equal(image[0, 0], [255, 255, 255])
