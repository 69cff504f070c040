"""Tests for jaxseg.io.fingerprint: replaced, added and removed source files are noticed."""

import os

from jaxseg.io import fingerprint


def test_digest_follows_size_and_mtime_but_not_images(tmp_path):
  scene = tmp_path / "scene0000_00"
  (scene / "pose").mkdir(parents=True)
  (scene / "color").mkdir()
  (scene / "mesh.ply").write_bytes(b"x" * 100)
  (scene / "pose" / "0.txt").write_text("1 0 0 0")
  (scene / "color" / "0.jpg").write_bytes(b"jpeg")
  first = fingerprint.digest([str(scene)])
  assert fingerprint.digest([str(scene)]) == first
  (scene / "color" / "0.jpg").write_bytes(b"another jpeg")  # images are path references
  assert fingerprint.digest([str(scene)]) == first
  os.utime(scene / "pose" / "0.txt", ns=(1, 1))
  assert fingerprint.digest([str(scene)]) != first
  second = fingerprint.digest([str(scene)])
  (scene / "mesh.ply").write_bytes(b"y" * 50)
  assert fingerprint.digest([str(scene)]) != second


def test_folder_link_cycles_end(tmp_path):
  (tmp_path / "room").mkdir()
  (tmp_path / "room" / "a.txt").write_text("1")
  os.symlink(tmp_path / "room", tmp_path / "room" / "again")
  stats = fingerprint.file_stats([str(tmp_path / "room")])
  assert [os.path.basename(p) for p, _, _ in stats] == ["a.txt"]


def test_compare_names_changed_added_removed():
  old = {"a": "1", "b": "2", "c": "3"}
  new = {"a": "1", "b": "9", "d": "4"}
  assert fingerprint.compare(old, new) == (["b"], ["d"], ["c"])
