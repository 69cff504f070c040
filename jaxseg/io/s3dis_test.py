"""Tests for jaxseg.io.s3dis on small rooms written in the S3DIS v1.2 layout."""

import logging
import os

import numpy as np
import pytest

from jaxseg.errors import InputError
from jaxseg.io import s3dis
from jaxseg.io.labels import S3DIS_CLASSES


def _write_object(path, points):
  with open(path, "w") as f:
    for p in points:
      f.write(f"{p[0]:.3f} {p[1]:.3f} {p[2]:.3f} {int(p[3])} {int(p[4])} {int(p[5])}\n")


def _make_room(root, area, room, objects, seed=0):
  """objects: list of (file name, num points). Returns the expected (points, class, instance)
  with files in sorted order, computed here independently of the reader."""
  rng = np.random.default_rng(seed)
  annotation_dir = os.path.join(root, area, room, "Annotations")
  os.makedirs(annotation_dir)
  written = {}
  for name, n in objects:
    points = np.concatenate([rng.uniform(-5, 5, (n, 3)).round(3),
                             rng.integers(0, 256, (n, 3))], axis=1)
    _write_object(os.path.join(annotation_dir, name), points)
    written[name] = points
  all_points = np.concatenate([written[k] for k in sorted(written)])
  _write_object(os.path.join(root, area, room, room + ".txt"), all_points)
  class_index = {"ceiling": 0, "floor": 1, "wall": 2, "chair": 8, "stairs": 12, "clutter": 12}
  classes = np.concatenate([np.full(written[k].shape[0], class_index[k.split("_")[0]])
                            for k in sorted(written)])
  instances = np.concatenate([np.full(written[k].shape[0], i + 1)
                              for i, k in enumerate(sorted(written))])
  return all_points, classes, instances


def test_room_labels_and_instances(tmp_path):
  points, classes, instances = _make_room(
      tmp_path, "Area_1", "office_1",
      [("wall_1.txt", 30), ("chair_2.txt", 11), ("stairs_1.txt", 5), ("ceiling_1.txt", 7),
       ("chair_1.txt", 9), ("clutter_3.txt", 4)])
  scene = s3dis.read_s3dis_room(str(tmp_path), "Area_1/office_1")
  assert scene.name == "Area_1/office_1"
  np.testing.assert_allclose(scene.coords, points[:, :3], atol=1e-6)
  np.testing.assert_array_equal(scene.colors, points[:, 3:6])
  np.testing.assert_array_equal(scene.labels, classes)
  np.testing.assert_array_equal(scene.instances, instances)
  assert S3DIS_CLASSES[8] == "chair" and S3DIS_CLASSES[12] == "clutter"


def test_corrupt_annotation_line_is_skipped(tmp_path, caplog):
  points, classes, _ = _make_room(tmp_path, "Area_5", "hallway_6",
                                  [("ceiling_1.txt", 20), ("floor_1.txt", 10)])
  path = tmp_path / "Area_5" / "hallway_6" / "Annotations" / "ceiling_1.txt"
  lines = path.read_bytes().split(b"\n")
  lines[4] = lines[4].replace(b" ", b"\x00", 1)  # e.g. `185\x00187`
  path.write_bytes(b"\n".join(lines))
  with caplog.at_level(logging.WARNING):
    scene = s3dis.read_s3dis_room(str(tmp_path), "Area_5/hallway_6")
  keep = np.ones(len(points), bool)
  keep[4] = False
  np.testing.assert_allclose(scene.coords, points[keep, :3], atol=1e-6)
  np.testing.assert_array_equal(scene.labels, classes[keep])
  assert any("ceiling_1.txt" in r.getMessage() and "line 5" in r.getMessage()
             for r in caplog.records if r.levelno == logging.WARNING)


def test_many_corrupt_lines_raise(tmp_path):
  _make_room(tmp_path, "Area_2", "room_1", [("wall_1.txt", 40)])
  path = tmp_path / "Area_2" / "room_1" / "Annotations" / "wall_1.txt"
  lines = path.read_text().splitlines()
  path.write_text("\n".join(ln if i % 3 else "x" + ln for i, ln in enumerate(lines)))
  with pytest.raises(InputError, match="wall_1.txt"):
    s3dis.read_s3dis_room(str(tmp_path), "Area_2/room_1")


def test_room_without_annotations_is_unlabelled(tmp_path):
  points, _, _ = _make_room(tmp_path, "Area_3", "lobby_1", [("wall_1.txt", 12)])
  for f in os.listdir(tmp_path / "Area_3" / "lobby_1" / "Annotations"):
    os.remove(tmp_path / "Area_3" / "lobby_1" / "Annotations" / f)
  os.rmdir(tmp_path / "Area_3" / "lobby_1" / "Annotations")
  scene = s3dis.read_s3dis_room(str(tmp_path), "Area_3/lobby_1")
  assert scene.labels is None
  np.testing.assert_allclose(scene.coords, points[:, :3], atol=1e-6)


def test_splits(tmp_path):
  for area in ("Area_1", "Area_2", "Area_5", "Area_6"):
    _make_room(tmp_path, area, "office_1", [("wall_1.txt", 3)])
  _make_room(tmp_path, "Area_5", "hallway_6", [("wall_1.txt", 3)])
  root = str(tmp_path)
  assert s3dis.list_s3dis_scenes(root, "test") == ["Area_5/hallway_6", "Area_5/office_1"]
  assert s3dis.list_s3dis_scenes(root, "train") == [
      "Area_1/office_1", "Area_2/office_1", "Area_6/office_1"]
  assert s3dis.list_s3dis_scenes(root, "Area_2,Area_6") == ["Area_2/office_1", "Area_6/office_1"]
  assert len(s3dis.list_s3dis_scenes(root)) == 5
  with pytest.raises(InputError, match="split"):
    s3dis.list_s3dis_scenes(root, "everything")
  with pytest.raises(InputError, match="does not exist"):
    s3dis.list_s3dis_scenes(str(tmp_path / "nope"))


def test_missing_room(tmp_path):
  _make_room(tmp_path, "Area_1", "office_1", [("wall_1.txt", 3)])
  with pytest.raises(InputError, match="office_9"):
    s3dis.read_s3dis_room(str(tmp_path), "Area_1/office_9")


def test_fractional_colours_and_unreadable_annotations(tmp_path):
  """Colours 0..1 are scaled (reliability report, defect 1); a dangling Annotations link is
  reported, not taken as a room without labels (defect 7)."""
  room = tmp_path / "Area_1" / "office_1" / "Annotations"
  room.mkdir(parents=True)
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (20, 3))
  with open(room / "chair_1.txt", "w") as f:
    for p, c in zip(rng.uniform(0, 3, (20, 3)), rgb / 255.0):
      f.write(" ".join(f"{v:.6f}" for v in (*p, *c)) + "\n")
  np.testing.assert_array_equal(s3dis.read_s3dis_room(str(tmp_path), "Area_1/office_1").colors,
                                rgb)
  (tmp_path / "Area_1" / "office_2").mkdir()
  os.symlink(tmp_path / "nowhere", tmp_path / "Area_1" / "office_2" / "Annotations")
  assert s3dis.list_s3dis_scenes(str(tmp_path)) == ["Area_1/office_1", "Area_1/office_2"]
  with pytest.raises(InputError, match="dangling symbolic link"):
    s3dis.read_s3dis_room(str(tmp_path), "Area_1/office_2")
