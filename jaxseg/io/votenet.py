"""VoteNet-style ScanNet exports: `<scene>_vert.npy`, `_sem_label.npy`, `_ins_label.npy`.

`_vert.npy` is float32 (N, 6) xyz (metres, axis-aligned) + rgb 0..255; `_sem_label.npy` holds
NYU40 ids (0 = unannotated) and `_ins_label.npy` instance ids (0 = none).

Frames (optional): the export has none, but posed RGB-D frames in mmdetection3d's
"posed_images" layout (`<frames_root>/<scene>/NNNNN.jpg|png|txt` + `intrinsic.txt`) can be
attached. Their camera-to-world poses are in the raw scan frame while the points are
axis-aligned, so each pose is left-multiplied by the scene's `axis_align_matrix`, read from
mmdetection3d's `scannet_infos_*.pkl`. Those are looked up in `meta_dir` (or `meta_dir/meta`)
when given, else beside the frames: in the parent of `frames_root` or its `meta/` folder (the
layout of the ScanNet mini set: `<mini>/posed/` next to `<mini>/meta/*.pkl`).
"""

from __future__ import annotations

import glob
import os

import numpy as np

from jaxseg.data.scene import Frames, Scene
from jaxseg.errors import InputError
from jaxseg.io import files, mmdet3d
from jaxseg.io.colors import colors_to_uint8
from jaxseg.io.coords import recentre_frames, to_float32_coords
from jaxseg.io.labels import nyu40_file_to_scannet20
from jaxseg.io.npy import load_npy

_SUFFIX = "_vert.npy"


def list_votenet_scenes(directory: str) -> list[str]:
  """Scene ids (e.g. 'scene0000_00') with a `_vert.npy` in `directory`, sorted (dangling or
  looping `_vert.npy` links included: reading them reports the link)."""
  files.require_dir(directory, "VoteNet export folder",
                    "pass the folder holding <scene>_vert.npy files")
  paths = sorted(glob.glob(os.path.join(directory, "*" + _SUFFIX)))
  return [os.path.basename(p)[:-len(_SUFFIX)] for p in paths]


def _load(path: str) -> np.ndarray:
  return load_npy(path, "re-export the file with numpy.save(path, array) from a numeric array")


def _load_per_point(path: str, num_points: int) -> np.ndarray:
  """An integer (N,) array that must have one entry per vertex."""
  values = _load(path)
  if values.shape != (num_points,) or values.dtype.kind not in "iu":
    raise InputError(path, f"array of shape {values.shape} and dtype {values.dtype}, expected "
                     f"integers of shape ({num_points},) (one per vertex of _vert.npy)",
                     "export labels for exactly the vertices of <scene>_vert.npy")
  return values


def read_aligned_frames(frames_root: str, scene: str,
                        meta_dir: str | None = None) -> Frames | None:
  """Posed frames `<frames_root>/<scene>/` with poses moved into the axis-aligned frame.

  Returns:
    Frames whose poses are float32 (V, 4, 4) `axis_align_matrix @ pose_raw`, or None when
    the scene has no frames folder.
  Raises:
    InputError: the frames exist but no info pickle gives the scene's axis_align_matrix.
  """
  posed_dir = os.path.join(frames_root, scene)
  if not os.path.lexists(posed_dir):
    return None
  files.require_dir(posed_dir, "posed-images folder", "check data.frames_root")
  meta_root = meta_dir or os.path.dirname(os.path.abspath(frames_root))
  align = mmdet3d.find_axis_alignment(meta_root, scene)
  if align is None:
    raise InputError(posed_dir, f"no axis_align_matrix for {scene} in scannet_infos_*.pkl "
                     f"under {meta_root} (or its meta/); the VoteNet points are axis-aligned "
                     "but the poses are in the raw scan frame",
                     "put mmdetection3d's scannet_infos_*.pkl beside the frames folder (or "
                     "in meta/ there), or pass meta_dir")
  frames = mmdet3d.read_posed_images(posed_dir)
  frames.poses = (align.astype(np.float64) @ frames.poses.astype(np.float64)).astype(
      np.float32)
  return frames


def read_votenet_scene(directory: str, scene: str, *, frames_root: str | None = None,
                       meta_dir: str | None = None) -> Scene:
  """Reads one scene; labels are mapped NYU40 -> ScanNet-20 (-1 ignore) when present.

  Args:
    directory: the folder of `<scene>_vert.npy` files.
    scene: scene id.
    frames_root: optional posed_images folder (`<frames_root>/<scene>/`); the scene gets
      frames=None when it has no folder there (see the module docstring).
    meta_dir: optional folder of `scannet_infos_*.pkl` (default: beside `frames_root`).
  """
  vert_path = os.path.join(directory, scene + _SUFFIX)
  files.require_file(vert_path, "vertex file",
                     f"check that {directory} holds VoteNet exports named <scene>_vert.npy")
  vert = _load(vert_path)
  # (6..16, N) with more points than any row of features has columns: one row per feature.
  if vert.ndim == 2 and 6 <= vert.shape[0] <= 16 < vert.shape[1]:
    raise InputError(vert_path, f"array has shape {vert.shape}: it looks transposed (one row "
                     "per coordinate instead of one row per vertex)",
                     "save the transposed array, numpy.save(path, vert.T), of shape (N, 6)")
  if vert.ndim != 2 or vert.shape[1] < 6 or vert.dtype.kind not in "fiu":
    raise InputError(vert_path, f"array has shape {vert.shape} and dtype {vert.dtype}, "
                     "expected numeric (N, 6) xyz rgb", "export x, y, z, r, g, b per vertex")
  labels = instances = None
  sem_path = os.path.join(directory, scene + "_sem_label.npy")
  if files.optional_file(sem_path, "label file"):
    labels = nyu40_file_to_scannet20(_load_per_point(sem_path, vert.shape[0]), sem_path)
  ins_path = os.path.join(directory, scene + "_ins_label.npy")
  if files.optional_file(ins_path, "instance file"):
    instances = _load_per_point(ins_path, vert.shape[0]).astype(np.int32)
  coords, origin = to_float32_coords(vert[:, :3], vert_path)
  frames = None if frames_root is None else read_aligned_frames(frames_root, scene, meta_dir)
  return Scene(name=scene, coords=coords, colors=colors_to_uint8(vert[:, 3:6], vert_path),
               labels=labels, instances=instances, frames=recentre_frames(frames, origin),
               origin=origin, source=vert_path).validate()
