"""Tests for jaxseg.io.files and jaxseg.io.npy: each kind of bad path gets its own message."""

import os

import numpy as np
import pytest

from jaxseg.errors import InputError
from jaxseg.io import files
from jaxseg.io.npy import load_npy


def test_path_problems_name_links_and_loops(tmp_path):
  os.symlink(tmp_path / "gone.ply", tmp_path / "dangling.ply")
  os.symlink(tmp_path / "loop_b", tmp_path / "loop_a")
  os.symlink(tmp_path / "loop_a", tmp_path / "loop_b")
  assert files.path_problem(tmp_path / "missing.ply") == "does not exist"
  assert "dangling symbolic link" in files.path_problem(tmp_path / "dangling.ply")
  assert files.path_problem(tmp_path / "loop_a") == "is a symbolic link loop"
  assert "symbolic link loop" in files.path_problem(tmp_path / "loop_a" / "scene.ply")
  assert files.path_problem(tmp_path) is None


def test_optional_files_are_absent_only_when_nothing_is_there(tmp_path):
  assert not files.optional_file(tmp_path / "labels.npy", "label file")
  os.symlink(tmp_path / "gone.npy", tmp_path / "labels.npy")
  with pytest.raises(InputError, match="label file is a dangling symbolic link") as e:
    files.optional_file(tmp_path / "labels.npy", "label file")
  assert "point the link" in e.value.fix
  (tmp_path / "folder.npy").mkdir()
  with pytest.raises(InputError, match="is a folder, not a file"):
    files.require_file(tmp_path / "folder.npy", "cloud", "check")


def test_writable_dir_checks_name_the_obstacle(tmp_path):
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(InputError, match="is a file, not a folder"):
    files.require_writable_dir(tmp_path / "a_file", "workdir", "choose another workdir")
  with pytest.raises(InputError, match="cannot be created: .*a_file is a file"):
    files.require_writable_dir(tmp_path / "a_file" / "run", "workdir", "choose another")
  assert files.require_writable_dir(tmp_path / "new" / "run", "workdir", "x") == str(
      tmp_path / "new" / "run")
  assert not os.path.exists(tmp_path / "new")  # checking creates nothing


def test_npy_messages_fit_the_file(tmp_path):
  fix = "save it with numpy.save"
  (tmp_path / "text.npy").write_text("1 2 3\n4 5 6\n")
  with pytest.raises(InputError, match=r"not a .npy file \(it starts with b'1 2 3") as e:
    load_npy(tmp_path / "text.npy", fix)
  assert "allow_pickle" not in str(e.value)  # numpy's advice to unpickle is not relayed
  (tmp_path / "empty.npy").write_bytes(b"")
  with pytest.raises(InputError, match="it is empty"):
    load_npy(tmp_path / "empty.npy", fix)
  np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
  with pytest.raises(InputError, match="Python objects") as e:
    load_npy(tmp_path / "objects.npy", fix)
  assert "allow_pickle" not in str(e.value)
  np.save(tmp_path / "cut.npy", np.zeros((100, 6), np.float32))
  data = (tmp_path / "cut.npy").read_bytes()
  (tmp_path / "cut.npy").write_bytes(data[:len(data) // 2])
  with pytest.raises(InputError, match="damaged"):
    load_npy(tmp_path / "cut.npy", fix)


def test_safe_file_name_keeps_one_path_component():
  from jaxseg.io.files import safe_file_name  # pylint: disable=g-import-not-at-top
  assert safe_file_name("scene0000_00") == "scene0000_00"
  assert safe_file_name("Area_1/office 3") == "Area_1__office__3"
  assert safe_file_name("../x") == "..__x" and "/" not in safe_file_name("a//b\\c")
