"""Tests for jaxseg.io.scannet on a small scan written here in the raw ScanNet v2 layout."""

import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from jaxseg.errors import InputError
from jaxseg.io import scannet

SCENE = "scene0042_00"
N, F = 40, 20
# NYU40 id -> ScanNet-20 class index, typed from the ScanNet benchmark's class list.
_BENCHMARK = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6, 8: 7, 9: 8, 10: 9, 11: 10, 12: 11,
              14: 12, 16: 13, 24: 14, 28: 15, 33: 16, 34: 17, 36: 18, 39: 19}


def _write_mesh(path, coords, colors, faces, label=None):
  """Binary little-endian PLY as ScanNet writes it, built from a numpy structured array."""
  props = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
  props += [("red", "u1"), ("green", "u1"), ("blue", "u1"), ("alpha", "u1")]
  if label is not None:
    props.append(("label", "<u2"))
  rec = np.zeros(len(coords), dtype=props)
  rec["x"], rec["y"], rec["z"] = coords.T
  rec["red"], rec["green"], rec["blue"] = colors.T
  rec["alpha"] = 255
  if label is not None:
    rec["label"] = label
  type_name = {"<f4": "float", "u1": "uchar", "<u2": "ushort"}
  header = ["ply", "format binary_little_endian 1.0", "comment VCGLIB generated",
            f"element vertex {len(coords)}"]
  header += [f"property {type_name[t]} {name}" for name, t in props]
  header += [f"element face {len(faces)}", "property list uchar int vertex_indices",
             "end_header"]
  face_rec = np.zeros(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
  face_rec["n"], face_rec["v"] = 3, faces
  with open(path, "wb") as f:
    f.write(("\n".join(header) + "\n").encode() + rec.tobytes() + face_rec.tobytes())


def _write_matrix(path, matrix):
  with open(path, "w") as f:
    for row in np.asarray(matrix):
      f.write(" ".join(f"{v:f}" for v in row) + "\n")  # inf/nan print as 'inf'/'nan'



def _make_scan(root, seed=0):
  """Writes one scan with a 3-frame SensReader export; returns what was written."""
  rng = np.random.default_rng(seed)
  scene_dir = os.path.join(root, SCENE)
  os.makedirs(scene_dir)
  coords = rng.uniform(0, 4, (N, 3)).astype(np.float32)
  colors = rng.integers(0, 256, (N, 3)).astype(np.uint8)
  faces = rng.integers(0, N, (F, 3))
  nyu40 = rng.choice([0, 1, 2, 5, 7, 13, 39, 40], N).astype(np.uint16)
  raw_segments = rng.choice([3, 17, 42, 100, 7], N)
  _write_mesh(os.path.join(scene_dir, f"{SCENE}_vh_clean_2.ply"), coords, colors, faces)
  _write_mesh(os.path.join(scene_dir, f"{SCENE}_vh_clean_2.labels.ply"), coords, colors, faces,
              label=nyu40)
  with open(os.path.join(scene_dir, f"{SCENE}_vh_clean_2.0.010000.segs.json"), "w") as f:
    json.dump({"params": {"kThresh": "0.0001"}, "sceneId": SCENE,
               "segIndices": raw_segments.tolist()}, f)
  groups = [{"id": 0, "objectId": 0, "segments": [3, 17], "label": "chair"},
            {"id": 1, "objectId": 1, "segments": [100], "label": "coffee table"}]
  with open(os.path.join(scene_dir, f"{SCENE}.aggregation.json"), "w") as f:
    json.dump({"sceneId": SCENE, "appId": "Aggregator.v2", "segGroups": groups}, f)
  alignment = rng.normal(size=(4, 4)).round(4)
  with open(os.path.join(scene_dir, f"{SCENE}.txt"), "w") as f:
    f.write("colorHeight = 968\n")
    f.write("axisAlignment = " + " ".join(f"{v:g}" for v in alignment.ravel()) + "\n")
    f.write("numColorFrames = 3\n")
  color_k = np.array([[10, 0, 8, 0], [0, 11, 6, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
  depth_k = np.array([[5, 0, 4, 0], [0, 5.5, 3, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
  poses = np.stack([np.eye(4) + 0.1 * i for i in range(3)])
  poses[:, 3] = [0, 0, 0, 1]
  poses[1, 0, 0] = -np.inf  # ScanNet marks lost tracking like this
  for sub in ("color", "depth", "pose", "intrinsic"):
    os.makedirs(os.path.join(scene_dir, sub))
  _write_matrix(os.path.join(scene_dir, "intrinsic", "intrinsic_color.txt"), color_k)
  _write_matrix(os.path.join(scene_dir, "intrinsic", "intrinsic_depth.txt"), depth_k)
  for i in range(3):
    Image.fromarray(rng.integers(0, 256, (12, 16, 3)).astype(np.uint8)).save(
        os.path.join(scene_dir, "color", f"{i}.jpg"))
    Image.fromarray(rng.integers(0, 5000, (6, 8)).astype(np.uint16)).save(
        os.path.join(scene_dir, "depth", f"{i}.png"))
    _write_matrix(os.path.join(scene_dir, "pose", f"{i}.txt"), poses[i])
  return dict(coords=coords, colors=colors, faces=faces, nyu40=nyu40, raw_segments=raw_segments,
              alignment=alignment, color_k=color_k, depth_k=depth_k, poses=poses,
              scene_dir=scene_dir)


def _expected_labels(nyu40):
  return np.array([_BENCHMARK.get(int(v), -1) for v in nyu40])


def test_reads_mesh_labels_segments_instances_frames(tmp_path, caplog):
  w = _make_scan(tmp_path)
  with caplog.at_level(logging.WARNING):
    scene = scannet.read_scannet_scene(str(tmp_path), SCENE)
  np.testing.assert_array_equal(scene.coords, w["coords"])
  np.testing.assert_array_equal(scene.colors, w["colors"])
  np.testing.assert_array_equal(scene.faces, w["faces"])
  np.testing.assert_array_equal(scene.labels, _expected_labels(w["nyu40"]))
  # Segments: contiguous 0..S-1 and the same partition as the raw ids.
  raw = w["raw_segments"]
  assert scene.segments.min() == 0 and scene.segments.max() == len(set(raw.tolist())) - 1
  same_raw = raw[:, None] == raw[None, :]
  np.testing.assert_array_equal(scene.segments[:, None] == scene.segments[None, :], same_raw)
  expected_instances = np.where(np.isin(raw, [3, 17]), 1, np.where(raw == 100, 2, 0))
  np.testing.assert_array_equal(scene.instances, expected_instances)
  np.testing.assert_allclose(scene.axis_alignment, w["alignment"], rtol=1e-6)
  # Frame 1 has an -inf pose: dropped with a warning.
  frames = scene.frames
  assert len(frames) == 2
  np.testing.assert_allclose(frames.poses, w["poses"][[0, 2]], atol=1e-6)
  assert [os.path.basename(p) for p in frames.color_paths] == ["0.jpg", "2.jpg"]
  assert [os.path.basename(p) for p in frames.depth_paths] == ["0.png", "2.png"]
  np.testing.assert_allclose(frames.color_intrinsics, w["color_k"][:3, :3])
  np.testing.assert_allclose(frames.depth_intrinsics, w["depth_k"][:3, :3])
  assert frames.color_size == (16, 12) and frames.depth_size == (8, 6)
  assert any("inf" in r.getMessage() and "1.txt" in r.getMessage() for r in caplog.records)


def test_labels_from_aggregation_and_label_map(tmp_path):
  w = _make_scan(tmp_path)
  os.remove(os.path.join(w["scene_dir"], f"{SCENE}_vh_clean_2.labels.ply"))
  tsv = tmp_path / "labels.tsv"
  tsv.write_text("id\traw_category\tcategory\tnyu40id\n1\tchair\tchair\t5\n"
                 "2\tcoffee table\tcoffee table\t7\n")
  scene = scannet.read_scannet_scene(str(tmp_path), SCENE, with_frames=False,
                                     label_map=str(tsv))
  raw = w["raw_segments"]
  expected = np.where(np.isin(raw, [3, 17]), _BENCHMARK[5], np.where(raw == 100, _BENCHMARK[7],
                                                                       -1))
  np.testing.assert_array_equal(scene.labels, expected)
  assert scene.frames is None


def test_missing_segs_gives_no_segments(tmp_path, caplog):
  w = _make_scan(tmp_path)
  os.remove(os.path.join(w["scene_dir"], f"{SCENE}_vh_clean_2.0.010000.segs.json"))
  with caplog.at_level(logging.WARNING):
    scene = scannet.read_scannet_scene(str(tmp_path), SCENE, with_frames=False)
  assert scene.segments is None and scene.instances is None
  np.testing.assert_array_equal(scene.labels, _expected_labels(w["nyu40"]))
  assert any("segs.json" in r.getMessage() for r in caplog.records)


def test_frames_root(tmp_path):
  w = _make_scan(tmp_path / "scans")
  os.makedirs(tmp_path / "frames" / SCENE)
  for sub in ("color", "depth", "pose", "intrinsic"):  # move the export out of the scan dir
    os.rename(os.path.join(w["scene_dir"], sub), tmp_path / "frames" / SCENE / sub)
  with pytest.raises(InputError, match="SensReader"):
    scannet.read_scannet_scene(str(tmp_path / "scans"), SCENE)
  scene = scannet.read_scannet_scene(str(tmp_path / "scans"), SCENE,
                                     frames_root=str(tmp_path / "frames"))
  assert len(scene.frames) == 2


def test_list_scenes_and_split_file(tmp_path):
  _make_scan(tmp_path)
  os.makedirs(tmp_path / "not_a_scene")
  assert scannet.list_scannet_scenes(str(tmp_path)) == [SCENE]
  (tmp_path / "scannetv2_val.txt").write_text("scene0001_00\n")
  (tmp_path / "scannetv2_train.txt").write_text(f"{SCENE}\n")
  assert scannet.list_scannet_scenes(str(tmp_path), "val") == []
  assert scannet.list_scannet_scenes(str(tmp_path), "train") == [SCENE]


# Bad input: each names the file, the problem and the fix.


def _assert_names(error, path):
  assert str(path) in str(error.value) and "Fix:" in str(error.value)


def test_label_vertex_count_mismatch(tmp_path):
  w = _make_scan(tmp_path)
  path = os.path.join(w["scene_dir"], f"{SCENE}_vh_clean_2.labels.ply")
  _write_mesh(path, w["coords"][:-1], w["colors"][:-1], w["faces"] % (N - 1), w["nyu40"][:-1])
  with pytest.raises(InputError, match="39 labelled vertices") as e:
    scannet.read_scannet_scene(str(tmp_path), SCENE, with_frames=False)
  _assert_names(e, path)


def test_segs_count_mismatch_and_bad_json(tmp_path):
  w = _make_scan(tmp_path)
  path = os.path.join(w["scene_dir"], f"{SCENE}_vh_clean_2.0.010000.segs.json")
  with open(path, "w") as f:
    json.dump({"segIndices": [0] * (N + 2)}, f)
  with pytest.raises(InputError, match="segment indices") as e:
    scannet.read_scannet_scene(str(tmp_path), SCENE, with_frames=False)
  _assert_names(e, path)
  with open(path, "w") as f:
    f.write('{"segIndices": [0, 1')
  with pytest.raises(InputError, match="JSON"):
    scannet.read_scannet_scene(str(tmp_path), SCENE, with_frames=False)


def test_aggregation_with_unknown_segment(tmp_path):
  w = _make_scan(tmp_path)
  path = os.path.join(w["scene_dir"], f"{SCENE}.aggregation.json")
  with open(path, "w") as f:
    json.dump({"segGroups": [{"objectId": 0, "segments": [3, 999], "label": "chair"}]}, f)
  with pytest.raises(InputError, match="absent") as e:
    scannet.read_scannet_scene(str(tmp_path), SCENE, with_frames=False)
  _assert_names(e, path)


def test_missing_pose_and_intrinsics(tmp_path):
  w = _make_scan(tmp_path)
  pose = os.path.join(w["scene_dir"], "pose", "2.txt")
  os.remove(pose)
  with pytest.raises(InputError, match="does not exist") as e:
    scannet.read_scannet_scene(str(tmp_path), SCENE)
  _assert_names(e, pose)
  _write_matrix(pose, np.eye(4))
  intrinsics = os.path.join(w["scene_dir"], "intrinsic", "intrinsic_depth.txt")
  os.remove(intrinsics)
  with pytest.raises(InputError) as e:
    scannet.read_scannet_scene(str(tmp_path), SCENE)
  _assert_names(e, intrinsics)


def test_missing_frame_image_and_all_poses_invalid(tmp_path):
  w = _make_scan(tmp_path)
  image = os.path.join(w["scene_dir"], "depth", "0.png")
  os.remove(image)
  with pytest.raises(InputError, match="depth image") as e:
    scannet.read_scannet_scene(str(tmp_path), SCENE)
  _assert_names(e, image)
  Image.fromarray(np.zeros((6, 8), np.uint16)).save(image)
  for i in range(3):
    _write_matrix(os.path.join(w["scene_dir"], "pose", f"{i}.txt"), np.full((4, 4), np.nan))
  with pytest.raises(InputError, match="no frame has a finite"):
    scannet.read_scannet_scene(str(tmp_path), SCENE)


def test_nan_vertex_and_truncated_mesh(tmp_path):
  w = _make_scan(tmp_path)
  mesh = os.path.join(w["scene_dir"], f"{SCENE}_vh_clean_2.ply")
  coords = w["coords"].copy()
  coords[5, 1] = np.nan
  _write_mesh(mesh, coords, w["colors"], w["faces"])
  with pytest.raises(InputError, match="NaN or inf") as e:
    scannet.read_scannet_scene(str(tmp_path), SCENE, with_frames=False)
  _assert_names(e, mesh)
  _write_mesh(mesh, w["coords"], w["colors"], w["faces"])
  with open(mesh, "rb") as f:
    data = f.read()
  with open(mesh, "wb") as f:
    f.write(data[:len(data) // 2])
  with pytest.raises(InputError, match="truncated") as e:
    scannet.read_scannet_scene(str(tmp_path), SCENE, with_frames=False)
  _assert_names(e, mesh)


# Probes of the reliability report (../shared/notes/reliability_2026-12.md), one test each.


def _write_float_colour_mesh(path, coords, colors, faces, color_type):
  """A binary PLY mesh whose colours are `float` (0..1) or `ushort` (0..65535) properties."""
  dtype = {"float": "<f4", "ushort": "<u2"}[color_type]
  rec = np.zeros(len(coords), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                     ("red", dtype), ("green", dtype), ("blue", dtype)])
  rec["x"], rec["y"], rec["z"] = coords.T
  scale = 1 / 255.0 if color_type == "float" else 257
  rec["red"], rec["green"], rec["blue"] = (colors.astype(np.float64) * scale).T
  header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(coords)}",
            "property float x", "property float y", "property float z",
            f"property {color_type} red", f"property {color_type} green",
            f"property {color_type} blue", f"element face {len(faces)}",
            "property list uchar int vertex_indices", "end_header"]
  face_rec = np.zeros(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
  face_rec["n"], face_rec["v"] = 3, faces
  with open(path, "wb") as f:
    f.write(("\n".join(header) + "\n").encode() + rec.tobytes() + face_rec.tobytes())


@pytest.mark.parametrize("color_type", ["float", "ushort"])
def test_float_and_16_bit_mesh_colours_are_scaled(tmp_path, color_type):
  """sn_rgb01: float colours 0..1 were stored as 0/1 (a black scene); 16-bit ones clipped."""
  w = _make_scan(tmp_path)
  mesh = os.path.join(w["scene_dir"], f"{SCENE}_vh_clean_2.ply")
  _write_float_colour_mesh(mesh, w["coords"], w["colors"], w["faces"], color_type)
  scene = scannet.read_scannet_scene(str(tmp_path), SCENE)
  np.testing.assert_array_equal(scene.colors, w["colors"])


def test_folder_without_mesh_is_listed_and_reported(tmp_path):
  """sn_one_missing_mesh: a scan folder whose mesh is missing or misnamed was left out
  silently (two folders gave one scene)."""
  _make_scan(tmp_path)
  other = tmp_path / "scene0043_00"
  other.mkdir()
  (other / "scene0043_00_vh_clean.ply").write_bytes(b"ply\n")  # the wrong (hi-res) name
  (tmp_path / "notes").mkdir()  # not a scan: named in a log line, not listed
  assert scannet.list_scannet_scenes(str(tmp_path)) == [SCENE, "scene0043_00"]
  with pytest.raises(InputError, match="ScanNet mesh does not exist") as e:
    scannet.read_scannet_scene(str(tmp_path), "scene0043_00", with_frames=False)
  assert "_vh_clean_2.ply" in e.value.fix


def test_mesh_link_loop_is_reported(tmp_path):
  """sn_symloop_mesh: a mesh that is a symbolic link loop was skipped without a word."""
  w = _make_scan(tmp_path)
  mesh = os.path.join(w["scene_dir"], f"{SCENE}_vh_clean_2.ply")
  os.remove(mesh)
  os.symlink(mesh, mesh)
  assert scannet.list_scannet_scenes(str(tmp_path)) == [SCENE]
  with pytest.raises(InputError, match="symbolic link loop"):
    scannet.read_scannet_scene(str(tmp_path), SCENE)


def test_label_mesh_link_loop_is_reported(tmp_path):
  """sn_symloop_labels: a looping labels.ply was ignored and the scan read unlabelled."""
  w = _make_scan(tmp_path)
  labels = os.path.join(w["scene_dir"], f"{SCENE}_vh_clean_2.labels.ply")
  os.remove(labels)
  os.symlink(labels, labels)
  with pytest.raises(InputError, match="label mesh is a symbolic link loop"):
    scannet.read_scannet_scene(str(tmp_path), SCENE)


def test_mesh_without_vertices_is_an_input_error(tmp_path):
  """sn_empty_skip: a 0-vertex mesh with an aggregation.json raised IndexError, which
  skip_bad did not catch."""
  w = _make_scan(tmp_path)
  _write_mesh(os.path.join(w["scene_dir"], f"{SCENE}_vh_clean_2.ply"), np.zeros((0, 3)),
              np.zeros((0, 3)), np.zeros((0, 3), int))
  with pytest.raises(InputError, match="no vertices"):
    scannet.read_scannet_scene(str(tmp_path), SCENE)
