"""Colouring points by RGB, class or segment; top-down and oblique orthographic renders, and
the ground truth / prediction / error panel of a labelled scan."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

IGNORE_COLOR = np.array([0, 0, 0], np.uint8)


def palette(num_colors: int, seed: int = 0) -> np.ndarray:
  """uint8 (num_colors, 3) well-spread, reproducible colours (golden-ratio hues)."""
  hues = (np.arange(num_colors) * 0.618033988749895 + 0.1 * seed) % 1.0
  sat = 0.55 + 0.35 * ((np.arange(num_colors) * 7) % 3) / 2
  val = 0.95 - 0.25 * ((np.arange(num_colors) * 5) % 2)
  h6 = hues * 6
  c = val * sat
  x = c * (1 - np.abs(h6 % 2 - 1))
  zeros = np.zeros_like(c)
  sector = np.floor(h6).astype(int) % 6
  rgb = np.select([sector[:, None] == i for i in range(6)], [
      np.stack(v, 1) for v in ((c, x, zeros), (x, c, zeros), (zeros, c, x), (zeros, x, c),
                               (x, zeros, c), (c, zeros, x))])
  return np.round((rgb + (val - c)[:, None]) * 255).astype(np.uint8)


def color_by_ids(ids: np.ndarray, seed: int = 0) -> np.ndarray:
  """uint8 (N, 3) colours for int ids (N,); negative ids (ignore / no segment) are black."""
  ids = np.asarray(ids)
  out = np.tile(IGNORE_COLOR, (len(ids), 1))
  valid = ids >= 0
  if valid.any():
    out[valid] = palette(int(ids[valid].max()) + 1, seed)[ids[valid]]
  return out


def top_down_image(coords: np.ndarray, colors: np.ndarray, resolution: float = 0.02,
                   max_size: int = 2048) -> np.ndarray:
  """Renders points seen from above: uint8 (H, W, 3), the highest point wins each pixel.

  coords: float (N, 3) metres; colors: uint8 (N, 3). resolution: metres per pixel (coarsened
  so that neither side exceeds max_size). Empty pixels are white.
  """
  lo = coords[:, :2].min(0)
  extent = coords[:, :2].max(0) - lo
  resolution = max(resolution, float(extent.max()) / (max_size - 1))
  width, height = (np.floor(extent / resolution).astype(int) + 1)
  image = np.full((height, width, 3), 255, np.uint8)
  px = np.floor((coords[:, :2] - lo) / resolution).astype(int)
  order = np.argsort(coords[:, 2], kind="stable")  # Later writes (higher z) win.
  image[height - 1 - px[order, 1], px[order, 0]] = colors[order]
  return image


def oblique_image(coords: np.ndarray, colors: np.ndarray, resolution: float = 0.02,
                  max_size: int = 2048, azimuth_deg: float = -45.0,
                  elevation_deg: float = 35.0) -> np.ndarray:
  """Renders points in an orthographic view from above at an angle: uint8 (H, W, 3), the point
  nearest the viewer wins each pixel; empty pixels are white.

  The viewer looks down `elevation_deg` below the horizon (90 = top-down), from the compass
  direction `azimuth_deg` (about z, 0 = from +y towards -y). coords: float (N, 3) metres, z up;
  colors: uint8 (N, 3); resolution: metres per pixel (coarsened to keep both sides <=
  max_size).
  """
  a, e = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
  toward_viewer = np.array([np.sin(a) * np.cos(e), np.cos(a) * np.cos(e), np.sin(e)])
  right = np.array([-np.cos(a), np.sin(a), 0.0])    # z x toward_viewer, normalised
  up = np.cross(toward_viewer, right)
  points = np.asarray(coords, np.float64)
  screen = np.stack([points @ right, points @ up], 1)
  lo = screen.min(0)
  extent = screen.max(0) - lo
  resolution = max(resolution, float(extent.max()) / (max_size - 1))
  width, height = (np.floor(extent / resolution).astype(int) + 1)
  image = np.full((height, width, 3), 255, np.uint8)
  px = np.floor((screen - lo) / resolution).astype(int)
  order = np.argsort(points @ toward_viewer, kind="stable")  # Nearer points are written last.
  image[height - 1 - px[order, 1], px[order, 0]] = colors[order]
  return image


def below_ceiling(coords: np.ndarray, margin: float = 0.3) -> np.ndarray:
  """bool (N,): the points lower than `margin` metres under the scene's highest point, so that
  views from above see into a room that has a ceiling."""
  z = np.asarray(coords)[:, 2]
  keep = z < z.max() - margin
  return keep if keep.any() else np.ones_like(keep)


ERROR_COLORS = {"correct": (60, 170, 80), "wrong": (220, 50, 50), "ignored": (190, 190, 190)}


def comparison_panel(coords: np.ndarray, truth: np.ndarray | None, predicted: np.ndarray,
                     num_classes: int, class_names: Sequence[str] = (),
                     resolution: float | None = None, max_size: int = 1024,
                     min_size: int = 320) -> np.ndarray:
  """A labelled scan at a glance: uint8 image of two rows (top-down, oblique) by three columns
  (ground truth, prediction, errors: green right, red wrong, grey where the ground truth is
  ignored), white gaps between them, and a legend of the classes shown when `class_names` are
  given; the highest 0.3 m (a ceiling) are left out.

  coords: float (N, 3) metres; truth, predicted: int (N,) classes in [0, num_classes), -1 =
  ignore / none (black); truth None (an unlabelled scan): the prediction column only.
  resolution: metres per pixel (None: about the points' spacing seen
  from above, so that surfaces look closed). A view whose longer side is under `min_size`
  pixels (a sparse or small cloud) is enlarged by a whole factor, each pixel a square block.
  """
  keep = below_ceiling(coords)
  coords, predicted = coords[keep], np.asarray(predicted)[keep]
  truth = None if truth is None else np.asarray(truth)[keep]
  if resolution is None:
    extent = np.ptp(coords[:, :2], axis=0)
    resolution = max(0.01, 1.3 * float(np.sqrt(extent[0] * extent[1] / max(len(coords), 1))))
  colours = palette(num_classes)
  by_class = lambda ids: np.where((ids >= 0)[:, None], colours[np.clip(ids, 0, None)],
                                  IGNORE_COLOR)
  columns, keys = [by_class(predicted)], []
  if truth is not None:
    errors = np.where((truth < 0)[:, None], ERROR_COLORS["ignored"],
                      np.where((truth == predicted)[:, None], ERROR_COLORS["correct"],
                               ERROR_COLORS["wrong"])).astype(np.uint8)
    columns, keys = [by_class(truth), columns[0], errors], list(ERROR_COLORS.items())
  rows = []
  for view in (top_down_image, oblique_image):
    rows.append(_join([_enlarged(view(coords, c, resolution, max_size), min_size)
                       for c in columns], axis=1))
  if len(class_names):
    shown = np.unique(predicted if truth is None else np.r_[truth, predicted])
    rows.append(legend([(class_names[c], colours[c]) for c in shown[shown >= 0]] + keys))
  return _join(rows, axis=0)


def legend(entries: Sequence[tuple[str, Sequence[int]]], columns: int = 6) -> np.ndarray:
  """uint8 (H, W, 3): a colour swatch and its name per entry, in rows of `columns`."""
  cell_w, cell_h = 150, 18
  rows = -(-len(entries) // columns)
  image = Image.new("RGB", (cell_w * columns, cell_h * rows + 4), (255, 255, 255))
  draw = ImageDraw.Draw(image)
  for i, (name, colour) in enumerate(entries):
    x, y = (i % columns) * cell_w + 4, (i // columns) * cell_h + 4
    draw.rectangle([x, y, x + 12, y + 12], fill=tuple(int(v) for v in colour))
    draw.text((x + 18, y), str(name), fill=(0, 0, 0))
  return np.asarray(image)


def _enlarged(image: np.ndarray, min_size: int) -> np.ndarray:
  """uint8 (H, W, 3) -> (f H, f W, 3), f the smallest whole factor with max(f H, f W) >=
  min_size (1 when already that large)."""
  factor = -(-min_size // max(image.shape[:2]))
  return image if factor <= 1 else image.repeat(factor, axis=0).repeat(factor, axis=1)


def _join(tiles: list[np.ndarray], axis: int, gap: int = 8) -> np.ndarray:
  """Tiles side by side (axis 1) or stacked (axis 0), white-padded to a common size."""
  other = 1 - axis
  size = max(t.shape[other] for t in tiles)
  padded = []
  for i, tile in enumerate(tiles):
    pad = [(0, 0), (0, 0), (0, 0)]
    pad[other] = (0, size - tile.shape[other])
    if i < len(tiles) - 1:
      pad[axis] = (0, gap)
    padded.append(np.pad(tile, pad, constant_values=255))
  return np.concatenate(padded, axis=axis)
