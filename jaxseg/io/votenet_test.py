"""Tests for jaxseg.io.votenet: the real ScanNet mini set and bad exports written here."""

import csv
import logging
import os

import numpy as np
import pytest
from PIL import Image
from scipy import spatial

from jaxseg import testing
from jaxseg.errors import InputError
from jaxseg.io import labels, mmdet3d, votenet

# The 20 benchmark classes' NYU40 ids, in class order (ScanNet benchmark / mini-set README).
_BENCHMARK_NYU40 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]


def test_all_labelled_mini_scans():
  root = os.path.join(testing.require_scannet_mini(), "labeled")
  scenes = votenet.list_votenet_scenes(root)
  assert len(scenes) == 18 and scenes[0] == "scene0000_00"
  for scene_id in scenes:
    scene = votenet.read_votenet_scene(root, scene_id)
    vert = np.load(os.path.join(root, scene_id + "_vert.npy"))
    nyu40 = np.load(os.path.join(root, scene_id + "_sem_label.npy"))
    assert scene.num_points == 50000
    np.testing.assert_array_equal(scene.coords, vert[:, :3])
    np.testing.assert_array_equal(scene.colors, vert[:, 3:6].astype(np.uint8))
    assert scene.labels.min() >= -1 and scene.labels.max() < 20
    expected = np.array([_BENCHMARK_NYU40.index(v) if v in _BENCHMARK_NYU40 else -1
                         for v in nyu40.tolist()])
    np.testing.assert_array_equal(scene.labels, expected)
    np.testing.assert_array_equal(
        scene.instances, np.load(os.path.join(root, scene_id + "_ins_label.npy")))


def test_benchmark_ids_agree_with_official_tsv():
  """The NYU40 ids above, and the library's, are the ids the official tsv gives the 20 classes."""
  meta = os.path.join(testing.require_scannet_mini(), "meta", "scannetv2-labels.combined.tsv")
  with open(meta, newline="") as f:
    rows = list(csv.DictReader(f, delimiter="\t"))
  nyu40_of = {r["nyu40class"]: int(r["nyu40id"]) for r in rows if r["nyu40id"]}
  tsv_spelling = {"refrigerator": "refridgerator"}  # as the official tsv spells it
  assert [nyu40_of[tsv_spelling.get(name, name)]
          for name in labels.SCANNET_CLASSES] == _BENCHMARK_NYU40
  assert list(labels.SCANNET_NYU40_IDS) == _BENCHMARK_NYU40


def _write(directory, scene, vert, sem=None, ins=None):
  np.save(os.path.join(directory, scene + "_vert.npy"), vert)
  if sem is not None:
    np.save(os.path.join(directory, scene + "_sem_label.npy"), sem)
  if ins is not None:
    np.save(os.path.join(directory, scene + "_ins_label.npy"), ins)


def _vert(n, seed=0):
  rng = np.random.default_rng(seed)
  return np.concatenate([rng.normal(size=(n, 3)), rng.integers(0, 256, (n, 3))],
                        1).astype(np.float32)


def test_label_count_mismatch(tmp_path):
  _write(tmp_path, "s", _vert(10), sem=np.ones(9, np.uint32))
  with pytest.raises(InputError, match=r"\(10,\)") as e:
    votenet.read_votenet_scene(str(tmp_path), "s")
  assert "s_sem_label.npy" in str(e.value)


def test_nan_coordinates_and_empty_scene(tmp_path):
  vert = _vert(10)
  vert[3, 2] = np.inf
  _write(tmp_path, "a", vert)
  with pytest.raises(InputError, match="NaN or inf") as e:
    votenet.read_votenet_scene(str(tmp_path), "a")
  assert "a_vert.npy" in str(e.value)
  _write(tmp_path, "b", np.zeros((0, 6), np.float32))
  with pytest.raises(InputError, match="no points"):
    votenet.read_votenet_scene(str(tmp_path), "b")


def test_bad_files(tmp_path):
  (tmp_path / "c_vert.npy").write_bytes(b"not numpy")
  with pytest.raises(InputError, match="cannot read"):
    votenet.read_votenet_scene(str(tmp_path), "c")
  _write(tmp_path, "d", np.zeros((5, 3), np.float32))
  with pytest.raises(InputError, match="expected numeric"):
    votenet.read_votenet_scene(str(tmp_path), "d")
  with pytest.raises(InputError, match="vertex file does not exist"):
    votenet.read_votenet_scene(str(tmp_path), "e")
  with pytest.raises(InputError, match="does not exist"):
    votenet.list_votenet_scenes(str(tmp_path / "missing"))


def _project(points, pose_c2w, k):
  """float64 pixel coordinates (N, 2) and camera depth (N,) of world points."""
  w2c = np.linalg.inv(pose_c2w.astype(np.float64))
  cam = points.astype(np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
  uvw = cam @ k.astype(np.float64).T
  return uvw[:, :2] / cam[:, 2:], cam[:, 2]


def test_frames_are_aligned_with_the_axis_aligned_points():
  """scene0000_00 from the VoteNet export (aligned points, frames from posed/) lands on the
  same pixels with the same image colours as the raw mmdetection3d points it came from."""
  root = testing.require_scannet_mini()
  scene = votenet.read_votenet_scene(os.path.join(root, "labeled"), "scene0000_00",
                                     frames_root=os.path.join(root, "posed"))
  raw = mmdet3d.read_mmdet3d_scene(root, "scene0000_00")
  assert len(scene.frames) == len(raw.frames) == 60
  assert scene.frames.color_paths == raw.frames.color_paths
  # The VoteNet points are an exact subset of the aligned raw points (mini-set README).
  align = raw.axis_alignment.astype(np.float64)
  aligned_raw = raw.coords @ align[:3, :3].T + align[:3, 3]
  dist, match = spatial.cKDTree(aligned_raw).query(scene.coords)
  assert dist.max() < 1e-4
  width, height = scene.frames.color_size
  checked = 0
  for v in range(0, 60, 12):
    image = np.asarray(Image.open(scene.frames.color_paths[v]).convert("RGB"))
    uv, z = _project(scene.coords, scene.frames.poses[v], scene.frames.color_intrinsics)
    uv_raw, z_raw = _project(raw.coords[match], raw.frames.poses[v], raw.frames.color_intrinsics)
    inside = (z > 0.1) & (uv >= -0.5).all(1) & (uv[:, 0] < width - 0.5) & (
        uv[:, 1] < height - 0.5)
    np.testing.assert_allclose(uv[inside], uv_raw[inside], atol=0.02)
    np.testing.assert_allclose(z, z_raw, atol=1e-4)
    pix = np.floor(uv[inside] + 0.5).astype(int)
    pix_raw = np.floor(uv_raw[inside] + 0.5).astype(int)
    same = (image[pix[:, 1], pix[:, 0]] == image[pix_raw[:, 1], pix_raw[:, 0]]).all(1)
    assert same.mean() > 0.99
    checked += inside.sum()
  assert checked > 10000


def test_frames_folder_and_alignment_lookup(tmp_path):
  root = testing.require_scannet_mini()
  labeled, posed = os.path.join(root, "labeled"), os.path.join(root, "posed")
  # No posed folder for this scan: no frames.
  assert votenet.read_votenet_scene(labeled, "scene0000_01", frames_root=posed).frames is None
  # An explicit meta dir gives the same poses as the one found beside the frames.
  found = votenet.read_votenet_scene(labeled, "scene0000_00", frames_root=posed)
  explicit = votenet.read_votenet_scene(labeled, "scene0000_00", frames_root=posed,
                                        meta_dir=os.path.join(root, "meta"))
  np.testing.assert_array_equal(found.frames.poses, explicit.frames.poses)
  with pytest.raises(InputError, match="no axis_align_matrix for scene0000_00") as e:
    votenet.read_votenet_scene(labeled, "scene0000_00", frames_root=posed,
                               meta_dir=str(tmp_path))
  assert "meta_dir" in e.value.fix


# Probes of the reliability report (../shared/notes/reliability_2026-12.md), one test each.


def test_colours_in_zero_one_are_scaled_not_blackened(tmp_path):
  """vn_rgb01: float colours 0..1 used to become 0/1, a black scene."""
  vert = _vert(40)
  rgb = vert[:, 3:6].astype(np.uint8)
  vert[:, 3:6] = rgb / 255.0
  _write(tmp_path, "s", vert)
  np.testing.assert_array_equal(votenet.read_votenet_scene(str(tmp_path), "s").colors, rgb)


@pytest.mark.parametrize("with_labels", [False, True])
def test_transposed_vertex_array_is_an_error(tmp_path, with_labels):
  """vn_vert_transposed_nolabel: a (6, N) _vert.npy became a 6-point scene; with labels the
  error blamed _sem_label.npy."""
  vert = _vert(30)
  _write(tmp_path, "s", vert.T.copy(), sem=np.ones(30, np.int64) if with_labels else None)
  with pytest.raises(InputError, match=r"\(6, 30\).*transposed") as e:
    votenet.read_votenet_scene(str(tmp_path), "s")
  assert e.value.path.endswith("s_vert.npy") and "vert.T" in e.value.fix


def test_dangling_label_link_is_reported_not_ignored(tmp_path):
  """vn_dangling_label: a dangling _sem_label.npy link silently left the scene unlabelled."""
  _write(tmp_path, "s", _vert(10))
  os.symlink(tmp_path / "moved" / "s_sem_label.npy", tmp_path / "s_sem_label.npy")
  with pytest.raises(InputError, match="dangling symbolic link") as e:
    votenet.read_votenet_scene(str(tmp_path), "s")
  assert e.value.path.endswith("s_sem_label.npy")


def test_labels_outside_nyu40_are_an_error(tmp_path):
  """vn_label_out_of_range: labels beyond NYU40 all became ignore, 0% labelled, exit 0."""
  _write(tmp_path, "s", _vert(10), sem=np.arange(100, 110, dtype=np.int64))
  with pytest.raises(InputError, match=r"10 of 10 labels are outside NYU40's 0..40") as e:
    votenet.read_votenet_scene(str(tmp_path), "s")
  assert e.value.path.endswith("s_sem_label.npy")


def test_labels_already_in_benchmark_indices_are_recognised(tmp_path, caplog):
  """vn_label_scannet20: ScanNet-20 indices (with -1 ignore) were re-mapped as NYU40 ids."""
  benchmark = np.random.default_rng(0).integers(-1, 20, 200)
  _write(tmp_path, "s", _vert(200), sem=benchmark)
  with caplog.at_level(logging.WARNING, logger="jaxseg"):
    scene = votenet.read_votenet_scene(str(tmp_path), "s")
  np.testing.assert_array_equal(scene.labels, benchmark)
  assert any("already ScanNet-20 class indices" in r.getMessage() for r in caplog.records)


def test_mostly_unmapped_nyu40_labels_get_a_warning(tmp_path, caplog):
  """0..19 values without an ignore mark stay NYU40 (the format's meaning), with a warning
  when most points end up unlabelled."""
  values = np.random.default_rng(1).choice([0, 13, 15, 17, 18, 19, 1], 200)
  _write(tmp_path, "s", _vert(200), sem=values)
  with caplog.at_level(logging.WARNING, logger="jaxseg"):
    scene = votenet.read_votenet_scene(str(tmp_path), "s")
  assert (scene.labels >= 0).mean() < 0.5
  assert any("ScanNet-20 class indices" in r.getMessage() for r in caplog.records)
