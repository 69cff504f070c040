"""Tests for jaxseg.io.votenet: the real ScanNet mini set and bad exports written here."""

import csv
import os

import numpy as np
import pytest

from jaxseg import testing
from jaxseg.errors import InputError
from jaxseg.io import labels, votenet

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
  with pytest.raises(InputError, match="not found"):
    votenet.read_votenet_scene(str(tmp_path), "e")
  with pytest.raises(InputError, match="does not exist"):
    votenet.list_votenet_scenes(str(tmp_path / "missing"))
