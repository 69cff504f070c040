"""Tests for the dispatch API jaxseg.io.sources."""

import os

import numpy as np
import pytest

from jaxseg import testing
from jaxseg.errors import InputError
from jaxseg.io import sources


def test_unknown_format_lists_formats(tmp_path):
  with pytest.raises(InputError, match="scannet, votenet, mmdet3d, s3dis, custom"):
    sources.list_scenes("kitti", str(tmp_path))
  with pytest.raises(InputError, match="unknown data format"):
    sources.load_scene("kitti", str(tmp_path), "x")


def test_votenet_and_mmdet3d_on_mini_set():
  root = testing.require_scannet_mini()
  labeled = os.path.join(root, "labeled")
  scenes = sources.list_scenes("votenet", labeled)
  assert len(scenes) == 18
  scene = sources.load_scene("votenet", labeled, scenes[0])
  vert = np.load(os.path.join(labeled, scenes[0] + "_vert.npy"))
  np.testing.assert_array_equal(scene.coords, vert[:, :3])
  assert scene.frames is None
  mm = sources.load_scene("mmdet3d", root, "scene0113_00")
  raw = np.fromfile(os.path.join(root, "points", "scene0113_00.bin"), np.float32)
  assert mm.num_points == raw.size // 6 == 91598 and len(mm.frames) > 0
  assert sources.list_scenes("mmdet3d", root, "val") == []


def test_votenet_frames_root_is_threaded_through():
  root = testing.require_scannet_mini()
  labeled, posed = os.path.join(root, "labeled"), os.path.join(root, "posed")
  scene = sources.load_scene("votenet", labeled, "scene0000_00", frames_root=posed)
  raw = sources.load_scene("mmdet3d", root, "scene0000_00")
  assert len(scene.frames) == len(raw.frames) == 60
  # Poses move into the axis-aligned frame of the VoteNet points.
  np.testing.assert_allclose(scene.frames.poses,
                             raw.axis_alignment.astype(np.float64) @ raw.frames.poses,
                             atol=1e-5)
  assert sources.load_scene("votenet", labeled, "scene0000_00", frames_root=posed,
                            with_frames=False).frames is None
  assert sources.load_scene("votenet", labeled, "scene0001_00",
                            frames_root=posed).frames is None


def test_votenet_split_file(tmp_path):
  rng = np.random.default_rng(0)
  for name in ("scene0001_00", "scene0002_00"):
    np.save(tmp_path / f"{name}_vert.npy", rng.normal(size=(5, 6)).astype(np.float32))
  (tmp_path / "scannetv2_val.txt").write_text("scene0002_00\n")
  assert sources.list_scenes("votenet", str(tmp_path), "val") == ["scene0002_00"]
  assert sources.list_scenes("votenet", str(tmp_path)) == ["scene0001_00", "scene0002_00"]


def test_scene_id_pattern_splits(tmp_path):
  rng = np.random.default_rng(0)
  for name in ("scene0001_00", "scene0001_01", "scene0006_00", "scene0010_00"):
    np.save(tmp_path / f"{name}_vert.npy", rng.normal(size=(5, 6)).astype(np.float32))
  assert sources.list_scenes("votenet", str(tmp_path), "scene000[0-5]_*") == [
      "scene0001_00", "scene0001_01"]
  assert sources.list_scenes("votenet", str(tmp_path), "scene000[6-8]_*, scene0010_00") == [
      "scene0006_00", "scene0010_00"]
  with pytest.raises(InputError, match=r"no scene id matches .*scene09\*"):
    sources.list_scenes("votenet", str(tmp_path), "scene09*")


def test_s3dis_and_custom_dispatch(tmp_path):
  room = tmp_path / "s3dis" / "Area_5" / "office_1" / "Annotations"
  os.makedirs(room)
  (room / "chair_1.txt").write_text("1 2 3 10 20 30\n4 5 6 40 50 60\n")
  (room / "wall_1.txt").write_text("7 8 9 70 80 90\n")
  assert sources.list_scenes("s3dis", str(tmp_path / "s3dis"), "test") == ["Area_5/office_1"]
  scene = sources.load_scene("s3dis", str(tmp_path / "s3dis"), "Area_5/office_1")
  np.testing.assert_array_equal(scene.coords, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
  np.testing.assert_array_equal(scene.labels, [8, 8, 2])  # chair, chair, wall
  clouds = tmp_path / "clouds"
  os.makedirs(clouds)
  np.save(clouds / "mine.npy", np.ones((3, 3), np.float32))
  assert sources.list_scenes("custom", str(clouds)) == ["mine.npy"]
  for root in (str(clouds), str(clouds / "mine.npy")):
    scene = sources.load_scene("custom", root, "mine.npy")
    np.testing.assert_array_equal(scene.coords, np.ones((3, 3)))
