"""Per-point 2D teacher features from posed frames, and per-super-voxel targets (Eq. 3-6).

  feats, seen = teacher_point_features(teacher, record["frames"], record["coords"],
                                       image_size=(320, 240), views_per_batch=8)
  targets, has_target = supervoxel_targets(feats, seen, record["segments"],
                                           int(record["num_segments"]))

Host side: colour images are read with PIL and resized to `image_size`, depth pngs are read
as uint16 and divided by the depth scale. Device side (one jitted function per teacher and
shape): views are processed in groups of `views_per_batch` (the last group padded with masked
views), the teacher runs once per frame at patch resolution, its features are sampled at the
projected pixels of the visible points and max-pooled over the views. The teacher compiles once
per image size; point clouds are padded to the capacity ladder's point rungs (steps of 1.25x),
so scenes of similar size share the projection's compilation.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import os
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxseg.methods.pointdc.projection import project_points, world_to_camera
from jaxseg.data import capacity
from jaxseg.data.scene import Frames
from jaxseg.data.tfds_builders import record_text
from jaxseg.errors import InputError
from jaxseg.io.frames import scale_intrinsics
from jaxseg.teachers.teacher import Teacher, sample_features

_LOAD_WORKERS = 4
_MOVED_FIX = ("dataset records reference frame images by absolute path: restore the images "
              "there, or rebuild the dataset (data.rebuild=True) from where they are now")

T = TypeVar("T")
R = TypeVar("R")


def frame_fields(frames: Mapping[str, Any] | Frames) -> dict[str, Any]:
  """The fields of a record's `frames` dict or of a `Frames` as plain numpy / str values."""
  get = (lambda k: getattr(frames, k)) if isinstance(frames, Frames) else frames.__getitem__
  return {"poses": np.asarray(get("poses"), np.float32).reshape(-1, 4, 4),
          "color_paths": [record_text(p) for p in get("color_paths")],
          "depth_paths": [record_text(p) for p in get("depth_paths")],
          "color_intrinsics": np.asarray(get("color_intrinsics"), np.float32),
          "depth_intrinsics": np.asarray(get("depth_intrinsics"), np.float32),
          "color_size": tuple(int(v) for v in get("color_size")),
          "depth_size": tuple(int(v) for v in get("depth_size")),
          "depth_scale": float(get("depth_scale"))}


def select_views(poses: np.ndarray, max_views: int) -> np.ndarray:
  """Indices (int64, increasing) of the views with a finite pose; with max_views > 0 at most
  that many of them, evenly spaced. poses: float (V, 4, 4)."""
  finite = np.flatnonzero(np.isfinite(poses).all(axis=(1, 2)))
  if max_views <= 0 or len(finite) <= max_views:
    return finite
  return finite[np.unique(np.floor(np.linspace(0, len(finite) - 1, max_views) + 0.5).astype(int))]


def resized_intrinsics(k: np.ndarray, from_size: tuple[int, int],
                       to_size: tuple[int, int]) -> np.ndarray:
  """(3, 3) intrinsics of an image of `from_size` (W, H) resized to `to_size` by PIL.

  `scale_intrinsics` plus the half-pixel shift of pixel-centre coordinates: a resize by s maps
  a pixel centre u to (u + 0.5) * s - 0.5, so cx' = s * cx + (s - 1) / 2. Returns float32.
  """
  out = scale_intrinsics(k, from_size, to_size).astype(np.float64)
  out[0, 2] += 0.5 * (to_size[0] / from_size[0] - 1.0)
  out[1, 2] += 0.5 * (to_size[1] / from_size[1] - 1.0)
  return out.astype(np.float32)


def load_color(path: str, expected_size: tuple[int, int],
               image_size: tuple[int, int]) -> np.ndarray:
  """Reads a colour frame of `expected_size` (W, H) and resizes it (bilinear) to `image_size`
  (W, H). Returns uint8 (H, W, 3); InputError naming the file when missing or unreadable."""
  if not path:
    raise InputError(None, "a posed frame has no colour image",
                     "distillation needs colour frames; export them with the poses")
  if not os.path.isfile(path):
    raise InputError(path, "colour image of a posed frame is missing", _MOVED_FIX)
  try:
    with Image.open(path) as im:
      rgb = im.convert("RGB")
  except (OSError, ValueError, SyntaxError) as e:
    raise InputError(path, f"cannot read the colour image ({e})",
                     "re-export the frame images (jpg/png)") from e
  if rgb.size != tuple(expected_size):
    raise InputError(path, f"colour image is {rgb.size[0]}x{rgb.size[1]} but the dataset "
                     f"records {expected_size[0]}x{expected_size[1]}", _MOVED_FIX)
  if rgb.size != tuple(image_size):
    rgb = rgb.resize(tuple(image_size), Image.BILINEAR)
  return np.asarray(rgb, np.uint8)


def load_depth(path: str, expected_size: tuple[int, int], depth_scale: float) -> np.ndarray:
  """Reads a uint16 depth png of `expected_size` (W, H); returns float32 (H, W) metres
  (0 = no reading), or all zeros when `path` is empty."""
  width, height = expected_size
  if not path:
    return np.zeros((height, width), np.float32)
  if not os.path.isfile(path):
    raise InputError(path, "depth image of a posed frame is missing", _MOVED_FIX)
  try:
    with Image.open(path) as im:
      raw = np.asarray(im)
  except (OSError, ValueError, SyntaxError) as e:
    raise InputError(path, f"cannot read the depth image ({e})",
                     "re-export the depth frames as 16-bit png") from e
  if raw.shape != (height, width) or raw.dtype.kind not in "iu":
    raise InputError(path, f"depth image has shape {raw.shape} and dtype {raw.dtype}, "
                     f"expected integer ({height}, {width})",
                     "re-export the depth frames as 16-bit single-channel png")
  return (raw.astype(np.float32) / np.float32(depth_scale)).astype(np.float32)


def _bounded_map(pool: concurrent.futures.Executor, fn: Callable[[T], R], items: Iterable[T],
                 ahead: int) -> Iterator[R]:
  """`map(fn, items)` in order on `pool`, with at most `ahead` results computed in advance."""
  pending: collections.deque = collections.deque()
  for item in items:
    pending.append(pool.submit(fn, item))
    if len(pending) > ahead:
      yield pending.popleft().result()
  while pending:
    yield pending.popleft().result()


@functools.partial(jax.jit, static_argnames=("teacher",))
def _teacher_grid(teacher: Teacher, params: Any, images: jax.Array) -> jax.Array:
  """The teacher's patch features of G images uint8 (G, H, W, 3): f32 (G, h, w, D). Its own
  program, compiled once per image size (the point folds compile per point count)."""
  return teacher.apply(params, images, upsample=False)


@functools.partial(jax.jit, static_argnames=("patch_size", "image_size", "zbuffer_stride"))
def _accumulate_views(grid: jax.Array, best: jax.Array, seen: jax.Array, w2c: jax.Array,
                      view_mask: jax.Array, intrinsics: jax.Array, depth: jax.Array | None,
                      depth_intrinsics: jax.Array | None, points: jax.Array,
                      valid: jax.Array, occlusion_tolerance: jax.Array,
                      depth_tolerance: jax.Array, *, patch_size: int,
                      image_size: tuple[int, int], zbuffer_stride: int
                      ) -> tuple[jax.Array, jax.Array]:
  """Folds one group of G views into the running per-point max.

  grid f32 (G, h, w, D) the views' teacher features, best f32 (P, D) (-inf where unseen),
  seen bool (P,), w2c (G, 4, 4), view_mask bool (G,), depth f32 (G, Hd, Wd) or None, points
  f32 (P, 3), valid bool (P,) -> updated (best, seen).
  """
  proj = project_points(points, valid, w2c, intrinsics, image_size,
                        occlusion_tolerance=occlusion_tolerance, zbuffer_stride=zbuffer_stride,
                        depth=depth, depth_intrinsics=depth_intrinsics,
                        depth_tolerance=depth_tolerance)
  visible = proj.visible & view_mask[:, None]
  # The patch grid covers the image up to its last whole patch (a ViT drops the remainder).
  covered = (grid.shape[1] * patch_size, grid.shape[2] * patch_size)

  def fold(best, view):
    view_grid, pixels, vis = view
    feats = sample_features(view_grid[None], pixels[None], covered)[0]
    return jnp.where(vis[:, None], jnp.maximum(best, feats), best), None

  best, _ = jax.lax.scan(fold, best, (grid, proj.pixels, visible))
  return best, seen | visible.any(axis=0)


def teacher_point_features(teacher: Teacher, frames: Mapping[str, Any] | Frames,
                           points: np.ndarray, *, image_size: tuple[int, int] = (320, 240),
                           views_per_batch: int = 8, max_views: int = 0,
                           use_depth: bool = True, occlusion_tolerance: float = 0.05,
                           depth_tolerance: float = 0.1, zbuffer_stride: int = 4
                           ) -> tuple[np.ndarray, np.ndarray]:
  """Max over views of the teacher features at each point's projection (Eq. 3-5).

  Args:
    teacher: a `Teacher`; it runs once per selected frame.
    frames: a record's `frames` dict (paths may be bytes) or a `Frames`.
    points: float32 (N, 3) in the poses' world frame.
    image_size: (W, H) the colour frames are resized to before the teacher.
    views_per_batch: views per device call (fixed; the last group is padded).
    max_views: 0 = every frame with a finite pose, else that many evenly spaced.
    use_depth: confirm visibility with the depth images (when the frames have them).
    occlusion_tolerance, depth_tolerance: metres (see `jaxseg.methods.pointdc.projection`).
    zbuffer_stride: z-buffer cell side in pixels at `image_size`.
  Returns:
    features float32 (N, D), 0 for points no view sees, and seen bool (N,).
  Raises:
    InputError: bad points, no frame with a finite pose, or a missing/unreadable image.
  """
  points = np.asarray(points, np.float32)
  if points.ndim != 2 or points.shape[1] != 3:
    raise InputError(None, f"points have shape {points.shape}, expected (N, 3)",
                     "pass the scene coordinates")
  if views_per_batch < 1:
    raise InputError(None, f"views_per_batch={views_per_batch} must be at least 1",
                     "set cmd.views_per_batch to a positive number of views")
  fields = frame_fields(frames)
  views = select_views(fields["poses"], max_views)
  if not len(views):
    raise InputError(None, "no frame with a finite camera pose",
                     "distillation needs posed RGB-D frames for this scene")
  depth_paths = [fields["depth_paths"][i] for i in views]
  with_depth = use_depth and any(depth_paths) and fields["depth_scale"] > 0
  color_k = resized_intrinsics(fields["color_intrinsics"], fields["color_size"], image_size)
  depth_k = fields["depth_intrinsics"] if with_depth else None

  num_points = points.shape[0]
  padded = capacity.rungs("points", num_points)[-1]
  coords = np.zeros((padded, 3), np.float32)
  coords[:num_points] = points
  valid = np.arange(padded) < num_points
  w2c = np.asarray(world_to_camera(fields["poses"][views]))
  best = jnp.full((padded, teacher.dim), -jnp.inf, jnp.float32)
  seen = jnp.zeros(padded, bool)

  def load(i: int) -> tuple[np.ndarray, np.ndarray | None]:
    color = load_color(fields["color_paths"][views[i]], fields["color_size"], image_size)
    depth = (load_depth(depth_paths[i], fields["depth_size"], fields["depth_scale"])
             if with_depth else None)
    return color, depth

  group = views_per_batch
  width, height = image_size
  with concurrent.futures.ThreadPoolExecutor(_LOAD_WORKERS) as pool:
    loaded = _bounded_map(pool, load, range(len(views)), ahead=2 * group)
    for start in range(0, len(views), group):
      count = min(group, len(views) - start)
      images = np.zeros((group, height, width, 3), np.uint8)
      depth = (np.zeros((group, fields["depth_size"][1], fields["depth_size"][0]), np.float32)
               if with_depth else None)
      transforms = np.full((group, 4, 4), np.nan, np.float32)
      transforms[:count] = w2c[start:start + count]
      for j in range(count):
        images[j], view_depth = next(loaded)
        if with_depth:
          depth[j] = view_depth
      best, seen = _accumulate_views(
          _teacher_grid(teacher, teacher.params, images), best, seen, transforms,
          np.arange(group) < count, color_k, depth, depth_k, coords, valid,
          np.float32(occlusion_tolerance), np.float32(depth_tolerance),
          patch_size=teacher.patch_size, image_size=tuple(image_size),
          zbuffer_stride=int(zbuffer_stride))
  seen_np = np.asarray(seen)[:num_points]
  features = np.where(seen_np[:, None], np.asarray(best)[:num_points], 0.0).astype(np.float32)
  return features, seen_np


def supervoxel_targets(point_features: np.ndarray, seen: np.ndarray, segments: np.ndarray,
                       num_segments: int) -> tuple[np.ndarray, np.ndarray]:
  """Eq. 6: per super-voxel, the mean feature of its points that some view saw.

  Args:
    point_features: float (N, D).
    seen: bool (N,).
    segments: int (N,) super-voxel ids; ids outside [0, num_segments) (e.g. -1) belong to no
      super-voxel.
    num_segments: S.
  Returns:
    targets float32 (S, D) (0 where there is no target) and has_target bool (S,), False for
    super-voxels without a seen point. Sums are accumulated in float64.
  """
  feats = np.asarray(point_features, np.float64)
  ids = np.asarray(segments).astype(np.int64).reshape(-1)
  keep = np.asarray(seen, bool).reshape(-1) & (ids >= 0) & (ids < num_segments)
  sums = np.zeros((num_segments, feats.shape[1]), np.float64)
  counts = np.bincount(ids[keep], minlength=num_segments)[:num_segments]
  if keep.any():
    order = np.argsort(ids[keep], kind="stable")
    sorted_ids = ids[keep][order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    sums[sorted_ids[starts]] = np.add.reduceat(feats[keep][order], starts, axis=0)
  has_target = counts > 0
  targets = sums / np.maximum(counts, 1)[:, None]
  return targets.astype(np.float32), has_target
