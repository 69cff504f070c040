"""Tests for jaxseg.io.atomic: locks, stale temporary folders, swaps and atomic JSON."""

import errno
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from jaxseg.io import atomic

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_a_second_process_waits_for_the_lock(tmp_path):
  lock = str(tmp_path / ".x.lock")
  script = textwrap.dedent(f"""
      import time
      from jaxseg.io import atomic
      with atomic.exclusive_lock({lock!r}, "x"):
        print("locked", flush=True)
        time.sleep(1.5)
      """)
  holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": _REPO})
  assert holder.stdout.readline().strip() == "locked"
  start = time.perf_counter()
  with atomic.exclusive_lock(lock, "x"):
    waited = time.perf_counter() - start
  holder.wait(timeout=30)
  assert waited > 0.5


def test_lock_of_a_killed_process_is_free(tmp_path):
  lock = str(tmp_path / ".x.lock")
  script = textwrap.dedent(f"""
      import os
      from jaxseg.io import atomic
      with atomic.exclusive_lock({lock!r}, "x"):
        os.kill(os.getpid(), 9)
      """)
  subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": _REPO},
                 check=False)
  start = time.perf_counter()
  with atomic.exclusive_lock(lock, "x"):
    assert time.perf_counter() - start < 1


def test_stale_folders_are_removed_and_others_kept(tmp_path):
  (tmp_path / ".ds.build-abc" / "jaxseg_custom").mkdir(parents=True)
  (tmp_path / ".ds.build-abc.old-def").mkdir()
  (tmp_path / ".other.build-abc").mkdir()
  (tmp_path / "ds").mkdir()
  atomic.remove_stale(str(tmp_path), ".ds.build-")
  assert sorted(os.listdir(tmp_path)) == [".other.build-abc", "ds"]


def test_swap_replaces_only_with_a_complete_folder(tmp_path):
  final = tmp_path / "ds"
  final.mkdir()
  (final / "old.txt").write_text("old")
  tmp = atomic.make_temp_dir(str(tmp_path), ".ds.build-")
  assert oct(os.stat(tmp).st_mode & 0o777) != oct(0o700)  # not private like mkdtemp's
  with open(os.path.join(tmp, "new.txt"), "w") as f:
    f.write("new")
  atomic.swap_into_place(tmp, str(final))
  assert os.listdir(final) == ["new.txt"] and sorted(os.listdir(tmp_path)) == ["ds"]


def test_write_json_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
  path = tmp_path / "config.json"
  atomic.write_json(str(path), {"seed": 2023})

  def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(json, "dump", full_disk)
  with pytest.raises(OSError):
    atomic.write_json(str(path), {"seed": 7})
  monkeypatch.undo()
  assert json.loads(path.read_text()) == {"seed": 2023}
  assert os.listdir(tmp_path) == ["config.json"]


def test_write_file_is_whole_or_as_it_was_and_keeps_the_extension(tmp_path):
  path = tmp_path / "labels.npy"
  # The temporary path ends in .npy, so np.save writes it as given (it appends .npy otherwise).
  assert atomic.write_file(str(path), lambda p: np.save(p, np.arange(3))) == str(path)
  np.testing.assert_array_equal(np.load(path), [0, 1, 2])

  def fails(p):
    with open(p, "wb") as f:
      f.write(b"half")
    raise OSError(errno.ENOSPC, "No space left on device")
  with pytest.raises(OSError):
    atomic.write_file(str(path), fails)
  np.testing.assert_array_equal(np.load(path), [0, 1, 2])
  assert os.listdir(tmp_path) == ["labels.npy"]


def test_write_npz_writes_exactly_the_named_file_whatever_its_suffix(tmp_path):
  for name in ("model.jaxseg", "classifier.npz"):
    path = tmp_path / name
    assert atomic.write_npz(str(path), {"a": np.arange(4), "b": np.str_("x")}) == str(path)
    with np.load(path) as data:
      np.testing.assert_array_equal(data["a"], [0, 1, 2, 3])
      assert str(data["b"]) == "x"
  assert sorted(os.listdir(tmp_path)) == ["classifier.npz", "model.jaxseg"]
