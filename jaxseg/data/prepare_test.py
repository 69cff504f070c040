"""prepare_dataset on clouds written here: stale sources, rebuilds, concurrent and interrupted
builds, unreadable inputs (reliability report ../shared/notes/reliability_2026-12.md)."""

import importlib.util
import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jaxseg.data import prepare
from jaxseg.errors import InputError

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _data_config(root, dataset_dir, **overrides):
  """The data config of configs/custom_cloud.py for `root`, built into `dataset_dir`."""
  spec = importlib.util.spec_from_file_location(
      "custom_cloud", os.path.join(_REPO, "configs", "custom_cloud.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  data = module.get_config().data
  data.root, data.dataset_dir = str(root), str(dataset_dir)
  for key, value in overrides.items():
    data[key] = value
  return data


def _write_cloud(path, n, seed=0):
  """A floor and a wall (x y z r g b float32 .npy) that VCCS splits into super-voxels."""
  rng = np.random.default_rng(seed)
  xy = rng.uniform(0, 3, (n // 2, 2))
  coords = np.concatenate([np.c_[xy, np.zeros(n // 2)], np.c_[xy[:, 0], np.zeros(n // 2),
                                                              xy[:, 1]]])
  np.save(path, np.c_[coords, rng.integers(0, 256, (len(coords), 3))].astype(np.float32))


def _clouds(folder, sizes):
  folder.mkdir(exist_ok=True)
  for i, n in enumerate(sizes):
    _write_cloud(folder / f"room_{i}.npy", n, seed=i)
  return folder


def _points(handle):
  source = handle.source("all")
  return [len(source[i]["coords"]) for i in range(len(source))]


def _dataset_dirs(parent):
  return sorted(n for n in os.listdir(parent) if not n.startswith("."))


def test_replaced_cloud_is_rebuilt_with_the_reason(tmp_path, caplog):
  """cu_stale_2: after a cloud was replaced, prepare still reported the old point count."""
  scans = _clouds(tmp_path / "scans", [2000, 2000])
  data = _data_config(scans, tmp_path / "datasets")
  assert _points(prepare.prepare_dataset(data)) == [2000, 2000]
  with caplog.at_level(logging.INFO, logger="jaxseg"):
    again = prepare.prepare_dataset(data)
  assert any("reusing" in r.getMessage() for r in caplog.records)
  assert _points(again) == [2000, 2000]
  caplog.clear()
  _write_cloud(scans / "room_1.npy", 500, seed=7)
  with caplog.at_level(logging.INFO, logger="jaxseg"):
    assert _points(prepare.prepare_dataset(data)) == [2000, 500]
  assert any("source files changed" in r.getMessage() and "room_1.npy" in r.getMessage()
             for r in caplog.records)


def test_a_dataset_that_left_scenes_out_says_so_whenever_it_is_used(tmp_path, caplog):
  """A dataset built with data.skip_bad names what it left out, with the file that lists it
  where the dataset lives (not the temporary build folder), each time it is reused."""
  scans = _clouds(tmp_path / "scans", [2000, 2000])
  (scans / "room_9.npy").write_bytes(b"not a cloud")
  datasets = tmp_path / "datasets"
  for skip_bad in (True, False):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jaxseg"):
      assert _points(prepare.prepare_dataset(_data_config(scans, datasets,
                                                          skip_bad=skip_bad))) == [2000, 2000]
    (note,) = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert "1 scene(s)" in note and "room_9.npy" in note and ".build-" not in note
    listed = note.split("are in ")[1].split(". Fix")[0]
    assert os.path.isfile(listed) and listed.startswith(str(datasets))


def test_failed_rebuild_keeps_the_finished_dataset(tmp_path, monkeypatch):
  """cu_noperm_nodac: data.rebuild=True deleted the dataset before the new build failed."""
  scans = _clouds(tmp_path / "scans", [2000, 2000])
  data = _data_config(scans, tmp_path / "datasets")
  handle = prepare.prepare_dataset(data)
  data_dir = os.path.dirname(os.path.dirname(handle.data_dir))
  before = sorted(os.listdir(handle.data_dir))
  broken = _data_config(scans, tmp_path / "datasets", rebuild=True)

  def fail(scene, settings):
    raise InputError(scene.source, "simulated failure", "none")

  with monkeypatch.context() as patch:
    patch.setattr(prepare.supervoxels_api, "compute_with_settings", fail)
    with pytest.raises(InputError, match="simulated failure"):
      prepare.prepare_dataset(broken)
  assert sorted(os.listdir(handle.data_dir)) == before
  assert _points(prepare.prepare_dataset(data)) == [2000, 2000]
  assert _dataset_dirs(tmp_path / "datasets") == [os.path.basename(data_dir)]
  # A successful rebuild replaces it in place.
  assert _points(prepare.prepare_dataset(broken)) == [2000, 2000]
  assert _dataset_dirs(tmp_path / "datasets") == [os.path.basename(data_dir)]


def test_concurrent_builds_build_once(tmp_path):
  """The losing run of two concurrent prepares failed with FileExistsError after building."""
  scans = _clouds(tmp_path / "scans", [3000, 3000, 3000])
  script = textwrap.dedent(f"""
      import importlib.util, logging, sys
      sys.path.insert(0, {_REPO!r})
      from jaxseg.data import prepare
      from jaxseg.data.prepare_test import _data_config
      logging.basicConfig(level=logging.INFO)
      handle = prepare.prepare_dataset(_data_config({str(scans)!r}, {str(tmp_path / "ds")!r}))
      print(len(handle.source("all")))
      """)
  env = {**os.environ, "PYTHONPATH": _REPO}
  runs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
  outputs = [run.communicate(timeout=300) for run in runs]
  assert [run.returncode for run in runs] == [0, 0], outputs[0][1][-2000:]
  assert [out.strip().splitlines()[-1] for out, _ in outputs] == ["3", "3"]
  assert sum("building 3 scene(s)" in err for _, err in outputs) == 1
  assert len(_dataset_dirs(tmp_path / "ds")) == 1
  assert not [n for n in os.listdir(tmp_path / "ds") if ".build-" in n]


def test_interrupted_build_leftovers_are_removed(tmp_path, caplog):
  """SIGKILL left incomplete.* folders that were never cleaned up."""
  scans = _clouds(tmp_path / "scans", [2000])
  data = _data_config(scans, tmp_path / "datasets")
  name = os.path.basename(os.path.dirname(os.path.dirname(prepare.prepare_dataset(data).data_dir)))
  leftover = tmp_path / "datasets" / f".{name}.build-killed" / "jaxseg_custom" / "incomplete.X"
  leftover.mkdir(parents=True)
  with caplog.at_level(logging.INFO, logger="jaxseg"):
    prepare.prepare_dataset(_data_config(scans, tmp_path / "datasets", rebuild=True))
  assert not leftover.parent.parent.exists()
  assert any("left by an interrupted build" in r.getMessage() for r in caplog.records)


def test_missing_frames_root_and_unwritable_dataset_dir(tmp_path):
  """vn_frames_root_missing gave 0 frames silently; a dataset_dir that cannot be written gave
  a traceback."""
  scans = _clouds(tmp_path / "scans", [2000])
  with pytest.raises(InputError, match="data.frames_root does not exist"):
    prepare.prepare_dataset(_data_config(scans, tmp_path / "d",
                                         frames_root=str(tmp_path / "no_frames")))
  (tmp_path / "a_file").write_text("")
  with pytest.raises(InputError) as e:
    prepare.prepare_dataset(_data_config(scans, tmp_path / "a_file" / "datasets"))
  assert "data.dataset_dir" in e.value.fix


def test_tiny_scene_is_skipped_and_listed(tmp_path):
  """A 3-point cloud was accepted with 0 super-voxels."""
  scans = _clouds(tmp_path / "scans", [2000])
  np.save(scans / "tiny.npy", np.float32([[0, 0, 0, 1, 2, 3], [0.1, 0, 0, 1, 2, 3],
                                          [0, 0.1, 0, 1, 2, 3]]))
  handle = prepare.prepare_dataset(_data_config(scans, tmp_path / "d", skip_bad=True))
  assert _points(handle) == [2000]
  assert handle.posed_scenes("all") == []                        # clouds without frames
  with open(os.path.join(handle.data_dir, "skipped_scenes.json")) as f:
    skipped = json.load(f)["all_scenes"]
  assert skipped[0]["scene"] == "tiny.npy" and "no super-voxel" in skipped[0]["error"]


def test_presample_stores_one_point_per_cell_in_its_own_dataset(tmp_path):
  root = _clouds(tmp_path / "clouds", [4000])
  whole = prepare.prepare_dataset(_data_config(root, tmp_path / "ds"))
  thinned = prepare.prepare_dataset(_data_config(root, tmp_path / "ds", presample=0.05))
  assert whole.data_dir != thinned.data_dir   # Its own settings, its own dataset.
  coords = np.load(root / "room_0.npy")[:, :3].astype(np.float64)
  cells = len(np.unique(np.floor(coords / 0.05), axis=0))
  assert _points(whole) == [4000] and _points(thinned) == [cells] and cells < 4000
  record = thinned.source("all")[0]
  assert (np.asarray(record["segments"]) >= 0).any()   # Super-voxels of the kept points.
