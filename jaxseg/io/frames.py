"""Posed RGB-D frames shared by the ScanNet (SensReader export) and mmdetection3d readers.

Reads 4x4 text matrices (poses, intrinsics), image sizes from file headers, and assembles a
`Frames` record, dropping frames whose pose holds inf/NaN (ScanNet has such frames) with a
warning.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np
from PIL import Image

from jaxseg.data.scene import Frames
from jaxseg.errors import InputError
from jaxseg.io import files
from jaxseg.logging_utils import get_logger

_LOG = get_logger("io.frames")


def read_matrix(path: str | os.PathLike, *, fix: str) -> np.ndarray:
  """Reads a whitespace-separated 4x4 (or 3x3) matrix; returns float64 (4, 4) or (3, 3).

  inf/NaN entries are kept (callers decide); a missing file or another entry count raises
  InputError whose fix is `fix`.
  """
  path = os.fspath(path)
  words = files.read_bytes(path, "matrix file", fix).decode(errors="replace").split()
  try:
    values = np.asarray([float(w) for w in words], np.float64)
  except ValueError as e:
    raise InputError(path, f"not a matrix of numbers ({e})", fix) from e
  if values.size not in (9, 16):
    raise InputError(path, f"holds {values.size} numbers, expected 16 (a 4x4 matrix)", fix)
  side = 4 if values.size == 16 else 3
  return values.reshape(side, side)


def read_intrinsics(path: str | os.PathLike) -> np.ndarray:
  """Reads a pinhole intrinsics file (4x4 or 3x3 text); returns float32 (3, 3)."""
  fix = ("export the camera intrinsics as a 4x4 text matrix "
         "(fx 0 cx 0 / 0 fy cy 0 / 0 0 1 0 / 0 0 0 1)")
  k = read_matrix(path, fix=fix)[:3, :3]
  if not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
    raise InputError(os.fspath(path), f"invalid intrinsics (fx={k[0, 0]}, fy={k[1, 1]})", fix)
  return k.astype(np.float32)


def scale_intrinsics(k: np.ndarray, from_size: tuple[int, int],
                     to_size: tuple[int, int]) -> np.ndarray:
  """Rescales (3, 3) intrinsics of an image of `from_size` (width, height) to `to_size`.

  fx, cx scale by to_w / from_w and fy, cy by to_h / from_h (ScanNet colour 1296x968 -> depth
  640x480). Returns float32 (3, 3).
  """
  out = np.array(k, np.float64)
  out[0, :] *= to_size[0] / from_size[0]
  out[1, :] *= to_size[1] / from_size[1]
  return out.astype(np.float32)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
  """(width, height) of an image, read from its header only."""
  path = files.require_file(os.fspath(path), "image", "re-export the frame images (jpg/png)")
  try:
    with Image.open(path) as im:
      return im.size
  except (OSError, ValueError) as e:
    raise InputError(path, f"cannot read the image header ({e})",
                     "re-export the frame images (jpg/png)") from e


def frame_sort_key(frame_id: str) -> tuple[int, str]:
  """Sorts integer frame ids numerically ('2' before '10'), others after them by name."""
  return (int(frame_id), frame_id) if re.fullmatch(r"\d+", frame_id) else (1 << 62, frame_id)


def frame_ids(directory: str, extension: str) -> list[str]:
  """File stems in `directory` with `extension` (e.g. '.txt'), in `frame_sort_key` order;
  [] when the directory is absent."""
  if not os.path.lexists(directory):
    return []
  files.require_dir(directory, "frames folder", "re-export the frames")
  stems = [f[:-len(extension)] for f in os.listdir(directory) if f.endswith(extension)]
  return sorted(stems, key=frame_sort_key)


def assemble_frames(pose_paths: Sequence[str], color_paths: Sequence[str],
                    depth_paths: Sequence[str], color_intrinsics: np.ndarray,
                    depth_intrinsics: np.ndarray | None, *, source: str,
                    depth_scale: float = 1000.0) -> Frames:
  """Reads the poses and builds `Frames`.

  Args:
    pose_paths: V text files, each a 4x4 camera-to-world matrix.
    color_paths, depth_paths: V image paths each ("" where the modality is absent).
    color_intrinsics: float (3, 3) for the colour images.
    depth_intrinsics: float (3, 3) for the depth images, or None to derive them by scaling the
      colour intrinsics to the depth image size.
    source: directory named in errors and warnings.
    depth_scale: depth units per metre.

  Returns:
    Frames with the frames whose pose is finite (others dropped with a warning).

  Raises:
    InputError: missing pose file, no frame, or no frame with a finite pose.
  """
  if not pose_paths:
    raise InputError(source, "no posed frames found",
                     "export the RGB-D frames (pose/*.txt, color/*.jpg, depth/*.png), or load "
                     "without frames (with_frames=False)")
  fix = "re-export the frames; every frame needs a 4x4 camera-to-world pose text file"
  poses = np.stack([read_matrix(p, fix=fix) for p in pose_paths])
  if poses.shape[1:] != (4, 4):
    raise InputError(source, "poses must be 4x4 matrices", fix)
  finite = np.isfinite(poses).all(axis=(1, 2))
  if not finite.all():
    dropped = [os.path.basename(p) for p, ok in zip(pose_paths, finite) if not ok]
    _LOG.warning("%s: dropping %d of %d frames whose pose holds inf/NaN (%s%s)", source,
                 len(dropped), len(pose_paths), ", ".join(dropped[:5]),
                 ", ..." if len(dropped) > 5 else "")
  if not finite.any():
    raise InputError(source, "no frame has a finite camera pose",
                     "re-export the frames; ScanNet marks failed tracking with -inf poses")
  keep = np.flatnonzero(finite)
  color_paths = [color_paths[i] for i in keep]
  depth_paths = [depth_paths[i] for i in keep]
  color_size = image_size(color_paths[0]) if color_paths[0] else (0, 0)
  depth_size = image_size(depth_paths[0]) if depth_paths[0] else (0, 0)
  if depth_intrinsics is None:
    if not (color_paths[0] and depth_paths[0]):
      raise InputError(source, "cannot derive depth intrinsics without colour and depth images",
                       "provide both colour and depth images, or the depth intrinsics")
    depth_intrinsics = scale_intrinsics(color_intrinsics, color_size, depth_size)
  return Frames(color_paths=color_paths, depth_paths=depth_paths,
                poses=poses[keep].astype(np.float32),
                color_intrinsics=np.asarray(color_intrinsics, np.float32),
                depth_intrinsics=np.asarray(depth_intrinsics, np.float32),
                color_size=color_size, depth_size=depth_size, depth_scale=depth_scale)


def modality_paths(directory: str, ids: Sequence[str], extension: str, *, what: str,
                   source: str) -> list[str]:
  """Paths `<directory>/<id><extension>` for every frame id; all "" when the directory is
  absent (modality not exported, warned); InputError when only some frames are missing."""
  if not os.path.lexists(directory):
    _LOG.warning("%s: no %s images (%s missing)", source, what, directory)
    return [""] * len(ids)
  files.require_dir(directory, f"{what} image folder", "re-export the frames")
  paths = [os.path.join(directory, i + extension) for i in ids]
  for p in paths:
    files.require_file(p, f"{what} image of a posed frame",
                       "re-export the frames so every pose has its colour and depth image")
  return paths
