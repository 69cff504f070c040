"""End-to-end `prepare` runs through experiments/main.py on data the tests write themselves."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow_datasets as tfds

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _prepare(tmp_path, config, *overrides):
  env = dict(os.environ, JAXSEG_CACHE=str(tmp_path / "cache"))
  return subprocess.run(
      [sys.executable, os.path.join(_ROOT, "experiments", "main.py"), "--config",
       os.path.join(_ROOT, "configs", config), f"--config.workdir={tmp_path / 'work'}",
       "--config.mode=prepare", *overrides],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def _write_clouds(folder, rng):
  """Two planar clouds as .npy (x y z r g b) and one with a NaN coordinate."""
  folder.mkdir()
  clouds = {}
  for name in ("room_a", "room_b"):
    xy = rng.uniform(0, 3, size=(3000, 2))
    floor = np.c_[xy, rng.normal(0, 0.002, 3000)]
    wall = np.c_[xy[:, 0], np.zeros(3000), xy[:, 1]]
    coords = np.concatenate([floor, wall]).astype(np.float32)
    colors = rng.integers(0, 256, size=(6000, 3)).astype(np.float32)
    clouds[name] = np.c_[coords, colors]
    np.save(folder / f"{name}.npy", clouds[name])
  broken = clouds["room_a"].copy()
  broken[17, 1] = np.nan
  np.save(folder / "room_broken.npy", broken)
  return clouds


def test_bad_scene_stops_the_build_unless_skip_bad(tmp_path):
  clouds = _write_clouds(tmp_path / "scans", np.random.default_rng(0))
  common = (f"--config.data.root={tmp_path / 'scans'}", "--config.data.batch_size=2")

  result = _prepare(tmp_path, "custom_cloud.py", *common)
  assert result.returncode != 0
  assert "room_broken.npy" in result.stderr and "NaN" in result.stderr
  assert "skip_bad=True" in result.stderr

  result = _prepare(tmp_path, "custom_cloud.py", *common, "--config.data.skip_bad=True")
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "work" / "prepare_summary.json") as f:
    summary = json.load(f)
  skipped = summary["skipped_scenes"]["all_scenes"]
  assert [s["scene"] for s in skipped] == ["room_broken.npy"]
  assert summary["splits"]["all"]["scenes"] == 2
  assert summary["pipeline"]["scenes"] == 2

  # The stored records are the clouds that were written, read back without TensorFlow.
  source = tfds.builder_from_directory(
      os.path.join(summary["dataset_dir"])).as_data_source(split="all_scenes")
  for record in (source[0], source[1]):
    name = record["name"].decode()
    expected = clouds[name.removesuffix(".npy")]
    np.testing.assert_allclose(record["coords"], expected[:, :3], atol=1e-6)
    np.testing.assert_array_equal(record["colors"], expected[:, 3:].astype(np.uint8))
    assert (record["segments"] >= -1).all() and record["num_segments"] > 1
    # Normals were estimated: floor points face +-z, wall points face +-y.
    assert np.abs(record["normals"][:3000, 2]).mean() > 0.95
    assert np.abs(record["normals"][3000:, 1]).mean() > 0.95
  assert "tensorflow" not in sys.modules


def test_default_synthetic_dataset_is_generated_read_and_stored(tmp_path):
  """The default job's path: generate the built-in rooms, read them with the ScanNet reader,
  store them, and read the records back equal to an independent read of the export."""
  from jaxseg.io import scannet  # pylint: disable=g-import-not-at-top
  result = _prepare(tmp_path, "scannet_svc.py", "--config.data.synthetic.num_train=2",
                    "--config.data.synthetic.num_val=1",
                    "--config.data.synthetic.frames_per_scene=2", "--config.data.batch_size=2")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Generating the built-in synthetic ScanNet-format dataset" in result.stderr
  with open(tmp_path / "work" / "prepare_summary.json") as f:
    summary = json.load(f)
  assert summary["splits"]["train"]["scenes"] == 2 and summary["splits"]["val"]["scenes"] == 1
  assert summary["pipeline"]["scenes"] == 2
  source = tfds.builder_from_directory(summary["dataset_dir"]).as_data_source(split="train")
  record = source[0]
  scene = scannet.read_scannet_scene(summary["source_root"], record["name"].decode(),
                                     with_frames=True)
  np.testing.assert_array_equal(record["coords"], scene.coords)
  np.testing.assert_array_equal(record["labels"], scene.labels)
  np.testing.assert_array_equal(record["segments"], scene.segments)
  assert len(record["frames"]["poses"]) == 2
  np.testing.assert_allclose(record["frames"]["poses"], scene.frames.poses)
  # The build lists the scenes with posed frames (every built-in room has them).
  folder = os.path.dirname(os.path.dirname(summary["dataset_dir"]))   # <folder>/<builder>/<version>
  with open(os.path.join(folder, "jaxseg_sources.json")) as f:
    posed = json.load(f)["posed_scenes"]
  assert posed["train"] == [source[i]["name"].decode() for i in range(len(source))]
  assert len(posed["val"]) == 1
  # The second run reuses the dataset instead of building it again.
  again = _prepare(tmp_path, "scannet_svc.py", "--config.data.synthetic.num_train=2",
                   "--config.data.synthetic.num_val=1",
                   "--config.data.synthetic.frames_per_scene=2", "--config.data.batch_size=2")
  assert again.returncode == 0 and "reusing the dataset" in again.stderr


def test_real_scannet_mini_prepares(tmp_path):
  from jaxseg.io import votenet  # pylint: disable=g-import-not-at-top
  from jaxseg.testing import require_scannet_mini  # pylint: disable=g-import-not-at-top
  root = require_scannet_mini()
  result = _prepare(tmp_path, "scannet_mini.py", "--config.data.max_scenes=2",
                    "--config.data.batch_size=2")
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "work" / "prepare_summary.json") as f:
    summary = json.load(f)
  source = tfds.builder_from_directory(summary["dataset_dir"]).as_data_source(split="all_scenes")
  assert len(source) == 2
  for record in (source[0], source[1]):
    scene = votenet.read_votenet_scene(os.path.join(root, "labeled"), record["name"].decode())
    np.testing.assert_array_equal(record["coords"], scene.coords)
    np.testing.assert_array_equal(record["labels"], scene.labels)
    # VCCS + region growing super-voxels cover the scan in a sane number of pieces.
    assert 50 < record["num_segments"] < 2000
