"""Writes a generated scene in the ScanNet v2 release format plus the SensReader 2D export.

Files under `<out>/<scene>/`: `<scene>_vh_clean_2.ply`, `<scene>_vh_clean_2.labels.ply`,
`<scene>_vh_clean_2.0.010000.segs.json`, `<scene>.aggregation.json`, `<scene>.txt`, and
`color/<i>.jpg`, `depth/<i>.png` (uint16 mm), `pose/<i>.txt`, `intrinsic/*.txt`.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from jaxseg.io.ply import write_ply
from jaxseg.synthetic.mesh import Mesh
from jaxseg.synthetic.rooms import NYU40_CLASS_NAMES, RAW_CATEGORY_NYU40

_SEGS_PARAMS = {"kThresh": "0.0001", "segMinVerts": "20", "minPoints": "750",
                "maxPoints": "5000", "thinThresh": "0.05", "flatThresh": "0.001",
                "minLength": "0.02", "maxLength": "1"}


def _write_matrix(path: str, matrix: np.ndarray) -> None:
  """A 4x4 matrix as SensReader writes it: one row per line, '%f' numbers."""
  with open(path, "w") as f:
    for row in np.asarray(matrix, np.float64):
      f.write(" ".join(f"{x:f}" for x in row) + "\n")


def scannet_segment_ids(segments: np.ndarray) -> np.ndarray:
  """ScanNet-style segment ids: each vertex gets the smallest vertex index of its segment
  (int64 (N,), not contiguous, like real segs.json files). segments: int (N,) in [0, S)."""
  n = len(segments)
  first = np.full(int(segments.max()) + 1 if n else 0, n, np.int64)
  np.minimum.at(first, segments, np.arange(n))
  return first[segments]


def write_mesh_files(scene_dir: str, scene_id: str, mesh: Mesh, vertices_raw: np.ndarray,
                     categories: list[str]) -> None:
  """Writes the mesh, labelled mesh, over-segmentation and aggregation of one scene.

  vertices_raw: float32 (N, 3) mesh vertices in the raw (not axis-aligned) frame;
  categories: raw ScanNet category of each object index used in `mesh.objects`.
  """
  stem = os.path.join(scene_dir, scene_id)
  alpha = np.full(len(vertices_raw), 255, np.uint8)
  vertex = {"x": vertices_raw[:, 0].astype(np.float32), "y": vertices_raw[:, 1].astype(np.float32),
            "z": vertices_raw[:, 2].astype(np.float32), "red": mesh.colors[:, 0],
            "green": mesh.colors[:, 1], "blue": mesh.colors[:, 2], "alpha": alpha}
  write_ply(stem + "_vh_clean_2.ply", vertex, mesh.faces)
  write_ply(stem + "_vh_clean_2.labels.ply", {**vertex, "label": mesh.nyu40.astype(np.uint16)},
            mesh.faces)
  seg_ids = scannet_segment_ids(mesh.segments)
  with open(stem + "_vh_clean_2.0.010000.segs.json", "w") as f:
    json.dump({"params": _SEGS_PARAMS, "sceneId": scene_id,
               "segIndices": seg_ids.tolist()}, f)
  groups = []
  for obj in np.unique(mesh.objects):
    segs = np.unique(seg_ids[mesh.objects == obj]).tolist()
    groups.append({"id": len(groups), "objectId": len(groups), "segments": segs,
                   "label": categories[obj]})
  with open(stem + ".aggregation.json", "w") as f:
    json.dump({"sceneId": f"scannet.{scene_id}", "appId": "jaxseg.synthetic",
               "segGroups": groups,
               "segmentsFile": f"scannet.{scene_id}_vh_clean_2.0.010000.segs.json"}, f)


def write_scene_info(scene_dir: str, scene_id: str, axis_alignment: np.ndarray, scene_type: str,
                     color_intrinsics: np.ndarray, color_size: tuple[int, int],
                     depth_intrinsics: np.ndarray, depth_size: tuple[int, int],
                     num_frames: int) -> None:
  """Writes `<scene>.txt` (axisAlignment and camera metadata) and `intrinsic/*.txt`."""
  lines = {
      "axisAlignment": " ".join(f"{x:.6f}" for x in np.asarray(axis_alignment).reshape(-1)),
      "colorHeight": color_size[1],
      "colorToDepthExtrinsics": " ".join(f"{x:.6f}" for x in np.eye(4).reshape(-1)),
      "colorWidth": color_size[0], "depthHeight": depth_size[1], "depthWidth": depth_size[0],
      "fx_color": f"{color_intrinsics[0, 0]:.6f}", "fx_depth": f"{depth_intrinsics[0, 0]:.6f}",
      "fy_color": f"{color_intrinsics[1, 1]:.6f}", "fy_depth": f"{depth_intrinsics[1, 1]:.6f}",
      "mx_color": f"{color_intrinsics[0, 2]:.6f}", "mx_depth": f"{depth_intrinsics[0, 2]:.6f}",
      "my_color": f"{color_intrinsics[1, 2]:.6f}", "my_depth": f"{depth_intrinsics[1, 2]:.6f}",
      "numColorFrames": num_frames, "numDepthFrames": num_frames, "sceneType": scene_type,
  }
  with open(os.path.join(scene_dir, f"{scene_id}.txt"), "w") as f:
    f.writelines(f"{k} = {v}\n" for k, v in lines.items())
  intrinsic_dir = os.path.join(scene_dir, "intrinsic")
  os.makedirs(intrinsic_dir, exist_ok=True)
  for name, k3 in (("color", color_intrinsics), ("depth", depth_intrinsics)):
    k4 = np.eye(4)
    k4[:3, :3] = k3
    _write_matrix(os.path.join(intrinsic_dir, f"intrinsic_{name}.txt"), k4)
    _write_matrix(os.path.join(intrinsic_dir, f"extrinsic_{name}.txt"), np.eye(4))


def write_frame(scene_dir: str, index: int, rgb: np.ndarray, depth_m: np.ndarray,
                pose_raw: np.ndarray, jpeg_quality: int = 90) -> None:
  """Writes frame `index`: rgb uint8 (H, W, 3) -> color/<i>.jpg, depth float (h, w) metres
  (0 = invalid) -> depth/<i>.png uint16 millimetres, pose (4, 4) camera-to-world (raw frame)
  -> pose/<i>.txt."""
  for sub in ("color", "depth", "pose"):
    os.makedirs(os.path.join(scene_dir, sub), exist_ok=True)
  Image.fromarray(rgb).save(os.path.join(scene_dir, "color", f"{index}.jpg"),
                            quality=jpeg_quality)
  depth_mm = np.clip(np.round(np.asarray(depth_m, np.float64) * 1000.0), 0, 65535)
  Image.fromarray(depth_mm.astype(np.uint16)).save(
      os.path.join(scene_dir, "depth", f"{index}.png"), compress_level=1)
  _write_matrix(os.path.join(scene_dir, "pose", f"{index}.txt"), pose_raw)


def write_label_map(path: str, counts: dict[str, int]) -> None:
  """A minimal `scannetv2-labels.combined.tsv` covering only the generator's raw categories
  (columns id, raw_category, category, count, nyu40id, nyu40class); count = instances
  generated."""
  with open(path, "w") as f:
    f.write("id\traw_category\tcategory\tcount\tnyu40id\tnyu40class\n")
    for i, (raw, nyu40) in enumerate(sorted(RAW_CATEGORY_NYU40.items()), start=1):
      f.write(f"{i}\t{raw}\t{raw}\t{counts.get(raw, 0)}\t{nyu40}\t{NYU40_CLASS_NAMES[nyu40]}\n")
