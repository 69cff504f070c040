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
from jaxseg.io import mmdet3d
from jaxseg.io.labels import nyu40_to_scannet20

_SUFFIX = "_vert.npy"


def list_votenet_scenes(directory: str) -> list[str]:
  """Scene ids (e.g. 'scene0000_00') with a `_vert.npy` in `directory`, sorted."""
  if not os.path.isdir(directory):
    raise InputError(directory, "VoteNet export folder does not exist",
                     "pass the folder holding <scene>_vert.npy files")
  paths = sorted(glob.glob(os.path.join(directory, "*" + _SUFFIX)))
  return [os.path.basename(p)[:-len(_SUFFIX)] for p in paths]


def _load(path: str) -> np.ndarray:
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise InputError(path, f"cannot read .npy ({e})", "re-export the file with numpy.save") from e


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
  if not os.path.isdir(posed_dir):
    return None
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
  if not os.path.isfile(vert_path):
    raise InputError(vert_path, "vertex file not found",
                     f"check that {directory} holds VoteNet exports named <scene>_vert.npy")
  vert = _load(vert_path)
  if vert.ndim != 2 or vert.shape[1] < 6 or vert.dtype.kind not in "fiu":
    raise InputError(vert_path, f"array has shape {vert.shape} and dtype {vert.dtype}, "
                     "expected numeric (N, 6) xyz rgb", "export x, y, z, r, g, b per vertex")
  labels = instances = None
  sem_path = os.path.join(directory, scene + "_sem_label.npy")
  if os.path.isfile(sem_path):
    labels = nyu40_to_scannet20(_load_per_point(sem_path, vert.shape[0]))
  ins_path = os.path.join(directory, scene + "_ins_label.npy")
  if os.path.isfile(ins_path):
    instances = _load_per_point(ins_path, vert.shape[0]).astype(np.int32)
  frames = None if frames_root is None else read_aligned_frames(frames_root, scene, meta_dir)
  return Scene(name=scene, coords=vert[:, :3].astype(np.float32),
               colors=np.clip(vert[:, 3:6], 0, 255).astype(np.uint8), labels=labels,
               instances=instances, frames=frames, source=vert_path).validate()
