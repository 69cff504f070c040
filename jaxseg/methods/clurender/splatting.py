"""Differentiable point splatting (CluRender's renderer R, Eq. 15), jittable with static shapes.

  image, coverage = render_view(points, colors, valid, world_to_camera, intrinsics, (W, H))

Each valid point in front of the camera is projected with the view's intrinsics and pose
(`jaxseg.methods.pointdc.projection` conventions: pixel (0, 0)'s centre at (0, 0)) and splatted
as a Gaussian-weighted disk: it covers the pixels whose centre lies within `radius` pixels of
its projection, with weight rho = exp(-d^2 / (2 sigma^2)), d the distance in pixels. Every
pixel keeps the `points_per_pixel` (K) covering points nearest the camera and composites them
front to back (Porter-Duff "over"): colour = sum_i rho_i^eta C_i prod_{j<i} (1 - rho_j^eta).
`coverage` is the composited opacity, sum_i rho_i^eta prod_{j<i} (1 - rho_j^eta) (0 where no
point lands; the image is 0 there, with no background colour).

How it runs: the points are put in depth order once, so a point's row is its depth rank; every
point makes one fragment per pixel offset of its (2R+1)^2 window (R = ceil(radius)), keyed by
pixel * N + row; one sort of these int32 keys orders the fragments by (pixel, depth) with no
payload (pixel and point decode from the key; two int32 keys when (W * H + 1) * N > 2^31 - 1). A
fragment's rank within its pixel selects the K nearest, its weight is computed after the sort
from its point and pixel, and the transmittance prod (1 - a_j) is a segmented scan of
log(1 - a_j) that restarts at each pixel. Gradients reach the colours
and, through the splat weights, the points' positions (the depth order and the coverage test
are piecewise constant, as in every point rasteriser). The paper compares the squared distance
with r ("||p - l||^2 > r"); here the disk has radius r pixels, and the paper gives no sigma:
the default, r / 3, leaves a weight of exp(-4.5) = 1% at the disk's edge.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxseg.methods.pointdc import projection
from jaxseg.ops.rows import take_rows

# Opacity is capped below 1 so that log(1 - a) and its gradient stay finite.
_MAX_OPACITY = 1.0 - 1e-4


def _fragment_pixels(pixels: jax.Array, front: jax.Array, size: tuple[int, int],
                     radius: float) -> jax.Array:
  """Every point's candidate pixels: int32 [N, F] (row * W + column, or W * H where the
  fragment is dropped: off the image, outside the disk or not splatted), F = (2R+1)^2.

  pixels: f32 [N, 2] (column, row) projections; front: bool [N] points to splat."""
  width, height = size
  reach = int(math.ceil(radius))
  steps = jnp.arange(-reach, reach + 1, dtype=jnp.int32)
  offsets = jnp.stack(jnp.meshgrid(steps, steps, indexing="xy"), -1).reshape(-1, 2)   # [F, 2]
  pixels = jax.lax.stop_gradient(pixels)
  target = jnp.floor(pixels + 0.5).astype(jnp.int32)[:, None, :] + offsets[None]     # [N, F, 2]
  delta = pixels[:, None, :] - target.astype(jnp.float32)
  inside = ((target[..., 0] >= 0) & (target[..., 0] < width) & (target[..., 1] >= 0)
            & (target[..., 1] < height))
  keep = front[:, None] & inside & (jnp.sum(delta * delta, axis=-1) <= radius * radius)
  return jnp.where(keep, target[..., 1] * width + target[..., 0], width * height)


def _sorted_fragments(pixel: jax.Array, num_pixels: int) -> tuple[jax.Array, jax.Array]:
  """The fragments int32 [N, F] (pixel of point n's f-th fragment, num_pixels where dropped;
  points in depth order) sorted by (pixel, point): (pixel, point) int32 [N * F] each."""
  num_points = pixel.shape[0]
  point = jnp.broadcast_to(jnp.arange(num_points, dtype=jnp.int32)[:, None], pixel.shape)
  if (num_pixels + 1) * num_points <= 2**31 - 1:       # one int32 key: pixel * N + point
    key = jax.lax.sort((pixel * num_points + point).reshape(-1))
    return key // num_points, key % num_points
  pixel, point = jax.lax.sort((pixel.reshape(-1), point.reshape(-1)), num_keys=2)
  return pixel, point


def _segment_exclusive_cumsum(values: jax.Array, starts: jax.Array) -> jax.Array:
  """f32 [F]: for each element the sum of the earlier elements of its segment (segments begin
  where `starts` is True), exact per segment (no cancellation across segments)."""

  def combine(left, right):
    left_sum, left_start = left
    right_sum, right_start = right
    return jnp.where(right_start, right_sum, left_sum + right_sum), left_start | right_start

  inclusive, _ = jax.lax.associative_scan(combine, (values, starts))
  return inclusive - values


def in_view(points: jax.Array, valid: jax.Array, world_to_camera: jax.Array,
            intrinsics: jax.Array, size: tuple[int, int], *, radius: float = 4.0,
            min_depth: float = 0.1) -> jax.Array:
  """bool [N]: valid points in front of the camera whose disk reaches the image (the points
  `render_view` can draw); count them on the host to size its `max_points`."""
  width, height = size
  pixels, _, front = projection.camera_pixels(points, valid, world_to_camera, intrinsics,
                                              min_depth=min_depth)
  u, v = pixels[:, 0], pixels[:, 1]
  reach = radius + 0.5
  return (front & (u >= -reach) & (u < width - 1 + reach) & (v >= -reach)
          & (v < height - 1 + reach))


def render_view(points: jax.Array, colors: jax.Array, valid: jax.Array,
                world_to_camera: jax.Array, intrinsics: jax.Array, size: tuple[int, int], *,
                radius: float = 4.0, sigma: float | None = None, points_per_pixel: int = 128,
                eta: float = 1.0, min_depth: float = 0.1,
                max_points: int | None = None) -> tuple[jax.Array, jax.Array]:
  """Splats N coloured points into one view.

  Args:
    points: f32 [N, 3] world coordinates (invalid rows may hold NaN).
    colors: f32 [N, C] per-point colours (or any per-point channels).
    valid: bool [N].
    world_to_camera: f32 [4, 4] (`projection.world_to_camera` of the camera-to-world pose).
    intrinsics: f32 [3, 3] for images of `size`.
    size: static (W, H).
    radius: disk radius in pixels (the paper's r = 4); sigma: the Gaussian's decay in pixels
      (default radius / 3); points_per_pixel: K, the nearest points composited per pixel (the
      paper's 128); eta: the opacity exponent (the paper's 1); min_depth: metres in front of
      the camera a point must lie.
    max_points: static; when set, only the points `in_view` are splatted, gathered into this
      many rows first (a view sees part of a scene, and the fragments' sort is the cost). It
      must be at least their count: extra points are dropped.
  Returns:
    image f32 [H, W, C], coverage f32 [H, W] (composited opacity in [0, 1)).
  """
  width, height = size
  sigma = radius / 3.0 if sigma is None else float(sigma)
  if max_points is not None:
    seen = in_view(points, valid, world_to_camera, intrinsics, size, radius=radius,
                   min_depth=min_depth)
    (rows,) = jnp.nonzero(seen, size=max_points, fill_value=points.shape[0])
    points, colors = take_rows(points, rows), take_rows(colors, rows)
    valid = rows < seen.shape[0]
  pixels, depth, front = projection.camera_pixels(points, valid, world_to_camera, intrinsics,
                                                  min_depth=min_depth)
  # Depth order once (stable: equal depths keep their row order); dropped points go last.
  by_depth = jnp.argsort(jax.lax.stop_gradient(jnp.where(front, depth, jnp.inf))).astype(
      jnp.int32)
  pixels, front, colors = take_rows(pixels, by_depth), front[by_depth], take_rows(colors,
                                                                                  by_depth)
  pixel, point = _sorted_fragments(_fragment_pixels(pixels, front, size, radius),
                                   width * height)
  num_fragments = pixel.shape[0]
  position = jnp.arange(num_fragments, dtype=jnp.int32)
  starts = jnp.concatenate([jnp.ones(1, bool), pixel[1:] != pixel[:-1]])
  rank = position - jax.lax.cummax(jnp.where(starts, position, 0))
  used = (pixel < width * height) & (rank < points_per_pixel)
  # The Gaussian weight of each fragment, from its point's projection and its pixel's centre
  # (zero offset where unused, so that no NaN of a padding row reaches a gradient).
  centre = jnp.stack([pixel % width, pixel // width], -1).astype(jnp.float32)
  delta = jnp.where(used[:, None], take_rows(pixels, point) - centre, 0.0)
  rho = jnp.exp(-jnp.sum(delta * delta, axis=-1) / (2.0 * sigma * sigma))
  opacity = jnp.where(used, jnp.minimum(rho ** eta, _MAX_OPACITY), 0.0)
  transmittance = jnp.exp(_segment_exclusive_cumsum(jnp.log1p(-opacity), starts))
  weight = opacity * transmittance
  fragment_colors = take_rows(colors.astype(jnp.float32), point)
  # Unused fragments weigh 0; the dropped ones sit in the extra last segment.
  image = jax.ops.segment_sum(weight[:, None] * jnp.where(used[:, None], fragment_colors, 0.0),
                              pixel, num_segments=width * height + 1,
                              indices_are_sorted=True)[:-1]
  coverage = jax.ops.segment_sum(weight, pixel, num_segments=width * height + 1,
                                 indices_are_sorted=True)[:-1]
  return image.reshape(height, width, -1), coverage.reshape(height, width)
