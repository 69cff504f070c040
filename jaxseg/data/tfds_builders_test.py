"""Builders: write scenes to ArrayRecord, read them back without TensorFlow."""

import errno
import json
import logging
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxseg.data import tfds_builders
from jaxseg.data.scene import Frames, Scene
from jaxseg.errors import InputError
from jaxseg.testing import require_scannet_mini


def _scene(name, n, seed, *, frames=False, labelled=True, normals=False, segments=True):
  rng = np.random.default_rng(seed)
  fr = None
  if frames:
    poses = rng.normal(size=(2, 4, 4)).astype(np.float32)
    fr = Frames(color_paths=["/data/a/00000.jpg", "rel/00005.jpg"],
                depth_paths=["/data/a/00000.png", "rel/00005.png"], poses=poses,
                color_intrinsics=rng.normal(size=(3, 3)).astype(np.float32),
                depth_intrinsics=rng.normal(size=(3, 3)).astype(np.float32),
                color_size=(1296, 968), depth_size=(640, 480), depth_scale=1000.0)
  return Scene(
      name=name, coords=rng.normal(size=(n, 3)).astype(np.float32),
      colors=rng.integers(0, 256, (n, 3)).astype(np.uint8),
      normals=rng.normal(size=(n, 3)).astype(np.float32) if normals else None,
      labels=rng.integers(-1, 20, n).astype(np.int32) if labelled else None,
      instances=rng.integers(0, 5, n).astype(np.int32),
      segments=rng.integers(-1, 9, n).astype(np.int32) if segments else None, frames=fr)


def _check_record(record, scene, expect_segments=None, expect_normals=None):
  assert record["name"] == scene.name.encode()
  np.testing.assert_array_equal(record["coords"], scene.coords)
  np.testing.assert_array_equal(record["colors"], scene.colors)
  n = scene.num_points
  labels = scene.labels if scene.labels is not None else np.full(n, -1)
  np.testing.assert_array_equal(record["labels"], labels)
  assert bool(record["has_labels"]) == (scene.labels is not None)
  np.testing.assert_array_equal(record["instances"], scene.instances)
  segments = scene.segments if scene.segments is not None else expect_segments
  np.testing.assert_array_equal(record["segments"], segments)
  assert int(record["num_segments"]) == int(segments.max()) + 1
  normals = scene.normals if scene.normals is not None else expect_normals
  np.testing.assert_array_equal(record["normals"], normals if normals is not None
                                else np.zeros((n, 3)))
  fr = record["frames"]
  if scene.frames is None:
    assert fr["poses"].shape == (0, 4, 4) and len(fr["color_paths"]) == 0
  else:
    np.testing.assert_array_equal(fr["poses"], scene.frames.poses)
    np.testing.assert_array_equal(fr["color_intrinsics"], scene.frames.color_intrinsics)
    np.testing.assert_array_equal(fr["depth_intrinsics"], scene.frames.depth_intrinsics)
    assert [p.decode() for p in fr["color_paths"]] == [
        os.path.abspath(p) for p in scene.frames.color_paths]
    assert [p.decode() for p in fr["depth_paths"]] == [
        os.path.abspath(p) for p in scene.frames.depth_paths]
    assert list(fr["color_size"]) == [1296, 968] and list(fr["depth_size"]) == [640, 480]
    assert float(fr["depth_scale"]) == 1000.0


def test_round_trip_without_tensorflow(tmp_path):
  scenes = {"a": _scene("a", 50, 0, frames=True, normals=True),
            "b": _scene("b", 30, 1, labelled=False, segments=False),
            "c": _scene("c", 40, 2)}
  seg_calls, normal_calls = [], []

  def segments_of(scene):
    seg_calls.append(scene.name)
    return np.arange(scene.num_points) % 4

  def normals_of(scene):
    normal_calls.append(scene.name)
    return np.tile(np.float32([0, 0, 1]), (scene.num_points, 1))

  builder = tfds_builders.make_builder(
      "synthetic", str(tmp_path), {"train": ["c", "a"], "val": ["b"]}, scenes.__getitem__,
      compute_segments=segments_of, compute_normals=normals_of)
  builder.download_and_prepare()
  assert seg_calls == ["b"] and sorted(normal_calls) == ["b", "c"]

  readers = [builder.as_data_source(),
             tfds.builder_from_directory(builder.data_dir).as_data_source(),
             tfds.data_source("jaxseg_synthetic", data_dir=str(tmp_path))]
  for splits in readers:
    train, val = splits["train"], splits["val"]
    assert len(train) == 2 and len(val) == 1
    # Records keep the order of the scene list.
    _check_record(train[0], scenes["c"], expect_normals=normals_of(scenes["c"]))
    _check_record(train[1], scenes["a"])
    _check_record(val[0], scenes["b"], expect_segments=np.arange(30) % 4,
                  expect_normals=normals_of(scenes["b"]))
  decoded = tfds_builders.example_to_scene(readers[1]["train"][1])
  assert decoded.frames is not None and len(decoded.frames) == 2
  assert decoded.frames.color_paths[0] == "/data/a/00000.jpg"
  assert tfds_builders.example_to_scene(readers[1]["val"][0]).labels is None
  assert json.load(open(os.path.join(builder.data_dir, "skipped_scenes.json"))) == {}


def test_build_and_read_leave_nothing_in_the_temporary_directory(tmp_path, monkeypatch):
  # tfds 4.9 makes an empty temporary directory for every builder constructed before its
  # dataset exists, and keeps it: thousands of them in /tmp after a few test runs.
  temp = tmp_path / "temp"
  temp.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(temp))
  scenes = {"a": _scene("a", 20, 0)}
  for _ in range(2):   # the second construction finds the dataset prepared
    builder = tfds_builders.make_builder("synthetic", str(tmp_path / "data"), {"train": ["a"]},
                                         scenes.__getitem__)
    builder.download_and_prepare()
    assert len(builder.as_data_source()["train"]) == 1
  assert not list(temp.iterdir())


def test_build_and_read_never_import_tensorflow(tmp_path):
  # A fresh interpreter, so modules imported by other tests in this session do not count.
  script = textwrap.dedent(f"""
      import sys
      import numpy as np
      import tensorflow_datasets as tfds
      from jaxseg.data import tfds_builders
      from jaxseg.data.pipeline import PipelineConfig, make_iterator
      from jaxseg.data.scene import Scene
      scene = Scene("s", np.random.rand(100, 3).astype(np.float32),
                    np.zeros((100, 3), np.uint8), segments=np.zeros(100, np.int32))
      builder = tfds_builders.make_builder("custom", {str(tmp_path)!r}, {{"train": ["s"]}},
                                           lambda _: scene)
      builder.download_and_prepare()
      source = tfds.builder_from_directory(builder.data_dir).as_data_source()["train"]
      config = PipelineConfig(batch_size=1, voxel_size=0.1)
      packs = next(iter(make_iterator(source, config, seed=0, train=True, num_packs=1,
                                      process_count=1, process_index=0)))
      assert len(packs[0].arrays["point_to_voxel"]) == 100
      print("tensorflow" in sys.modules)
      """)
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = {**os.environ, "PYTHONPATH": root}
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path), check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip().splitlines()[-1] == "False"


def test_bad_scene_raises_or_is_skipped_and_listed(tmp_path, caplog):
  good = {"g1": _scene("g1", 20, 3), "g2": _scene("g2", 25, 4)}

  def load(scene_id):
    if scene_id == "broken":
      raise InputError("/data/broken.ply", "the scene has no points", "re-export it")
    return good[scene_id]

  ids = {"train": ["g1", "broken", "g2"]}
  with pytest.raises(InputError, match="scene broken: the scene has no points"):
    tfds_builders.make_builder("scannet", str(tmp_path / "strict"), ids, load
                               ).download_and_prepare()

  builder = tfds_builders.make_builder("scannet", str(tmp_path / "lenient"), ids, load,
                                       skip_bad=True)
  with caplog.at_level(logging.WARNING):
    builder.download_and_prepare()
  assert any("broken" in r.getMessage() and r.levelno == logging.WARNING
             for r in caplog.records)
  train = builder.as_data_source()["train"]
  assert [train[i]["name"] for i in range(len(train))] == [b"g1", b"g2"]
  skipped = json.load(open(os.path.join(builder.data_dir, "skipped_scenes.json")))
  assert [s["scene"] for s in skipped["train"]] == ["broken"]
  assert "no points" in skipped["train"][0]["error"]


def test_invalid_scene_content_is_an_input_error(tmp_path):
  bad = _scene("nan", 10, 5)
  bad.coords[3, 1] = np.nan
  with pytest.raises(InputError, match="scene nan: .*NaN"):
    tfds_builders.make_builder("custom", str(tmp_path), {"train": ["nan"]}, lambda _: bad
                               ).download_and_prepare()


def test_kinds_have_distinct_names_and_bad_use_is_reported(tmp_path):
  names = {tfds_builders.BUILDERS[k].name for k in tfds_builders.KINDS}
  assert names == {"jaxseg_scannet", "jaxseg_s3dis", "jaxseg_custom", "jaxseg_synthetic"}
  with pytest.raises(InputError, match="unknown dataset kind"):
    tfds_builders.make_builder("kitti", str(tmp_path), {"train": []}, lambda _: None)
  with pytest.raises(InputError, match="no scene list or loader"):
    tfds_builders.S3disScenes(data_dir=str(tmp_path)).download_and_prepare()


def test_real_votenet_scenes_round_trip(tmp_path):
  from jaxseg.io.votenet import read_votenet_scene  # pylint: disable=g-import-not-at-top
  labeled = os.path.join(require_scannet_mini(), "labeled")
  ids = ["scene0000_00", "scene0001_00"]
  load = lambda scene_id: read_votenet_scene(labeled, scene_id)
  builder = tfds_builders.make_builder(
      "scannet", str(tmp_path), {"train": ids}, load,
      compute_segments=lambda s: (s.coords[:, 2] > 1.0).astype(np.int32))
  builder.download_and_prepare()
  train = tfds.builder_from_directory(builder.data_dir).as_data_source()["train"]
  for i, scene_id in enumerate(ids):
    scene = load(scene_id)
    _check_record(train[i], scene,
                  expect_segments=(scene.coords[:, 2] > 1.0).astype(np.int32))


# Probes of the reliability report (../shared/notes/reliability_2026-12.md).


def _failing_loader(good, failures):
  """A loader that raises `failures[scene_id]` for those scenes and returns `good[scene_id]`."""

  def load(scene_id):
    if scene_id in failures:
      raise failures[scene_id]
    return good[scene_id]

  return load


def test_skip_bad_catches_every_per_scene_failure(tmp_path):
  """Only InputError was skipped: a PermissionError or an IndexError (0-vertex mesh,
  sn_empty_skip) aborted the whole build with a traceback."""
  good = {"g1": _scene("g1", 20, 3), "g2": _scene("g2", 25, 4)}
  failures = {"locked": PermissionError(errno.EACCES, "Permission denied", "/data/locked.npy"),
              "odd": IndexError("index 0 is out of bounds for axis 0 with size 0")}
  ids = {"train": ["g1", "locked", "odd", "g2"]}
  builder = tfds_builders.make_builder("scannet", str(tmp_path), ids,
                                       _failing_loader(good, failures), skip_bad=True)
  builder.download_and_prepare()
  train = builder.as_data_source()["train"]
  assert [train[i]["name"] for i in range(len(train))] == [b"g1", b"g2"]
  skipped = json.load(open(os.path.join(builder.data_dir, "skipped_scenes.json")))["train"]
  assert [s["scene"] for s in skipped] == ["locked", "odd"]
  # A permission problem is told to fix the permissions, not to re-download the file.
  assert "/data/locked.npy: scene locked: permission denied" in skipped[0]["error"]
  assert "chmod" in skipped[0]["error"] and "re-download" not in skipped[0]["error"]
  assert "IndexError" in skipped[1]["error"]


def test_without_skip_bad_any_failure_is_one_input_error(tmp_path):
  failures = {"odd": IndexError("index 0 is out of bounds")}
  with pytest.raises(InputError, match="scene odd: reading failed with IndexError") as e:
    tfds_builders.make_builder("scannet", str(tmp_path), {"train": ["odd"]},
                               _failing_loader({}, failures)).download_and_prepare()
  assert "skip_bad=True" in e.value.fix


def test_a_full_disk_stops_the_build_even_with_skip_bad(tmp_path):
  failures = {"a": OSError(errno.ENOSPC, "No space left on device", "/cache/x")}
  with pytest.raises(OSError) as e:
    tfds_builders.make_builder("scannet", str(tmp_path), {"train": ["a", "b"]},
                               _failing_loader({"b": _scene("b", 5, 0)}, failures),
                               skip_bad=True).download_and_prepare()
  assert e.value.errno == errno.ENOSPC


def test_a_split_with_every_scene_skipped_is_a_clear_error(tmp_path):
  """vn_empty_skip: tfds raised 'AssertionError: No examples were yielded'."""
  failures = {s: InputError(f"/data/{s}_vert.npy", "the scene has no points", "re-export")
              for s in ("a", "b")}
  with pytest.raises(InputError, match=r"all 2 scenes of split 'train' were skipped as bad"):
    tfds_builders.make_builder("scannet", str(tmp_path), {"train": ["a", "b"]},
                               _failing_loader({}, failures), skip_bad=True
                               ).download_and_prepare()


def test_scene_without_any_super_voxel_is_reported(tmp_path):
  """Degenerate 1- or 3-point scenes were accepted with 0 super-voxels and no warning."""
  tiny = _scene("tiny", 3, 0, segments=False)
  with pytest.raises(InputError, match="no super-voxel could be formed from the scene's 3"):
    tfds_builders.make_builder("custom", str(tmp_path), {"train": ["tiny"]}, lambda _: tiny,
                               compute_segments=lambda s: np.full(s.num_points, -1)
                               ).download_and_prepare()


def test_origin_is_stored_and_restored(tmp_path):
  scene = _scene("geo", 10, 0)
  scene.origin = np.array([431234.0, 5412345.0, 250.0])
  builder = tfds_builders.make_builder("custom", str(tmp_path), {"train": ["geo"]},
                                       lambda _: scene)
  builder.download_and_prepare()
  record = builder.as_data_source()["train"][0]
  np.testing.assert_array_equal(record["origin"], scene.origin)
  decoded = tfds_builders.example_to_scene(record)
  np.testing.assert_array_equal(decoded.source_coords(),
                                scene.coords.astype(np.float64) + scene.origin)
