"""ScanNet v2 raw scans (the official `scans/` folder) and their SensReader 2D export.

Per scene `<root>/<scene>/`:
  <scene>_vh_clean_2.ply                 binary mesh: x y z float, red green blue alpha uchar,
                                         faces `list uchar int vertex_indices`
  <scene>_vh_clean_2.labels.ply          same vertices with `label` (ushort NYU40 id)
  <scene>_vh_clean_2.0.010000.segs.json  {"segIndices": [per-vertex segment id], ...}
  <scene>.aggregation.json               {"segGroups": [{objectId, segments, label}, ...]}
  <scene>.txt                            `axisAlignment = <16 floats, row-major 4x4>`
SensReader export (in `<root>/<scene>/` or `<frames_root>/<scene>/`):
  color/<i>.jpg, depth/<i>.png (uint16 mm), pose/<i>.txt (4x4 camera-to-world),
  intrinsic/intrinsic_color.txt, intrinsic/intrinsic_depth.txt (4x4)

Coordinates stay in the raw scan frame (the frame of the camera poses); the axis alignment is
returned in `Scene.axis_alignment`.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from jaxseg.data.scene import Frames, Scene
from jaxseg.errors import InputError
from jaxseg.io import files
from jaxseg.io import frames as frames_lib
from jaxseg.io.colors import colors_to_uint8
from jaxseg.io.coords import recentre_alignment, recentre_frames, to_float32_coords
from jaxseg.io.labels import (nyu40_file_to_scannet20, nyu40_to_scannet20,
                              read_raw_category_map)
from jaxseg.io.ply import read_ply
from jaxseg.logging_utils import get_logger

_LOG = get_logger("io.scannet")
LABEL_MAP_NAME = "scannetv2-labels.combined.tsv"
_MESH_SUFFIX = "_vh_clean_2.ply"
_REEXPORT = "re-download the scan from ScanNet (files of one scan must come from one release)"
_SCENE_NAME = re.compile(r"scene\d{4}_\d{2}")
# Files that make a folder a scan even when its mesh is missing or misnamed.
_SCAN_FILE_SUFFIXES = (".ply", ".sens", ".aggregation.json", ".segs.json")


def _is_scan_folder(root: str, name: str) -> bool:
  """Whether `<root>/<name>` is a scan folder: named like one, or holding scan files."""
  folder = os.path.join(root, name)
  if name.startswith(".") or not os.path.isdir(folder):
    return False
  if _SCENE_NAME.fullmatch(name) or os.path.lexists(os.path.join(folder, name + _MESH_SUFFIX)):
    return True
  try:
    return any(f.endswith(_SCAN_FILE_SUFFIXES) for f in os.listdir(folder))
  except OSError:
    return True  # unreadable: reading the scene reports why


def list_scannet_scenes(root: str, split: str | None = None) -> list[str]:
  """Scene ids under `root`, sorted: every scan folder (named `sceneXXXX_XX` or holding scan
  files), also those whose mesh is missing or a broken link (reading them says so), so that no
  scan is dropped silently. Other folders are named in a log line.

  With `split` (e.g. 'train'), keeps the ids listed in `<root>/scannetv2_<split>.txt` when that
  file exists (a warning and all scenes otherwise).
  """
  files.require_dir(root, "ScanNet root directory",
                    "pass the folder that holds the scene directories (ScanNet's scans/)")
  names = sorted(os.listdir(root))
  scenes = [d for d in names if _is_scan_folder(root, d)]
  others = [d for d in names if d not in scenes and not d.startswith(".")
            and os.path.isdir(os.path.join(root, d))]
  if others:
    _LOG.info("%s: ignoring %d folders that hold no scan: %s", root, len(others),
              ", ".join(others[:10]))
  if split is None:
    return scenes
  split_file = os.path.join(root, f"scannetv2_{split}.txt")
  if not files.optional_file(split_file, "split file"):
    _LOG.warning("%s not found: using all %d scenes for split %r", split_file, len(scenes), split)
    return scenes
  wanted = {line.strip() for line in files.read_bytes(split_file, "split file", "check the path"
                                                      ).decode(errors="replace").splitlines()
            if line.strip()}
  missing = sorted(wanted - set(scenes))
  if missing:
    _LOG.warning("%s lists %d scenes that have no folder in %s: %s%s", split_file, len(missing),
                 root, ", ".join(missing[:5]), ", ..." if len(missing) > 5 else "")
  return [s for s in scenes if s in wanted]


def read_segments(path: str, num_vertices: int) -> tuple[np.ndarray, np.ndarray]:
  """Reads segs.json; returns (raw segment id per vertex int64 (N,), contiguous id int32 (N,)
  in [0, S))."""
  data = _read_json(path)
  seg = data.get("segIndices") if isinstance(data, dict) else None
  if not isinstance(seg, list):
    raise InputError(path, "no 'segIndices' list in the segmentation file", _REEXPORT)
  raw = np.asarray(seg, np.int64)
  if raw.shape != (num_vertices,):
    raise InputError(path, f"{raw.size} segment indices but the mesh has {num_vertices} "
                     "vertices", _REEXPORT)
  _, contiguous = np.unique(raw, return_inverse=True)
  return raw, contiguous.astype(np.int32).reshape(-1)


def read_aggregation(path: str, raw_segments: np.ndarray,
                     category_to_nyu40: dict[str, int] | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
  """Reads `<scene>.aggregation.json`.

  Args:
    path: the aggregation file.
    raw_segments: int (N,) raw segment id per vertex (from segs.json).
    category_to_nyu40: raw category -> NYU40 id; when given, NYU40 labels are returned too.

  Returns:
    instances int32 (N,) = objectId + 1 (0 = none), and NYU40 ids int32 (N,) (0 = none) or None.
  """
  data = _read_json(path)
  groups = data.get("segGroups") if isinstance(data, dict) else None
  if not isinstance(groups, list):
    raise InputError(path, "no 'segGroups' list in the aggregation file", _REEXPORT)
  unique, inverse = np.unique(raw_segments, return_inverse=True)
  segment_instance = np.zeros(len(unique), np.int32)
  segment_nyu40 = np.zeros(len(unique), np.int32)
  for group in groups:
    try:
      object_id = int(group.get("objectId", group.get("id")))
      members = np.asarray(group["segments"], np.int64)
      category = str(group.get("label", ""))
    except (KeyError, TypeError, ValueError) as e:
      raise InputError(path, f"malformed segGroup {str(group)[:80]!r} ({e})", _REEXPORT) from e
    where = np.searchsorted(unique, members)
    where = np.minimum(where, len(unique) - 1)
    if members.size and not (unique[where] == members).all():
      raise InputError(path, f"object {object_id} references segment ids absent from the "
                       "segmentation file", _REEXPORT)
    segment_instance[where] = object_id + 1
    if category_to_nyu40 is not None:
      segment_nyu40[where] = category_to_nyu40.get(category, 0)
  inverse = inverse.reshape(-1)
  nyu40 = segment_nyu40[inverse] if category_to_nyu40 is not None else None
  return segment_instance[inverse], nyu40


def read_axis_alignment(path: str) -> np.ndarray | None:
  """Reads `axisAlignment = 16 floats` from `<scene>.txt`; float32 (4, 4) or None if absent."""
  if not files.optional_file(path, "scene info file"):
    return None
  text = files.read_bytes(path, "scene info file", _REEXPORT).decode(errors="replace")
  for line in text.splitlines():
    key, _, value = line.partition("=")
    if key.strip() == "axisAlignment":
      try:
        matrix = np.asarray([float(v) for v in value.split()], np.float64)
      except ValueError as e:
        raise InputError(path, f"axisAlignment is not numeric ({e})", _REEXPORT) from e
      if matrix.size != 16 or not np.isfinite(matrix).all():
        raise InputError(path, "axisAlignment must hold 16 finite numbers", _REEXPORT)
      return matrix.reshape(4, 4).astype(np.float32)
  return None


def read_sens_export(export_dir: str) -> Frames:
  """Reads a SensReader export folder (color/, depth/, pose/, intrinsic/) into Frames;
  frames with an inf/NaN pose are dropped with a warning."""
  pose_dir = os.path.join(export_dir, "pose")
  color_dir = os.path.join(export_dir, "color")
  depth_dir = os.path.join(export_dir, "depth")
  ids = set(frames_lib.frame_ids(pose_dir, ".txt"))
  ids |= set(frames_lib.frame_ids(color_dir, ".jpg"))
  ids |= set(frames_lib.frame_ids(depth_dir, ".png"))
  ids = sorted(ids, key=frames_lib.frame_sort_key)
  if not ids:
    raise InputError(export_dir, "no SensReader export found (pose/, color/, depth/ missing)",
                     "export the .sens file with ScanNet's SensReader (--export_color_images "
                     "--export_depth_images --export_poses --export_intrinsics), or load "
                     "without frames (with_frames=False)")
  color_k = frames_lib.read_intrinsics(os.path.join(export_dir, "intrinsic",
                                                    "intrinsic_color.txt"))
  depth_k = frames_lib.read_intrinsics(os.path.join(export_dir, "intrinsic",
                                                    "intrinsic_depth.txt"))
  return frames_lib.assemble_frames(
      pose_paths=[os.path.join(pose_dir, i + ".txt") for i in ids],
      color_paths=frames_lib.modality_paths(color_dir, ids, ".jpg", what="colour",
                                            source=export_dir),
      depth_paths=frames_lib.modality_paths(depth_dir, ids, ".png", what="depth",
                                            source=export_dir),
      color_intrinsics=color_k, depth_intrinsics=depth_k, source=export_dir)


def read_scannet_scene(root: str, scene: str, *, with_frames: bool = True,
                       frames_root: str | None = None, label_map: str | None = None) -> Scene:
  """Reads one raw ScanNet scan.

  Args:
    root: folder holding `<scene>/` directories.
    scene: scene id, e.g. 'scene0000_00'.
    with_frames: read the SensReader export (InputError when it is missing).
    frames_root: folder holding `<scene>/color|depth|pose|intrinsic`; default `root`.
    label_map: `scannetv2-labels.combined.tsv`, needed only to label a scan that has an
      aggregation file but no labels.ply; default `<root>/` or its parent's copy.

  Returns:
    Scene with coords float32 (N, 3) (raw frame), colors uint8, faces int32 (F, 3), labels
    int32 ScanNet-20 (-1 ignore) or None, instances int32 (0 none) or None, segments int32 in
    [0, S) or None when segs.json is absent, axis_alignment float32 (4, 4) or None, frames.
  """
  scene_dir = os.path.join(root, scene)
  mesh_path = os.path.join(scene_dir, scene + _MESH_SUFFIX)
  files.require_file(mesh_path, "ScanNet mesh",
                     f"put the scan's mesh at {mesh_path} (ScanNet names it "
                     f"<scene>{_MESH_SUFFIX}), or drop the folder {scene_dir}")
  mesh = read_ply(mesh_path)
  vertex = mesh.get("vertex")
  if vertex is None or not {"x", "y", "z"} <= set(vertex):
    raise InputError(mesh_path, "the PLY has no vertex element with x, y, z", _REEXPORT)
  n = len(vertex["x"])
  if n == 0:
    raise InputError(mesh_path, "the mesh has no vertices", _REEXPORT)
  coords, origin = to_float32_coords(np.stack([vertex[k] for k in "xyz"], axis=1), mesh_path)
  if {"red", "green", "blue"} <= set(vertex):
    colors = colors_to_uint8(np.stack([vertex[k] for k in ("red", "green", "blue")], 1),
                             mesh_path)
  else:
    colors = np.full((n, 3), 128, np.uint8)
  faces = mesh.get("face", {}).get("vertex_indices")
  if faces is not None and not (isinstance(faces, np.ndarray) and faces.ndim == 2
                                and faces.shape[1] == 3):
    _LOG.warning("%s: faces are not all triangles; dropping them", mesh_path)
    faces = None

  labels = _read_labels_ply(os.path.join(scene_dir, scene + "_vh_clean_2.labels.ply"), n)
  segments = instances = None
  segs_path = os.path.join(scene_dir, scene + "_vh_clean_2.0.010000.segs.json")
  agg_path = os.path.join(scene_dir, scene + ".aggregation.json")
  has_aggregation = files.optional_file(agg_path, "aggregation file")
  if files.optional_file(segs_path, "segmentation file"):
    raw_segments, segments = read_segments(segs_path, n)
    if has_aggregation:
      category_map = None
      if labels is None:
        tsv = _find_label_map(root, label_map)
        category_map = read_raw_category_map(tsv) if tsv else None
      instances, nyu40 = read_aggregation(agg_path, raw_segments, category_map)
      if nyu40 is not None:
        labels = nyu40_to_scannet20(nyu40)
  elif has_aggregation:
    _LOG.warning("%s: no segs.json, so instances from %s cannot be used", scene_dir, agg_path)
  frames = None
  if with_frames:
    frames = read_sens_export(os.path.join(frames_root or root, scene))
  alignment = read_axis_alignment(os.path.join(scene_dir, scene + ".txt"))
  return Scene(name=scene, coords=coords, colors=colors, labels=labels, instances=instances,
               segments=segments, faces=None if faces is None else faces.astype(np.int32),
               frames=recentre_frames(frames, origin),
               axis_alignment=recentre_alignment(alignment, origin), origin=origin,
               source=mesh_path).validate()


def _read_labels_ply(path: str, num_vertices: int) -> np.ndarray | None:
  """ScanNet-20 labels int32 (N,) from `<scene>_vh_clean_2.labels.ply`, None if absent."""
  if not files.optional_file(path, "label mesh"):
    return None
  vertex = read_ply(path).get("vertex", {})
  if "label" not in vertex:
    raise InputError(path, "no 'label' vertex property", _REEXPORT)
  if vertex["label"].shape[0] != num_vertices:
    raise InputError(path, f"{vertex['label'].shape[0]} labelled vertices but the mesh has "
                     f"{num_vertices}", _REEXPORT)
  return nyu40_file_to_scannet20(vertex["label"], path)


def _find_label_map(root: str, label_map: str | None) -> str | None:
  if label_map:
    return label_map
  for candidate in (os.path.join(root, LABEL_MAP_NAME),
                    os.path.join(os.path.dirname(os.path.abspath(root)), LABEL_MAP_NAME)):
    if files.optional_file(candidate, "ScanNet label map"):
      return candidate
  _LOG.warning("%s not found in %s or its parent: scans without labels.ply stay unlabelled",
               LABEL_MAP_NAME, root)
  return None


def _read_json(path: str):
  text = files.read_bytes(path, "JSON file", _REEXPORT)
  try:
    return json.loads(text)
  except ValueError as e:
    raise InputError(path, f"cannot parse JSON ({e})", _REEXPORT) from e
