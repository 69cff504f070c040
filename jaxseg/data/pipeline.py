"""The grain input pipeline: read -> (crop) -> augment -> voxelise -> bucket -> padded batch.

  source = builder.as_data_source()["train"]        # or any len/getitem scene-record source
  config = PipelineConfig.from_dict(cfg["data"])
  for batch in make_iterator(source, config, seed=0, train=True, num_epochs=None):
    arrays = to_global_arrays(batch, mesh)          # jaxseg.data.sharding

Records are dicts with the fields of `jaxseg.data.tfds_builders.scene_features()` (at least
name, coords, colors, labels, segments; normals are used when `has_normals` is true, or when
a plain dict record has `normals` and no `has_normals`). Training shuffles with a new
permutation each epoch (seeded) and augments each element with a generator derived from (seed,
position in the stream), so a seed fixes the whole stream. Evaluation keeps the record order,
does not augment and pads the last batch with empty scenes. Batches are numpy dicts described in
`jaxseg.data.buckets.pad_batch`; `scene_index` is the record index in `source`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, Optional

from absl import flags
import grain
import numpy as np

from jaxseg.data.augment import AugmentConfig, augment, random_crop, transform_normals
from jaxseg.data.buckets import Buckets, pad_batch
from jaxseg.data.sharding import process_batch_size, shard_dataset
from jaxseg.data.tfds_builders import record_text
from jaxseg.data.voxelize import coarse_level_counts, voxelize
from jaxseg.errors import InputError


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Input pipeline settings.

  voxel_size:   voxel edge in metres (PointDC: 0.02 ScanNet, 0.05 S3DIS).
  batch_size:   GLOBAL batch size (split over JAX processes).
  buckets:      point / voxel capacities.
  augment:      training augmentations (evaluation never augments).
  max_points:   crop scenes larger than this to a random x-y box of this many points
                (None: never crop; oversized scenes then raise InputError).
  voxel_labels: also emit majority `voxel_labels`.
  shuffle:      shuffle records each training epoch.
  """

  voxel_size: float = 0.02
  batch_size: int = 4
  buckets: Buckets = Buckets()
  augment: AugmentConfig = AugmentConfig()
  max_points: Optional[int] = None
  voxel_labels: bool = False
  shuffle: bool = True

  @classmethod
  def from_dict(cls, config: Mapping[str, Any], where: str = "data") -> "PipelineConfig":
    """From a config mapping; `buckets` and `augment` are nested mappings."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - fields)
    if unknown:
      raise InputError(where, f"unknown pipeline option(s) {unknown}", f"use only {sorted(fields)}")
    values = dict(config)
    if "buckets" in values:
      values["buckets"] = Buckets.from_dict(values["buckets"])
    if "augment" in values:
      values["augment"] = AugmentConfig.from_dict(values["augment"], f"{where}.augment")
    if float(values.get("voxel_size", cls.voxel_size)) <= 0:
      raise InputError(f"{where}.voxel_size", f"voxel size {values['voxel_size']} must be > 0",
                       "use e.g. 0.02 (metres)")
    if values.get("max_points") is not None and int(values["max_points"]) <= 0:
      raise InputError(f"{where}.max_points", f"max_points {values['max_points']} must be > 0",
                       "use a positive point count, or null to disable cropping")
    return cls(**values)


def config_from_data(data: Mapping[str, Any]) -> PipelineConfig:
  """The input-pipeline settings of a `data` config section (configs/common.py)."""
  return PipelineConfig.from_dict({
      "voxel_size": data["voxel_size"], "batch_size": data["batch_size"],
      "buckets": dict(data["buckets"]), "augment": dict(data["augment"]),
      "max_points": data["max_points"] or None})


def process_scene(record: Mapping[str, Any], index: int, rng: np.random.Generator,
                  config: PipelineConfig, train: bool) -> dict[str, Any]:
  """One record -> one unpadded element (the input of `buckets.pad_batch`).

  Returns point_coords f32 (P, 3) (augmented, metres), point_colors f32 (P, 3) in [0, 1],
  point_normals f32 (P, 3) (unit normals through the augmentation's linear part, see
  `augment.transform_normals`; zeros when the record has no normals), point_labels /
  point_segments int32 (P,), point_index int32 (P,) (row in the record),
  point_to_voxel int32 (P,), voxel_coords int32 (V, 3), voxel_feats f32 (V, 6),
  voxel_to_point int32 (V,), voxel_labels int32 (V,) when enabled, transform f32 (4, 4),
  scene_index, and bucket (smallest bucket that fits).
  """
  name = record_text(record["name"])
  coords = np.asarray(record["coords"])
  keep = (random_crop(coords, config.max_points, rng) if config.max_points
          else np.arange(coords.shape[0], dtype=np.int32))
  labels = np.asarray(record["labels"], np.int32)[keep]
  coords, colors, transform = augment(coords[keep], np.asarray(record["colors"])[keep], rng,
                                      config.augment if train else AugmentConfig.none())
  vox = voxelize(coords, colors, config.voxel_size,
                 labels if config.voxel_labels else None, name=name)
  if bool(record.get("has_normals", "normals" in record)):
    normals = transform_normals(np.asarray(record["normals"])[keep], transform)
  else:
    normals = np.zeros((keep.size, 3), np.float32)
  element = {
      "point_coords": coords, "point_colors": colors / np.float32(255.0),
      "point_normals": normals,
      "point_labels": labels,
      "point_segments": np.asarray(record["segments"], np.int32)[keep],
      "point_index": keep, "point_to_voxel": vox.point_to_voxel,
      "voxel_coords": vox.voxel_coords, "voxel_feats": vox.voxel_feats,
      "voxel_to_point": vox.voxel_to_point, "transform": transform,
      "scene_index": np.int32(index),
      "bucket": config.buckets.select(
          keep.size, vox.num_voxels, name,
          coarse_level_counts(vox.voxel_coords, len(config.buckets.level_fractions))),
  }
  if vox.voxel_labels is not None:
    element["voxel_labels"] = vox.voxel_labels
  return element


def _with_index(index: int, record: Any, num_records: int) -> tuple[int, Any]:
  # Grain passes epoch * len + position; the record index is the position.
  return index % num_records, record


def _process_indexed(item: tuple[int, Any], rng: np.random.Generator, config: PipelineConfig,
                     train: bool) -> dict[str, Any]:
  return process_scene(item[1], item[0], rng, config, train)


def make_dataset(source: Any, config: PipelineConfig, *, seed: int, train: bool,
                 num_epochs: Optional[int] = 1, process_index: Optional[int] = None,
                 process_count: Optional[int] = None) -> grain.MapDataset:
  """The per-process stream of unpadded elements (random access, lazy).

  source: a random-access record source (len + getitem), e.g. a tfds data source split.
  num_epochs: None repeats forever. process_index / process_count default to JAX's; in
    training every process gets the same number of records (the last len % count are left
    out), in evaluation the first processes may get one more.
  """
  if len(source) == 0:
    raise InputError("data source", "the split has no scenes",
                     "check the split name and that the dataset was built")
  indexed = grain.MapDataset.source(source).map_with_index(
      functools.partial(_with_index, num_records=len(source)))
  dataset = shard_dataset(indexed, process_index, process_count, drop_remainder=train)
  if train and config.shuffle:
    dataset = dataset.shuffle(seed=seed)
  dataset = dataset.repeat(num_epochs)
  return dataset.random_map(
      functools.partial(_process_indexed, config=config, train=train), seed=seed)


def make_iterator(source: Any, config: PipelineConfig, *, seed: int, train: bool,
                  num_epochs: Optional[int] = 1, worker_count: int = 0, read_threads: int = 2,
                  prefetch: int = 4, process_index: Optional[int] = None,
                  process_count: Optional[int] = None) -> grain.IterDataset:
  """Padded numpy batches of `config.batch_size / process_count` scenes.

  worker_count > 0 moves reading and processing into that many grain worker processes
  (the default 0 keeps everything in this process, with `read_threads` threads).
  Training drops an incomplete last batch; evaluation fills it with empty scenes.
  """
  local_batch = process_batch_size(config.batch_size, process_count)
  dataset = make_dataset(source, config, seed=seed, train=train, num_epochs=num_epochs,
                         process_index=process_index, process_count=process_count)
  stream = dataset.to_iter_dataset(grain.ReadOptions(num_threads=read_threads,
                                                     prefetch_buffer_size=prefetch))
  stream = stream.batch(local_batch, drop_remainder=train,
                        batch_fn=functools.partial(pad_batch, buckets=config.buckets,
                                                   batch_size=local_batch))
  if worker_count > 0:
    if not flags.FLAGS.is_parsed():  # grain workers read absl flags; outside absl.app parse none.
      flags.FLAGS.mark_as_parsed()
    stream = stream.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return stream
