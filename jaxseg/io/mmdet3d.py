"""mmdetection3d ScanNet layout.

Under `root`:
  points/<scene>.bin                 float32 (N, 6) x y z r g b, raw (not axis-aligned) frame
  semantic_mask/<scene>.bin          optional int64 (N,) NYU40 ids
  instance_mask/<scene>.bin          optional int64 (N,) instance ids (0 = none)
  super_points/<scene>.bin           optional int64 (N,) super-point ids
  posed_images/<scene>/NNNNN.jpg|png|txt + intrinsic.txt   (also accepted as posed/<scene>/)
      colour 1296x968, depth uint16 mm 640x480, 4x4 camera-to-world poses (raw frame) and the
      4x4 colour intrinsics (depth intrinsics are the colour ones scaled to the depth size)
  scannet_infos_<split>.pkl          (also in meta/) per-scene `axis_align_matrix`

The info pickles are read with a restricted unpickler that only rebuilds numpy arrays.
"""

from __future__ import annotations

import functools
import glob
import io
import os
import pickle

import numpy as np

from jaxseg.data.scene import Frames, Scene
from jaxseg.errors import InputError
from jaxseg.io import files
from jaxseg.io import frames as frames_lib
from jaxseg.io.colors import colors_to_uint8
from jaxseg.io.coords import recentre_alignment, recentre_frames, to_float32_coords
from jaxseg.io.labels import nyu40_file_to_scannet20
from jaxseg.logging_utils import get_logger

_LOG = get_logger("io.mmdet3d")
_POSED_DIRS = ("posed_images", "posed")
_SAFE_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how protocol-2 pickles store bytes (numpy array buffers)
})


class _NumpyOnlyUnpickler(pickle.Unpickler):
  """Unpickler that rebuilds plain containers and numpy arrays and refuses anything else."""

  def find_class(self, module: str, name: str):
    if (module, name) not in _SAFE_GLOBALS:
      raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
    return super().find_class(module, name)


def load_infos(path: str) -> dict[str, dict]:
  """Reads an mmdetection3d `scannet_infos_*.pkl` (v1.1 `{'data_list': [...]}` or the older
  list of dicts); returns {scene id: info dict}."""
  raw = files.read_bytes(path, "info pickle", "check the path")
  try:
    data = _NumpyOnlyUnpickler(io.BytesIO(raw)).load()
  except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError,
          IndexError, TypeError) as e:
    raise InputError(path, f"cannot read the info pickle ({e})",
                     "regenerate it with mmdetection3d's create_data.py (it may only hold "
                     "dicts, lists and numpy arrays)") from e
  entries = data.get("data_list") if isinstance(data, dict) else data
  if not isinstance(entries, list):
    raise InputError(path, "expected a list of per-scene dicts or {'data_list': [...]}",
                     "regenerate it with mmdetection3d's create_data.py")
  infos = {}
  for entry in entries:
    scene = _scene_of(entry)
    if scene:
      infos[scene] = entry
  return infos


def _scene_of(entry) -> str | None:
  if not isinstance(entry, dict):
    return None
  if isinstance(entry.get("point_cloud"), dict) and "lidar_idx" in entry["point_cloud"]:
    return str(entry["point_cloud"]["lidar_idx"])
  lidar = entry.get("lidar_points")
  if isinstance(lidar, dict) and "lidar_path" in lidar:
    return os.path.splitext(os.path.basename(str(lidar["lidar_path"])))[0]
  return None


def _axis_align_matrix(entry: dict) -> np.ndarray | None:
  matrix = entry.get("axis_align_matrix")
  if matrix is None and isinstance(entry.get("annos"), dict):
    matrix = entry["annos"].get("axis_align_matrix")
  if matrix is None:
    return None
  return np.asarray(matrix, np.float32).reshape(4, 4)


def _info_files(root: str) -> list[str]:
  return sorted(glob.glob(os.path.join(root, "scannet_infos_*.pkl")) +
                glob.glob(os.path.join(root, "meta", "scannet_infos_*.pkl")))


@functools.lru_cache(maxsize=8)
def _cached_infos(path: str, mtime: float) -> dict[str, dict]:
  del mtime  # part of the cache key only
  return load_infos(path)


def find_axis_alignment(root: str, scene: str) -> np.ndarray | None:
  """float32 (4, 4) raw -> aligned transform of `scene` from the info pickles under `root`
  (or `root/meta`); None when no pickle lists the scene."""
  for path in _info_files(root):
    files.require_file(path, "info pickle", "check the path")
    entry = _cached_infos(path, os.path.getmtime(path)).get(scene)
    if entry is not None:
      return _axis_align_matrix(entry)
  return None


def list_mmdet3d_scenes(root: str, split: str | None = None) -> list[str]:
  """Scene ids with a `points/<scene>.bin`, sorted; with `split`, only those listed in
  `scannet_infos_<split>.pkl` (under root or root/meta) when it exists."""
  points_dir = os.path.join(root, "points")
  files.require_dir(points_dir, "points/ folder",
                    "pass the mmdetection3d data root (the folder holding points/)")
  scenes = sorted(f[:-4] for f in os.listdir(points_dir) if f.endswith(".bin"))
  if split is None:
    return scenes
  candidates = [os.path.join(d, f"scannet_infos_{split}.pkl")
                for d in (root, os.path.join(root, "meta"))]
  existing = [p for p in candidates if files.optional_file(p, "info pickle")]
  if not existing:
    _LOG.warning("no scannet_infos_%s.pkl in %s: using all %d scenes", split, root, len(scenes))
    return scenes
  wanted = _cached_infos(existing[0], os.path.getmtime(existing[0]))
  return [s for s in scenes if s in wanted]


def read_posed_images(posed_dir: str) -> Frames:
  """Reads `posed_images/<scene>/`: NNNNN.txt poses, NNNNN.jpg colour, NNNNN.png depth and
  intrinsic.txt (colour); depth intrinsics are scaled from the colour ones by image size."""
  ids = [i for i in frames_lib.frame_ids(posed_dir, ".txt") if i != "intrinsic"]
  color_k = frames_lib.read_intrinsics(os.path.join(posed_dir, "intrinsic.txt"))
  return frames_lib.assemble_frames(
      pose_paths=[os.path.join(posed_dir, i + ".txt") for i in ids],
      color_paths=frames_lib.modality_paths(posed_dir, ids, ".jpg", what="colour",
                                            source=posed_dir),
      depth_paths=frames_lib.modality_paths(posed_dir, ids, ".png", what="depth",
                                            source=posed_dir),
      color_intrinsics=color_k, depth_intrinsics=None, source=posed_dir)


def _read_bin(path: str, dtype, what: str) -> np.ndarray:
  raw = files.read_bytes(path, f"{what} file", "re-run mmdetection3d's data preparation for "
                         "this scene")
  if len(raw) % np.dtype(dtype).itemsize:
    raise InputError(path, f"{len(raw)} bytes is not a whole number of {np.dtype(dtype)} "
                     "values (truncated?)", "re-run mmdetection3d's data preparation for this "
                     "scene")
  return np.frombuffer(raw, dtype=dtype).copy()


def _per_point(root: str, folder: str, scene: str, n: int) -> np.ndarray | None:
  """Optional int64 per-point array `<root>/<folder>/<scene>.bin`; None if absent."""
  path = os.path.join(root, folder, scene + ".bin")
  if not files.optional_file(path, f"{folder} file"):
    return None
  values = _read_bin(path, np.int64, folder)
  if values.shape[0] != n:
    raise InputError(path, f"{values.shape[0]} values but points/{scene}.bin has {n} points",
                     "regenerate both files with the same mmdetection3d data preparation")
  return values


def read_mmdet3d_scene(root: str, scene: str, *, with_frames: bool = True) -> Scene:
  """Reads one scene of the mmdetection3d layout.

  Returns:
    Scene with coords float32 (N, 3) in the raw frame (that of the poses), colors uint8,
    labels int32 ScanNet-20 (-1 ignore) / instances int32 / segments int32 [0, S) when the
    semantic_mask / instance_mask / super_points bins exist (else None), axis_alignment
    float32 (4, 4) from the info pickles (or None), frames from posed_images/<scene>/ when
    `with_frames` (InputError when missing).
  """
  points_path = os.path.join(root, "points", scene + ".bin")
  files.require_file(points_path, "point file",
                     f"check that {root} is the mmdetection3d data root holding points/")
  raw = _read_bin(points_path, np.float32, "points")
  if raw.size == 0 or raw.size % 6:
    raise InputError(points_path, f"{raw.size} float32 values is not a whole number of "
                     "(x, y, z, r, g, b) rows (truncated or not 6 features per point)",
                     "re-run mmdetection3d's data preparation for this scene")
  points = raw.reshape(-1, 6)
  n = points.shape[0]
  nyu40 = _per_point(root, "semantic_mask", scene, n)
  instances = _per_point(root, "instance_mask", scene, n)
  super_points = _per_point(root, "super_points", scene, n)
  segments = None
  if super_points is not None:
    segments = np.unique(super_points, return_inverse=True)[1].reshape(-1).astype(np.int32)
  frames = None
  if with_frames:
    posed = [os.path.join(root, d, scene) for d in _POSED_DIRS]
    posed = [files.require_dir(d, "posed-images folder", "check the mmdetection3d export")
             for d in posed if os.path.lexists(d)]
    if not posed:
      raise InputError(os.path.join(root, _POSED_DIRS[0], scene), "posed images not found",
                       "export posed images with mmdetection3d's ScanNet converter, or load "
                       "without frames (with_frames=False)")
    frames = read_posed_images(posed[0])
  coords, origin = to_float32_coords(points[:, :3], points_path)
  labels = None if nyu40 is None else nyu40_file_to_scannet20(
      nyu40, os.path.join(root, "semantic_mask", scene + ".bin"))
  return Scene(name=scene, coords=coords, colors=colors_to_uint8(points[:, 3:6], points_path),
               labels=labels,
               instances=None if instances is None else instances.astype(np.int32),
               segments=segments, frames=recentre_frames(frames, origin),
               axis_alignment=recentre_alignment(find_axis_alignment(root, scene), origin),
               origin=origin, source=points_path).validate()
