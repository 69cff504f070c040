"""The grain pipeline end to end, against independent references."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxseg.data import tfds_builders
from jaxseg.data.augment import AugmentConfig
from jaxseg.data.buckets import Buckets
from jaxseg.data.pipeline import PipelineConfig, make_iterator
from jaxseg.data.scene import Scene
from jaxseg.errors import InputError

BUCKETS = Buckets(point_caps=(64, 128, 256), voxel_caps=(64, 128, 256))
CONFIG = PipelineConfig(voxel_size=0.25, batch_size=2, buckets=BUCKETS, voxel_labels=True,
                        augment=AugmentConfig(translate=0.5))


def _records(sizes, seed=0, normals=()):
  """Random rooms; rooms whose index is in `normals` carry random unit normals (the others carry
  zeros and has_normals False, like tfds records of scenes without normals)."""
  rng = np.random.default_rng(seed)
  records = []
  for i, n in enumerate(sizes):
    unit = rng.normal(size=(n, 3))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    records.append({
        "name": f"room{i}".encode(),
        "coords": (rng.random((n, 3)) * [3.0, 2.0, 1.0]).astype(np.float32),
        "colors": rng.integers(0, 256, (n, 3)).astype(np.uint8),
        "normals": (unit if i in normals else np.zeros((n, 3))).astype(np.float32),
        "has_normals": np.bool_(i in normals),
        "labels": rng.integers(-1, 5, n).astype(np.int32),
        "segments": rng.integers(-1, 6, n).astype(np.int32)})
  return records


def _batches(source, config=CONFIG, **kwargs):
  kwargs = {"seed": 0, "train": True, "process_index": 0, "process_count": 1, **kwargs}
  return list(make_iterator(source, config, **kwargs))


def _check_against_record(batch, row, record, voxel_size):
  """Independent reconstruction of one batch row from the raw record."""
  valid = batch["point_mask"][row]
  index = batch["point_index"][row][valid]
  np.testing.assert_array_equal(batch["point_labels"][row][valid], record["labels"][index])
  np.testing.assert_array_equal(batch["point_segments"][row][valid], record["segments"][index])
  t = batch["transform"][row].astype(np.float64)
  coords = record["coords"][index].astype(np.float64) @ t[:3, :3].T + t[:3, 3]
  np.testing.assert_allclose(batch["point_coords"][row][valid], coords, atol=1e-5)
  np.testing.assert_allclose(batch["point_colors"][row][valid], record["colors"][index] / 255.0,
                             atol=1e-6)
  normals = batch["point_normals"][row]
  np.testing.assert_array_equal(normals[~valid], 0)
  if record.get("has_normals", False):
    # Normals map with the inverse transpose of the linear part, then are renormalised.
    expected = record["normals"][index].astype(np.float64) @ np.linalg.inv(t[:3, :3])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(normals[valid], expected, atol=1e-5)
  else:
    np.testing.assert_array_equal(normals[valid], 0)
  floor = np.floor(batch["point_coords"][row][valid].astype(np.float64) / voxel_size)
  ref_coords, ref_inverse = np.unique(floor - floor.min(axis=0), axis=0, return_inverse=True)
  vmask = batch["voxel_mask"][row]
  np.testing.assert_array_equal(batch["voxel_coords"][row][vmask], ref_coords)
  np.testing.assert_array_equal(batch["point_to_voxel"][row][valid], ref_inverse.reshape(-1))
  np.testing.assert_array_equal(batch["point_to_voxel"][row][~valid], len(vmask))
  colour_sums = np.zeros((len(ref_coords), 3))
  np.add.at(colour_sums, ref_inverse.reshape(-1), record["colors"][index] / 255.0 - 0.5)
  counts = np.bincount(ref_inverse.reshape(-1))
  np.testing.assert_allclose(batch["voxel_feats"][row][vmask][:, :3],
                             colour_sums / counts[:, None], atol=1e-5)


def test_training_batches_follow_the_records():
  records = _records([40, 100, 70, 30, 120], normals=(0, 2, 3))
  batches = _batches(records, num_epochs=2)
  assert len(batches) == 5  # 10 elements over 2 epochs in batches of 2
  seen = []
  for batch in batches:
    assert batch["point_mask"].shape[1] in BUCKETS.point_caps
    largest = max(len(records[i]["coords"]) for i in batch["scene_index"])
    assert batch["point_mask"].shape[1] == BUCKETS.point_caps[BUCKETS.select(largest, 0)]
    for row, index in enumerate(batch["scene_index"]):
      _check_against_record(batch, row, records[index], CONFIG.voxel_size)
      seen.append(int(index))
  # Each epoch visits every record once, in a new order.
  assert sorted(seen[:5]) == sorted(seen[5:]) == list(range(5))
  assert seen[:5] != seen[5:]


def test_seed_fixes_the_stream():
  records = _records([40, 50, 60, 70], normals=(1,))
  first, again = _batches(records, seed=3), _batches(records, seed=3)
  other = _batches(records, seed=4)
  for a, b in zip(first, again):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  assert any(not np.array_equal(a["transform"], b["transform"]) for a, b in zip(first, other))


def test_evaluation_is_ordered_unaugmented_and_padded():
  records = _records([40, 100, 70])
  batches = _batches(records, train=False)
  np.testing.assert_array_equal(np.concatenate([b["scene_index"] for b in batches]),
                                [0, 1, 2, -1])
  assert not batches[1]["point_mask"][1].any()
  for batch in batches:
    np.testing.assert_array_equal(batch["transform"], np.broadcast_to(np.eye(4), (2, 4, 4)))
  _check_against_record(batches[1], 0, records[2], CONFIG.voxel_size)
  # Padding never changes valid outputs: scene 0 alone (bucket 0) vs beside scene 1 (bucket 1).
  alone = _batches(records[:1], train=False, config=PipelineConfig(
      voxel_size=0.25, batch_size=2, buckets=BUCKETS, voxel_labels=True))[0]
  assert alone["point_mask"].shape[1] == 64 and batches[0]["point_mask"].shape[1] == 128
  for key in ("voxel_feats", "voxel_coords", "voxel_labels"):
    np.testing.assert_array_equal(alone[key][0][alone["voxel_mask"][0]],
                                  batches[0][key][0][batches[0]["voxel_mask"][0]])


def test_oversized_scene_is_cropped_or_reported():
  records = _records([300, 40], normals=(0,))
  with pytest.raises(InputError, match="room0: the scene has 300 points"):
    _batches(records, train=False)
  cropped = PipelineConfig(voxel_size=0.25, batch_size=2, buckets=BUCKETS, max_points=200)
  batch = _batches(records, config=cropped, train=False)[0]
  np.testing.assert_array_equal(batch["point_mask"].sum(axis=1), [200, 40])
  _check_against_record(batch, 0, records[0], cropped.voxel_size)


def test_processes_split_the_records():
  records = _records([30, 40, 50, 60, 70, 80, 90])
  config = PipelineConfig(voxel_size=0.25, batch_size=2, buckets=BUCKETS)
  shares = [np.concatenate([b["scene_index"] for b in _batches(
      records, config=config, process_index=i, process_count=2, num_epochs=1)])
            for i in range(2)]
  # Per-process batch 1; training gives both processes 3 records (record 6 is left out).
  assert sorted(shares[0]) == [0, 2, 4] and sorted(shares[1]) == [1, 3, 5]
  evaluation = [np.concatenate([b["scene_index"] for b in _batches(
      records, config=config, process_index=i, process_count=2, train=False)])
                for i in range(2)]
  assert list(evaluation[0]) == [0, 2, 4, 6] and list(evaluation[1]) == [1, 3, 5]


def test_config_from_dict():
  config = PipelineConfig.from_dict({
      "voxel_size": 0.05, "batch_size": 8, "max_points": 1000,
      "buckets": {"point_caps": [1000, 2000], "voxel_caps": [500, 1000]},
      "augment": {"tilt": 0.0, "color_jitter": 3.0}})
  assert config.buckets == Buckets((1000, 2000), (500, 1000))
  assert config.augment.tilt == 0.0 and config.augment.color_jitter == 3.0
  with pytest.raises(InputError, match="unknown pipeline option"):
    PipelineConfig.from_dict({"voxel": 0.02})
  with pytest.raises(InputError, match="data.augment: unknown augmentation"):
    PipelineConfig.from_dict({"augment": {"spin": 1}})
  with pytest.raises(InputError, match="voxel size"):
    PipelineConfig.from_dict({"voxel_size": 0})


def test_reads_a_built_arrayrecord_dataset(tmp_path):
  records = _records([50, 80, 60], normals=(1,))
  scenes = {r["name"].decode(): Scene(r["name"].decode(), r["coords"], r["colors"],
                                      normals=r["normals"] if r["has_normals"] else None,
                                      labels=r["labels"], segments=r["segments"])
            for r in records}
  builder = tfds_builders.make_builder("synthetic", str(tmp_path), {"train": list(scenes)},
                                       scenes.__getitem__)
  builder.download_and_prepare()
  source = tfds.data_source("jaxseg_synthetic", data_dir=str(tmp_path))["train"]
  batches = _batches(source, num_epochs=1, train=True)
  for batch in batches:
    for row, index in enumerate(batch["scene_index"]):
      _check_against_record(batch, row, records[index], CONFIG.voxel_size)
