"""Colouring points by RGB, class or segment, and a top-down orthographic image renderer."""

from __future__ import annotations

import numpy as np

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
