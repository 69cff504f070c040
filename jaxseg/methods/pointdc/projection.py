"""Projection of a point cloud into posed camera views with occlusion tests (jittable).

  w2c = world_to_camera(frames.poses)                     # (V, 4, 4), NaN rows = bad pose
  proj = project_points(points, valid, w2c, k, (320, 240), occlusion_tolerance=0.05,
                        zbuffer_stride=4, depth=depth_m, depth_intrinsics=depth_k)
  proj.pixels[v, j]  # (x = column, y = row) where point j lands in view v
  proj.visible[v, j] # whether view v sees point j

Conventions (ScanNet / OpenCV): camera x right, y down, z forward; a camera point (x, y, z)
lands at z * (u, v, 1) = K (x, y, z); pixel (0, 0)'s centre is at (0, 0), so the image covers
-0.5 <= u < W - 0.5 and -0.5 <= v < H - 0.5 (the convention of
`jaxseg.teachers.teacher.sample_features`), and a point's pixel is (round(u), round(v)).

Visibility: a point is visible in a view when it is a valid row, lies in front of the camera
(z > min_depth) and inside the image, and passes the z-buffer: the image is divided into
cells of `zbuffer_stride` x `zbuffer_stride` pixels (a sparse point set leaves holes between
points, through which a per-pixel z-buffer would let hidden points through) and a point
survives when its depth is at most its cell's minimum depth + `occlusion_tolerance`. With a
depth image, a point must also agree with the depth reading at its depth pixel to within
`depth_tolerance`; pixels without a reading (0) leave the decision to the z-buffer.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxseg.errors import InputError

_HIGHEST = jax.lax.Precision.HIGHEST


class Projection(NamedTuple):
  """Points seen from V views.

  pixels:  float32 (V, N, 2) (x = column, y = row) for valid points in front of the camera,
           0 elsewhere.
  depth:   float32 (V, N) camera z in metres for valid points (0 for padded rows and views
           with a bad pose).
  visible: bool (V, N).
  """
  pixels: jax.Array
  depth: jax.Array
  visible: jax.Array


# The public functions are jitted (sizes static): called eagerly (the tests; point_features
# inverts each scene's poses), each would compile a program per primitive and shape.
@jax.jit
def world_to_camera(poses_c2w: jax.Array) -> jax.Array:
  """Inverts camera-to-world poses.

  Args:
    poses_c2w: float (V, 4, 4) camera-to-world transforms.
  Returns:
    float32 (V, 4, 4) world-to-camera transforms; a pose holding inf/NaN (or a singular one)
    gives an all-NaN matrix, which `project_points` treats as a view that sees nothing.
  """
  poses = jnp.asarray(poses_c2w, jnp.float32)
  finite = jnp.isfinite(poses).all(axis=(1, 2))
  safe = jnp.where(finite[:, None, None], poses, jnp.eye(4, dtype=jnp.float32))
  inverse = jnp.linalg.inv(safe)
  ok = finite & jnp.isfinite(inverse).all(axis=(1, 2))
  return jnp.where(ok[:, None, None], inverse, jnp.nan)


def _image_coords(cam: jax.Array, safe_z: jax.Array, intrinsics: jax.Array) -> jax.Array:
  """(V, N, 3) camera points, (V, N) depths (nonzero) -> (V, N, 2) pixel coordinates."""
  uvw = jnp.einsum("vnj,ij->vni", cam, intrinsics.astype(jnp.float32), precision=_HIGHEST)
  return uvw[..., :2] / safe_z[..., None]


def _inside(uv: jax.Array, width: int, height: int) -> jax.Array:
  """Whether (V, N, 2) pixel coordinates fall inside a width x height image."""
  u, v = uv[..., 0], uv[..., 1]
  return (u >= -0.5) & (u < width - 0.5) & (v >= -0.5) & (v < height - 0.5)


def _pixel_index(uv: jax.Array, width: int, height: int) -> tuple[jax.Array, jax.Array]:
  """Nearest pixel (column, row) int32 (V, N) each, clipped into the image."""
  col = jnp.clip(jnp.floor(uv[..., 0] + 0.5), 0, width - 1).astype(jnp.int32)
  row = jnp.clip(jnp.floor(uv[..., 1] + 0.5), 0, height - 1).astype(jnp.int32)
  return col, row


def _zbuffer_visible(depth: jax.Array, candidate: jax.Array, col: jax.Array, row: jax.Array,
                     image_size: tuple[int, int], stride: int,
                     tolerance: float | jax.Array) -> jax.Array:
  """Per view and cell of stride x stride pixels, keeps candidates within `tolerance` of the
  cell's nearest candidate. depth f32 / candidate bool / col, row int32 (V, N) -> bool (V, N)."""
  width, height = image_size
  num_views = depth.shape[0]
  cells_x, cells_y = -(-width // stride), -(-height // stride)
  cells_per_view = cells_x * cells_y
  num_cells = num_views * cells_per_view
  view = jnp.arange(num_views, dtype=jnp.int32)[:, None]
  cell = view * cells_per_view + (row // stride) * cells_x + col // stride
  cell = jnp.where(candidate, cell, num_cells)  # out of range: dropped by segment_min
  nearest = jax.ops.segment_min(jnp.where(candidate, depth, jnp.inf).reshape(-1),
                                cell.reshape(-1), num_segments=num_cells)
  cell_min = nearest[jnp.minimum(cell, num_cells - 1)]
  return candidate & (depth <= cell_min + tolerance)


def _depth_agrees(cam: jax.Array, safe_z: jax.Array, depth: jax.Array, front: jax.Array,
                  depth_image: jax.Array, depth_intrinsics: jax.Array,
                  tolerance: float | jax.Array) -> jax.Array:
  """Whether each point agrees with the depth reading at its depth pixel, or has none.

  cam (V, N, 3), safe_z / depth (V, N), front bool (V, N), depth_image (V, Hd, Wd) metres
  (0 = no reading), depth_intrinsics (3, 3) -> bool (V, N).
  """
  num_views, depth_h, depth_w = depth_image.shape
  uv = _image_coords(cam, safe_z, depth_intrinsics)
  col, row = _pixel_index(uv, depth_w, depth_h)
  flat = depth_image.astype(jnp.float32).reshape(num_views, depth_h * depth_w)
  reading = jnp.take_along_axis(flat, row * depth_w + col, axis=1)
  has_reading = front & _inside(uv, depth_w, depth_h) & (reading > 0) & jnp.isfinite(reading)
  return ~has_reading | (jnp.abs(reading - depth) < tolerance)


def _camera_pixels(points, valid, world_to_camera, intrinsics, min_depth):
  """Camera coordinates f32 (V, N, 3), pixels f32 (V, N, 2) (0 behind the camera), finite and
  in-front masks bool (V, N) of N points in V views."""
  points = jnp.asarray(points, jnp.float32)
  valid = jnp.asarray(valid, bool)
  transform = jnp.asarray(world_to_camera, jnp.float32)
  safe_points = jnp.where(valid[:, None], points, 0.0)
  cam = jnp.einsum("vij,nj->vni", transform[:, :3, :3], safe_points, precision=_HIGHEST)
  cam = cam + transform[:, None, :3, 3]
  z = cam[..., 2]
  finite = jnp.isfinite(cam).all(-1) & valid[None, :]
  front = finite & (z > min_depth)
  safe_z = jnp.where(front, z, 1.0)
  uv = _image_coords(jnp.where(front[..., None], cam, 0.0), safe_z, intrinsics)
  return cam, uv, finite, front


@functools.partial(jax.jit, static_argnames="min_depth")
def camera_pixels(points: jax.Array, valid: jax.Array, world_to_camera: jax.Array,
                  intrinsics: jax.Array, *, min_depth: float = 1e-3
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Where N points land in one view, without any visibility test (a renderer's input).

  Args: points f32 (N, 3), valid bool (N,), world_to_camera f32 (4, 4), intrinsics f32 (3, 3).
  Returns: pixels f32 (N, 2) (column, row), depth f32 (N,) (camera z), front bool (N,) (valid,
    finite and deeper than min_depth).
  """
  cam, uv, _, front = _camera_pixels(points, valid, world_to_camera[None], intrinsics,
                                     min_depth)
  return uv[0], cam[0, :, 2], front[0]


@functools.partial(jax.jit, static_argnames=("image_size", "zbuffer_stride", "min_depth"))
def project_points(points: jax.Array, valid: jax.Array, world_to_camera: jax.Array,
                   intrinsics: jax.Array, image_size: tuple[int, int], *,
                   occlusion_tolerance: float | jax.Array = 0.05, zbuffer_stride: int = 1,
                   depth: Optional[jax.Array] = None,
                   depth_intrinsics: Optional[jax.Array] = None,
                   depth_tolerance: float | jax.Array = 0.1,
                   min_depth: float = 1e-3) -> Projection:
  """Projects points into V views and decides which view sees which point.

  Args:
    points: float32 (N, 3) world coordinates; rows with `valid` False may hold anything
      (NaN included): they never influence other points and are never visible.
    valid: bool (N,).
    world_to_camera: float32 (V, 4, 4) (from `world_to_camera`); NaN views see nothing.
    intrinsics: float32 (3, 3) for images of `image_size`.
    image_size: static (W, H) in pixels.
    occlusion_tolerance: metres a point may lie behind its z-buffer cell's nearest point.
    zbuffer_stride: static z-buffer cell side in pixels (1 = per-pixel z-buffer).
    depth: optional float32 (V, Hd, Wd) depth images in metres, 0 where there is no reading.
    depth_intrinsics: float32 (3, 3) of the depth images; None when they share `intrinsics`
      (then the depth images must be (H, W)).
    depth_tolerance: metres |depth reading - z| must stay under for a point to be visible.
    min_depth: points with camera z at or below this (metres) count as behind the camera.
  Returns:
    Projection with pixels (V, N, 2), depth (V, N) and visible (V, N).
  Raises:
    InputError: a depth image without intrinsics whose size differs from `image_size`, or a
      zbuffer_stride below 1 (both at trace time).
  """
  width, height = image_size
  if zbuffer_stride < 1:
    raise InputError(None, f"zbuffer_stride={zbuffer_stride} must be at least 1",
                     "use 1 for a per-pixel z-buffer or a larger cell size in pixels")
  cam, uv, finite, front = _camera_pixels(points, valid, world_to_camera, intrinsics,
                                          min_depth)
  z = cam[..., 2]
  safe_z = jnp.where(front, z, 1.0)
  candidate = front & _inside(uv, width, height)
  col, row = _pixel_index(uv, width, height)
  depth_z = jnp.where(finite, z, 0.0)
  visible = _zbuffer_visible(depth_z, candidate, col, row, (width, height), zbuffer_stride,
                             occlusion_tolerance)
  if depth is not None:
    depth = jnp.asarray(depth, jnp.float32)
    if depth_intrinsics is None:
      if depth.shape[1:] != (height, width):
        raise InputError(None, f"depth images of shape {depth.shape[1:]} (H, W) need their "
                         f"own intrinsics (colour images are {(height, width)})",
                         "pass depth_intrinsics for the depth image size")
      depth_intrinsics = intrinsics
    visible &= _depth_agrees(jnp.where(front[..., None], cam, 0.0), safe_z, depth_z, front,
                             depth, jnp.asarray(depth_intrinsics, jnp.float32),
                             depth_tolerance)
  pixels = jnp.where(front[..., None], uv, 0.0)
  return Projection(pixels=pixels, depth=depth_z, visible=visible)
