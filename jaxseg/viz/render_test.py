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


def test_oblique_view_from_above_is_the_top_down_view():
  rng = np.random.default_rng(0)
  coords = rng.random((500, 3)) * [4.0, 3.0, 1.0]
  colors = rng.integers(0, 256, (500, 3)).astype(np.uint8)
  # Looking straight down from the +y side (azimuth 0) the screen's right is -x: a mirror of
  # the top-down image about its vertical axis, with the same nearest-wins rule.
  oblique = render.oblique_image(coords, colors, resolution=0.5, azimuth_deg=0.0,
                                 elevation_deg=90.0)
  top = render.top_down_image(coords * [-1.0, -1.0, 1.0], colors, resolution=0.5)
  np.testing.assert_array_equal(oblique, top)


def test_oblique_view_puts_the_near_wall_in_front():
  """From the +y side, 35 degrees above: a red wall at y = 1 hides a blue one at y = 0 behind
  it, and points higher up appear higher in the image."""
  grid = np.stack(np.meshgrid(np.linspace(0, 2, 41), np.linspace(0, 1, 21), indexing="ij"),
                  -1).reshape(-1, 2)
  near = np.c_[grid[:, 0], np.full(len(grid), 1.0), grid[:, 1]]
  far = np.c_[grid[:, 0], np.zeros(len(grid)), grid[:, 1]]
  colors = np.r_[np.tile([[255, 0, 0]], (len(near), 1)), np.tile([[0, 0, 255]], (len(far), 1))]
  image = render.oblique_image(np.r_[near, far], colors.astype(np.uint8), resolution=0.05,
                               azimuth_deg=0.0, elevation_deg=35.0)
  red = np.all(image == [255, 0, 0], -1)
  blue = np.all(image == [0, 0, 255], -1)
  assert red.sum() > blue.sum() > 0
  # The far wall shows only above the near one (smaller row index = higher in the image).
  assert np.flatnonzero(blue.any(1)).max() < np.flatnonzero(red.any(1)).max()


def test_comparison_panel_colours_errors():
  coords = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
  truth = np.array([0, 1, -1, 0])
  predicted = np.array([0, 2, 1, 0])
  panel = render.comparison_panel(coords, truth, predicted, num_classes=3, resolution=1.0)
  assert panel.dtype == np.uint8 and panel.ndim == 3
  colours = {tuple(c) for c in panel.reshape(-1, 3)}
  for name in ("correct", "wrong", "ignored"):
    assert render.ERROR_COLORS[name] in colours, name
  assert tuple(render.palette(3)[2]) in colours       # the wrong prediction's class colour
  np.testing.assert_array_equal(render.below_ceiling(coords), [True, True, True, False])


def test_prediction_only_panel_of_an_unlabelled_scan():
  coords = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  with_truth = render.comparison_panel(coords, np.array([0, 1, 1]), np.array([0, 1, 0]), 2,
                                       resolution=1.0)
  alone = render.comparison_panel(coords, None, np.array([0, 1, 0]), 2, resolution=1.0)
  assert alone.shape[0] == with_truth.shape[0] and alone.shape[1] < with_truth.shape[1] / 2
  colours = {tuple(c) for c in alone.reshape(-1, 3)}
  assert render.ERROR_COLORS["wrong"] not in colours and tuple(render.palette(2)[1]) in colours


def test_a_sparse_cloud_gets_views_of_readable_size():
  """4,000 points over a 6 x 4 m room give views of about 60 pixels at 10 cm a pixel (about
  their spacing); each view is enlarged to at least min_size pixels, in whole pixel blocks."""
  rng = np.random.default_rng(0)
  coords = rng.uniform([0, 0, 0], [6, 4, 2.5], (4000, 3))
  labels = rng.integers(0, 3, 4000)
  small = render.comparison_panel(coords, labels, labels, 3, resolution=0.1, min_size=1)
  panel = render.comparison_panel(coords, labels, labels, 3, resolution=0.1, min_size=320)
  view_width = (panel.shape[1] - 2 * 8) // 3
  assert small.shape[1] < 3 * 100 and view_width >= 320
  top = render.top_down_image(coords[render.below_ceiling(coords)],
                              render.palette(3)[labels[render.below_ceiling(coords)]],
                              resolution=0.1)
  factor = -(-320 // max(top.shape[:2]))
  np.testing.assert_array_equal(panel[:top.shape[0] * factor:factor, :top.shape[1] * factor:
                                      factor], top)
