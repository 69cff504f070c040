"""The grain pipeline end to end, against independent references."""

import dataclasses

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxseg.data import capacity
from jaxseg.data import packing
from jaxseg.data import tfds_builders
from jaxseg.data.augment import AugmentConfig
from jaxseg.data.pipeline import PipelineConfig, make_iterator
from jaxseg.data.scene import Scene
from jaxseg.errors import InputError

CONFIG = PipelineConfig(voxel_size=0.25, batch_size=2, augment=AugmentConfig(translate=0.5))


def _batches(source, config=CONFIG, num_packs=1, **kwargs):
  """Every batch of a stream, padded to its tight signature (training streams: 2 epochs)."""
  kwargs = {"seed": 0, "train": True, "process_index": 0, "process_count": 1, **kwargs}
  if kwargs["train"]:
    kwargs.setdefault("num_batches", 2 * (len(source) // config.batch_size))
  out = []
  for packs in make_iterator(source, config, num_packs=num_packs, **kwargs):
    signature = capacity.tight(packing.batch_needs(packs))
    out.append(packing.pad_packs(packs, signature, config.geometry))
  return out


def _scenes(batch):
  """(pack, slot, record index) of every scene of a padded batch."""
  return [(g, z, int(i)) for g, slots in enumerate(batch["scene_index"])
          for z, i in enumerate(slots) if i >= 0]


def _check_against_record(batch, pack, slot, record, voxel_size):
  """Independent reconstruction of one scene of a packed batch from the raw record."""
  valid = batch["point_mask"][pack] & (batch["point_scene"][pack] == slot)
  index = batch["point_index"][pack][valid]
  np.testing.assert_array_equal(np.sort(index), np.arange(len(record["coords"])))
  np.testing.assert_array_equal(batch["point_labels"][pack][valid], record["labels"][index])
  segments = record["segments"][index]
  offset = batch["scene_segment_offset"][pack, slot]
  np.testing.assert_array_equal(batch["point_segments"][pack][valid],
                                np.where(segments >= 0, segments + offset, -1))
  t = batch["scene_transform"][pack, slot].astype(np.float64)
  coords = record["coords"][index].astype(np.float64) @ t[:3, :3].T + t[:3, 3]
  np.testing.assert_allclose(batch["point_coords"][pack][valid], coords, atol=1e-5)
  np.testing.assert_allclose(batch["point_colors"][pack][valid], record["colors"][index] / 255.0,
                             atol=1e-6)
  normals = batch["point_normals"][pack]
  np.testing.assert_array_equal(normals[~batch["point_mask"][pack]], 0)
  if record.get("has_normals", False):
    # Normals map with the inverse transpose of the linear part, then are renormalised.
    expected = record["normals"][index].astype(np.float64) @ np.linalg.inv(t[:3, :3])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(normals[valid], expected, atol=1e-5)
  else:
    np.testing.assert_array_equal(normals[valid], 0)
  floor = np.floor(batch["point_coords"][pack][valid].astype(np.float64) / voxel_size)
  ref_coords, ref_inverse = np.unique(floor - floor.min(axis=0), axis=0, return_inverse=True)
  rows = batch["point_to_voxel"][pack][valid]
  first = rows.min()
  np.testing.assert_array_equal(rows - first, ref_inverse.reshape(-1))
  placed = batch["voxel_coords"][pack][first:first + len(ref_coords)]
  np.testing.assert_array_equal(placed - placed.min(axis=0), ref_coords)
  colour_sums = np.zeros((len(ref_coords), 3))
  np.add.at(colour_sums, ref_inverse.reshape(-1), record["colors"][index] / 255.0 - 0.5)
  counts = np.bincount(ref_inverse.reshape(-1))
  np.testing.assert_allclose(batch["voxel_feats"][pack][first:first + len(ref_coords), :3],
                             colour_sums / counts[:, None], atol=1e-5)


def test_training_batches_follow_the_records(random_rooms):
  records = random_rooms([40, 100, 70, 30, 120], normals=(0, 2, 3))
  batches = _batches(records)
  assert len(batches) == 4  # 2 epochs of 2 batches of 2 (one record left out per epoch)
  seen = []
  for batch in batches:
    for g, z, index in _scenes(batch):
      _check_against_record(batch, g, z, records[index], CONFIG.voxel_size)
      seen.append(index)
    segments = batch["point_segments"][0][batch["point_mask"][0]]
    segments = segments[segments >= 0]
    assert np.all(np.diff(segments) >= 0)   # Points are ordered by super-voxel.
  # Each epoch visits distinct records, in a new order.
  assert len(set(seen[:4])) == 4 and len(set(seen[4:])) == 4 and seen[:4] != seen[4:]


def test_mixup_adds_an_unlabelled_second_scene_on_the_first_ones_centre(random_rooms):
  records = random_rooms([40, 100, 70, 30, 120], normals=(0, 2, 3))
  config = dataclasses.replace(CONFIG, mixup=True)
  plain = _batches(records)
  mixed = _batches(records, config)
  assert len(mixed) == len(plain)
  for batch, reference in zip(mixed, plain):
    assert _scenes(batch) == _scenes(reference)   # The same scenes in the same slots.
    for g, z, index in _scenes(batch):
      valid = batch["point_mask"][g] & (batch["point_scene"][g] == z)
      own = valid & (batch["point_index"][g] >= 0)
      added = valid & (batch["point_index"][g] < 0)
      n = len(records[index]["coords"])
      # The scene's own points are exactly the unmixed stream's (same augmentation draw).
      np.testing.assert_array_equal(np.sort(batch["point_index"][g][own]), np.arange(n))
      ref = reference["point_mask"][g] & (reference["point_scene"][g] == z)
      order = np.argsort(batch["point_index"][g][own])
      ref_order = np.argsort(reference["point_index"][g][ref])
      np.testing.assert_allclose(batch["point_coords"][g][own][order],
                                 reference["point_coords"][g][ref][ref_order], atol=1e-6)
      np.testing.assert_array_equal(batch["point_labels"][g][own][order],
                                    reference["point_labels"][g][ref][ref_order])
      # The partner: one whole record, no labels or super-voxels, centred on the scene.
      partner = batch["point_coords"][g][added].astype(np.float64)
      assert any(len(partner) == len(r["coords"]) for r in records)
      assert np.all(batch["point_labels"][g][added] == -1)
      assert np.all(batch["point_segments"][g][added] == -1)
      np.testing.assert_allclose(partner.mean(0),
                                 batch["point_coords"][g][own].astype(np.float64).mean(0),
                                 atol=1e-4)
      # One voxel grid over the union (float64 numpy reference).
      floor = np.floor(batch["point_coords"][g][valid].astype(np.float64) / CONFIG.voxel_size)
      _, inverse = np.unique(floor, axis=0, return_inverse=True)
      rows = batch["point_to_voxel"][g][valid]
      np.testing.assert_array_equal(rows - rows.min(), inverse.reshape(-1))


def test_two_packs_split_the_batch_and_the_stream_is_random_access(random_rooms):
  records = random_rooms([40, 100, 70, 30, 120, 60, 50, 90])
  config = PipelineConfig(voxel_size=0.25, batch_size=4, augment=AugmentConfig(translate=0.5))
  batches = _batches(records, config=config, num_packs=2)
  for batch in batches:
    assert batch["scene_index"].shape == (2, 2) and len(_scenes(batch)) == 4
    for g, z, index in _scenes(batch):
      _check_against_record(batch, g, z, records[index], config.voxel_size)
  later = _batches(records, config=config, num_packs=2, start=3, num_batches=1)[0]
  for key in later:
    np.testing.assert_array_equal(later[key], batches[3][key])


def test_seed_fixes_the_stream(random_rooms):
  records = random_rooms([40, 50, 60, 70], normals=(1,))
  first, again = _batches(records, seed=3), _batches(records, seed=3)
  other = _batches(records, seed=4)
  for a, b in zip(first, again):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  assert any(not np.array_equal(a["scene_transform"], b["scene_transform"])
             for a, b in zip(first, other))


def test_evaluation_is_ordered_unaugmented_uncropped_and_short_at_the_end(random_rooms):
  records = random_rooms([300, 100, 70])
  config = PipelineConfig(voxel_size=0.25, batch_size=2, max_points=50, clip_box=0.01)
  batches = _batches(records, config=config, train=False)
  assert [_scenes(b) for b in batches] == [[(0, 0, 0), (0, 1, 1)], [(0, 0, 2)]]
  assert batches[1]["scene_index"][0, 1] == -1
  for batch in batches:
    np.testing.assert_array_equal(batch["scene_transform"],
                                  np.broadcast_to(np.eye(4), (1, 2, 4, 4)))
  _check_against_record(batches[0], 0, 0, records[0], config.voxel_size)   # never cropped or clipped
  _check_against_record(batches[1], 0, 0, records[2], config.voxel_size)


def test_training_crops_large_scenes(random_rooms):
  records = random_rooms([300, 40], normals=(0,))
  cropped = PipelineConfig(voxel_size=0.25, batch_size=2, max_points=200)
  batch = _batches(records, config=cropped, num_batches=1)[0]
  counts = {index: int((batch["point_mask"][g] & (batch["point_scene"][g] == z)).sum())
            for g, z, index in _scenes(batch)}
  assert counts == {0: 200, 1: 40}


def test_training_clips_to_the_box_then_crops(random_rooms):
  records = random_rooms([300, 40], normals=(0,))
  coords = np.asarray(records[0]["coords"])
  centre = (coords[:, :2].min(0) + coords[:, :2].max(0)) / 2
  half = 0.3 * float(np.max(coords[:, :2].max(0) - coords[:, :2].min(0)))
  inside = int(np.all(np.abs(coords[:, :2] - centre) <= half, axis=1).sum())
  assert 0 < inside < 300
  clipped = PipelineConfig(voxel_size=0.25, batch_size=2, clip_box=half,
                           augment=AugmentConfig.none())
  batch = _batches(records, config=clipped, num_batches=1)[0]
  counts = {index: int((batch["point_mask"][g] & (batch["point_scene"][g] == z)).sum())
            for g, z, index in _scenes(batch)}
  assert counts[0] == inside


def test_processes_split_the_global_batches(random_rooms):
  records = random_rooms([30, 40, 50, 60, 70, 80, 90])
  config = PipelineConfig(voxel_size=0.25, batch_size=2, augment=AugmentConfig.none())
  one = [sorted(i for _, _, i in _scenes(b))
         for b in _batches(records, config=config, num_batches=3)]
  shares = [[[i for _, _, i in _scenes(b)] for b in _batches(
      records, config=config, process_index=p, process_count=2, num_batches=3)]
            for p in range(2)]
  # Two processes read one scene each of the one-process run's global batches (3 batches
  # an epoch; record left over by the shuffle drops out).
  assert [sorted(a + b) for a, b in zip(*shares)] == one
  assert all(len(a) == 1 and len(b) == 1 for a, b in zip(*shares))
  evaluation = [[[i for _, _, i in _scenes(b)] for b in _batches(
      records, config=config, process_index=p, process_count=2, train=False)]
                for p in range(2)]
  # As many batches on every process; the short last one leaves process 1 an empty batch.
  assert evaluation[0] == [[0], [2], [4], [6]] and evaluation[1] == [[1], [3], [5], []]


def test_config_from_dict():
  config = PipelineConfig.from_dict({
      "voxel_size": 0.05, "batch_size": 8, "max_points": 1000,
      "augment": {"tilt": 0.0, "color_jitter": 3.0}})
  assert config.augment.tilt == 0.0 and config.augment.color_jitter == 3.0
  with pytest.raises(InputError, match="unknown pipeline option"):
    PipelineConfig.from_dict({"voxel": 0.02})
  with pytest.raises(InputError, match="data.augment: unknown augmentation"):
    PipelineConfig.from_dict({"augment": {"spin": 1}})
  with pytest.raises(InputError, match="voxel size"):
    PipelineConfig.from_dict({"voxel_size": 0})
  with pytest.raises(InputError, match="voxel size"):
    PipelineConfig.from_dict({"voxel_size": float("nan")})


def test_reads_a_built_arrayrecord_dataset(tmp_path, random_rooms):
  records = random_rooms([50, 80, 60], normals=(1,))
  scenes = {r["name"].decode(): Scene(r["name"].decode(), r["coords"], r["colors"],
                                      normals=r["normals"] if r["has_normals"] else None,
                                      labels=r["labels"], segments=r["segments"])
            for r in records}
  builder = tfds_builders.make_builder("synthetic", str(tmp_path), {"train": list(scenes)},
                                       scenes.__getitem__)
  builder.download_and_prepare()
  source = tfds.data_source("jaxseg_synthetic", data_dir=str(tmp_path))["train"]
  for batch in _batches(source, num_batches=1):
    for g, z, index in _scenes(batch):
      _check_against_record(batch, g, z, records[index], CONFIG.voxel_size)


def test_the_epoch_order_is_not_drawn_from_the_first_scenes_stream(random_rooms):
  # numpy drops a seed's trailing zero words: [seed, epoch] is the stream [seed, epoch, 0] of
  # the epoch's first scene, so an order drawn from it would repeat that scene's random draws.
  n = 8
  np.testing.assert_array_equal(np.random.default_rng([0, 1]).permutation(n),
                                np.random.default_rng([0, 1, 0]).permutation(n))
  records = random_rooms([40] * n)
  config = PipelineConfig(voxel_size=0.25, batch_size=1)
  orders = [[int(b["scene_index"][0, 0]) for b in _batches(records, config=config, seed=0,
                                                             start=epoch * n, num_batches=n)]
            for epoch in range(4)]
  assert all(sorted(order) == list(range(n)) for order in orders)
  assert not any(order == np.random.default_rng([0, epoch, 0]).permutation(n).tolist()
                 for epoch, order in enumerate(orders))
