"""The grain input pipeline: read -> (crop) -> augment -> voxelise -> kernel maps -> packs.

  config = PipelineConfig.from_dict(cfg["data"], geometry=spec)
  stream = make_iterator(source, config, seed=0, train=True, num_packs=jax.local_device_count())
  for packs in stream:                     # list of ragged packing.Pack, one per local device
    ...                                    # jaxseg.data.loader pads and places them

Records are dicts with the fields of `jaxseg.data.tfds_builders.scene_features()` (at least
name, coords, colors, labels, segments; num_segments when present; normals are used when
`has_normals` is true, or when a plain dict record has `normals` and no `has_normals`).

A stream is random access over batches: batch b of a training stream is batch b % E of epoch
b // E (E = batches per epoch; each epoch is a new seeded permutation of all records and drops
the last incomplete global batch), and every scene of it is augmented with a generator seeded
by (seed, epoch, position), so a seed fixes the whole stream and a resumed run can start at any
batch. An ordered stream (evaluation, clustering passes) is one pass over the records in order,
uncropped and unaugmented unless asked (`augment=True`); its last batch holds fewer scenes.
With several JAX processes every process computes the same global batches and reads, augments
and packs only its contiguous share of each (`sharding.process_share`), so a run sees the same
global batches whatever its process count.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, Optional

from absl import flags
import grain
import jax
import numpy as np

from jaxseg.data import packing
from jaxseg.data.augment import (AugmentConfig, augment, clip_to_box, random_crop,
                                 transform_normals)
from jaxseg.data.sharding import process_batch_size, process_share
from jaxseg.data.tfds_builders import record_text
from jaxseg.data.voxelize import voxelize
from jaxseg.errors import InputError
from jaxseg.ops.sparse import host_maps
from jaxseg.ops.sparse.geometry import GeometrySpec

# Res16FPN18's levels (the default encoder); stages pass the spec of their encoder.
DEFAULT_GEOMETRY = GeometrySpec(level_kernels=((5,), (3,), (3,), (3,), (3,)))
# Random streams are numpy seed sequences [seed, epoch, position] per scene of an epoch;
# the epoch's order has [seed, epoch, _ORDER_STREAM], a word no position reaches ([seed, epoch]
# would be the stream of position 0: numpy drops trailing zero words).
_ORDER_STREAM = 2 ** 32 - 1

SceneExtras = Callable[[int], Mapping[str, np.ndarray]]
# views(record, element, rng) -> the element's view_* arrays (`jaxseg.methods.clurender.views`).
SceneViews = Callable[[Mapping[str, Any], Mapping[str, Any], np.random.Generator],
                      Mapping[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Input pipeline settings.

  voxel_size:   voxel edge in metres (PointDC: 0.02 ScanNet, 0.05 S3DIS).
  batch_size:   GLOBAL batch size (split over JAX processes, then over local devices).
  augment:      training augmentations (evaluation never augments).
  max_points:   training only: crop scenes larger than this to a random x-y box of this many
                points (None: never crop). Evaluation never crops.
  clip_box:     training only: keep the points within this many metres (in x and y) of the
                scene's bounding-box centre (None: no clip; the reference's S3DIS clip_bound 4,
                an 8 m box). Evaluation never clips.
  shuffle:      shuffle records each training epoch.
  mixup:        training only: GrowSP's mixup. Each scene is joined by a second, randomly
                drawn and independently augmented scene of the split, moved onto its centre
                and voxelised with it; the second scene's points carry no label and no
                super-voxel (-1), so losses see only the first scene's points.
  geometry:     the encoder's levels and kernels, and the sparse engine.
  """

  voxel_size: float = 0.02
  batch_size: int = 4
  augment: AugmentConfig = AugmentConfig()
  max_points: Optional[int] = None
  clip_box: Optional[float] = None
  shuffle: bool = True
  mixup: bool = False
  geometry: GeometrySpec = DEFAULT_GEOMETRY

  @classmethod
  def from_dict(cls, config: Mapping[str, Any], where: str = "data",
                geometry: GeometrySpec = DEFAULT_GEOMETRY) -> "PipelineConfig":
    """From a config mapping (`augment` a nested mapping)."""
    fields = {f.name for f in dataclasses.fields(cls)} - {"geometry"}
    unknown = sorted(set(config) - fields)
    if unknown:
      raise InputError(where, f"unknown pipeline option(s) {unknown}", f"use only {sorted(fields)}")
    values = dict(config)
    if "augment" in values:
      values["augment"] = AugmentConfig.from_dict(values["augment"], f"{where}.augment")
    voxel_size = float(values.get("voxel_size", cls.voxel_size))
    if not np.isfinite(voxel_size) or voxel_size <= 0:
      raise InputError(f"{where}.voxel_size", f"voxel size {values['voxel_size']} must be a "
                       "finite number > 0", "use e.g. 0.02 (metres)")
    if values.get("max_points") is not None and int(values["max_points"]) <= 0:
      raise InputError(f"{where}.max_points", f"max_points {values['max_points']} must be > 0",
                       "use a positive point count, or null to disable cropping")
    if values.get("clip_box") is not None and not float(values["clip_box"]) > 0:
      raise InputError(f"{where}.clip_box", f"clip_box {values['clip_box']} must be > 0",
                       "use a half-width in metres, or 0 / null for no clip")
    return cls(**values, geometry=geometry)


def config_from_data(data: Mapping[str, Any],
                     geometry: GeometrySpec = DEFAULT_GEOMETRY) -> PipelineConfig:
  """The input-pipeline settings of a `data` config section (jaxseg/config_defaults.py)."""
  return PipelineConfig.from_dict({
      "voxel_size": data["voxel_size"], "batch_size": data["batch_size"],
      "augment": dict(data["augment"]), "max_points": data["max_points"] or None,
      "clip_box": data["clip_box"] or None},
      geometry=geometry)


def _num_segments(record: Mapping[str, Any], segments: np.ndarray, name: str) -> int:
  count = int(record.get("num_segments", segments.max(initial=-1) + 1))
  if segments.size and segments.max() >= count:
    raise InputError(name, f"super-voxel id {int(segments.max())} is not below the scene's "
                     f"num_segments {count}", "rebuild the dataset (data.rebuild=True)")
  return count


def process_scene(record: Mapping[str, Any], index: int, rng: np.random.Generator,
                  config: PipelineConfig, train: bool,
                  extras: Optional[SceneExtras] = None,
                  augment_scene: Optional[bool] = None,
                  views: Optional[SceneViews] = None) -> dict[str, Any]:
  """One record -> one unpadded scene (the input of `packing.pack_scenes`).

  train: clip to config.clip_box and crop to config.max_points (training only; other passes
    see whole scenes).
  augment_scene: apply config.augment (default: `train`).

  Returns point_coords f32 (P, 3) (augmented, metres), point_colors f32 (P, 3) in [0, 1],
  point_normals f32 (P, 3) (unit normals through the augmentation's linear part, see
  `augment.transform_normals`; zeros when the record has no normals), point_labels /
  point_segments int32 (P,), point_index int32 (P,) (row in the record),
  point_to_voxel int32 (P,), voxel_coords int32 (V, 3) sorted, voxel_feats f32 (V, 6),
  transform f32 (4, 4), scene_index, num_segments, level_counts (voxels per encoder level),
  geometry (host kernel maps, 'pairs' engine), the `extras(index)` arrays and the
  `views(record, element, rng)` arrays (drawn from `rng` after the augmentation).
  """
  points = _scene_points(record, rng, config, train,
                         train if augment_scene is None else augment_scene)
  element = _voxelized(points, index, config)
  if extras is not None:
    element.update(extras(index))
  if views is not None:
    element.update(views(record, element, rng))
  return element


def process_mixed_scene(record: Mapping[str, Any], index: int, partner: Mapping[str, Any],
                        rng: np.random.Generator, config: PipelineConfig,
                        extras: Optional[SceneExtras] = None,
                        augment_scene: bool = True) -> dict[str, Any]:
  """A training scene with `partner` mixed in (GrowSP's mixup, `PipelineConfig.mixup`).

  Both are read, cropped and (augment_scene) augmented independently (`rng` draws the
  first's augmentation, as `process_scene` would, then the partner's); the partner is
  translated so that its point centroid lies on the first's, and its points are appended
  after the first's with labels, super-voxels and record rows -1. Returns the fields of
  `process_scene` for the union; point arrays hold P_first + P_partner rows, and voxels
  shared by both scenes average all their points.
  """
  first = _scene_points(record, rng, config, True, augment_scene)
  second = _scene_points(partner, rng, config, True, augment_scene)
  shift = first["point_coords"].mean(0) - second["point_coords"].mean(0)
  second["point_coords"] = second["point_coords"] + shift.astype(np.float32)
  none = np.full(second["point_labels"].shape, -1, np.int32)
  second.update(point_labels=none, point_segments=none, point_index=none)
  mixed = {k: np.concatenate([first[k], second[k]]) for k in _POINT_ARRAYS}
  mixed.update({k: first[k] for k in ("name", "transform", "num_segments")})
  element = _voxelized(mixed, index, config)
  if extras is not None:
    element.update(extras(index))
  return element


_POINT_ARRAYS = ("point_coords", "point_colors", "point_normals", "point_labels",
                 "point_segments", "point_index")


def _scene_points(record: Mapping[str, Any], rng: np.random.Generator, config: PipelineConfig,
                  train: bool, augmented: bool) -> dict[str, Any]:
  """Reads, clips / crops (train) and augments one record: the point arrays of
  `process_scene` (_POINT_ARRAYS, colours still in 0..255) with name, transform and
  num_segments."""
  name = record_text(record["name"])
  coords = np.asarray(record["coords"])
  keep = np.arange(coords.shape[0], dtype=np.int32)
  if train and config.clip_box:
    keep = keep[clip_to_box(coords, config.clip_box)]
  if train and config.max_points:
    keep = keep[random_crop(coords[keep], config.max_points, rng)]
  segments = np.asarray(record["segments"], np.int32)
  num_segments = _num_segments(record, segments, name)
  coords, colors, transform = augment(coords[keep], np.asarray(record["colors"])[keep], rng,
                                      config.augment if augmented else AugmentConfig.none())
  if bool(record.get("has_normals", "normals" in record)):
    normals = transform_normals(np.asarray(record["normals"])[keep], transform)
  else:
    normals = np.zeros((keep.size, 3), np.float32)
  return {"name": name, "point_coords": coords, "point_colors": colors,
          "point_normals": normals,
          "point_labels": np.asarray(record["labels"], np.int32)[keep],
          "point_segments": segments[keep], "point_index": keep, "transform": transform,
          "num_segments": num_segments}


def _voxelized(points: Mapping[str, Any], index: int, config: PipelineConfig
               ) -> dict[str, Any]:
  """`_scene_points` output -> the element of `process_scene` (voxels, kernel maps)."""
  vox = voxelize(points["point_coords"], points["point_colors"], config.voxel_size,
                 name=points["name"])
  spec = config.geometry
  if spec.engine == "pairs":
    geometry = host_maps.build_scene_geometry(vox.voxel_coords, spec.level_kernels)
    level_counts = geometry.counts
  else:
    geometry = None
    level_counts = [len(np.unique(host_maps.host_keys(vox.voxel_coords >> l)))
                    for l in range(spec.num_levels)]
  element = {k: points[k] for k in _POINT_ARRAYS}
  element["point_colors"] = points["point_colors"] / np.float32(255.0)
  element.update({
      "point_to_voxel": vox.point_to_voxel, "voxel_coords": vox.voxel_coords,
      "voxel_feats": vox.voxel_feats, "transform": points["transform"],
      "scene_index": np.int32(index), "num_segments": points["num_segments"],
      "level_counts": level_counts, "geometry": geometry})
  return element


@dataclasses.dataclass(frozen=True)
class _Batches:
  """Random access to this process's packs of one stream (see the module docstring)."""
  source: Any
  config: PipelineConfig
  seed: int
  train: bool
  local_batch: int
  num_packs: int
  extras: Optional[SceneExtras]
  augment: bool
  process_index: int
  process_count: int
  views: Optional[SceneViews] = None

  @property
  def global_batch(self) -> int:
    return self.local_batch * self.process_count

  @property
  def per_epoch(self) -> int:
    if self.train:
      return len(self.source) // self.global_batch
    return -(-len(self.source) // self.global_batch)

  def positions(self, batch: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(epoch, the epoch's record order, this process's positions in it) of batch `batch`."""
    epoch, step = divmod(batch, self.per_epoch)
    order = np.arange(len(self.source))
    if self.train and self.config.shuffle:
      order = np.random.default_rng([self.seed, epoch, _ORDER_STREAM]).permutation(
          len(self.source))
    positions = np.arange(step * self.global_batch,
                          min((step + 1) * self.global_batch, len(order)))
    return epoch, order, process_share(positions, self.process_index, self.process_count)

  def __call__(self, batch: int) -> list[packing.Pack]:
    epoch, order, positions = self.positions(batch)
    elements = []
    for position in positions.tolist():
      index = int(order[position])
      rng = np.random.default_rng([self.seed, epoch, position])
      if self.train and self.config.mixup:
        draw = np.random.default_rng([self.seed, epoch, position, 1])   # the partner's own
        partner = int(draw.integers(len(self.source)))
        elements.append(process_mixed_scene(self.source[index], index, self.source[partner],
                                            rng, self.config, self.extras, self.augment))
      else:
        elements.append(process_scene(self.source[index], index, rng, self.config,
                                      self.train, self.extras, self.augment, self.views))
    slots = self.local_batch // self.num_packs
    return packing.pack_batch(elements, self.num_packs, slots, self.config.geometry)


def batches_per_epoch(num_records: int, config: PipelineConfig, train: bool,
                      process_count: Optional[int] = None) -> int:
  """Global batches of one epoch (training drops the last incomplete one)."""
  count = jax.process_count() if process_count is None else process_count
  global_batch = process_batch_size(config.batch_size, count) * count
  if train:
    return num_records // global_batch
  return -(-num_records // global_batch)


def make_dataset(source: Any, config: PipelineConfig, *, seed: int, train: bool,
                 num_packs: int, extras: Optional[SceneExtras] = None,
                 augment: Optional[bool] = None, process_index: Optional[int] = None,
                 process_count: Optional[int] = None,
                 views: Optional[SceneViews] = None) -> grain.MapDataset:
  """Random access to this process's packs of each batch (training: endless; evaluation: one
  pass; a process whose share of a short last batch is empty gets empty packs).

  num_packs: packs per batch on this process (its local devices); the local batch must be a
    multiple of it.
  extras: optional function of the record index adding `segment_*` arrays (per super-voxel,
    e.g. distillation targets), run in the input workers.
  augment: apply config.augment (default: `train`); an ordered pass may be augmented too.
  views: optional `SceneViews` adding each scene's posed views (not with mixup).
  """
  if len(source) == 0:
    raise InputError("data source", "the split has no scenes",
                     "check the split name and that the dataset was built")
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  local_batch = process_batch_size(config.batch_size, count)
  if local_batch % num_packs:
    raise InputError("data.batch_size", f"the per-process batch of {local_batch} scenes does "
                     f"not split over {num_packs} local devices",
                     f"use a batch size that is a multiple of {num_packs * count}")
  if views is not None and train and config.mixup:
    raise InputError("data", "posed views cannot be drawn for mixed scenes (mixup)",
                     "train without mixup, or without views")
  batches = _Batches(source, config, seed, train, local_batch, num_packs, extras,
                     train if augment is None else augment, index, count, views)
  if batches.per_epoch == 0:
    raise InputError("data.batch_size", f"the split has {len(source)} scene(s), fewer than "
                     f"one batch of {config.batch_size}", "lower data.batch_size or add scenes")
  length = np.iinfo(np.int64).max if train else batches.per_epoch
  return grain.MapDataset.range(length).map(batches)


def make_iterator(source: Any, config: PipelineConfig, *, seed: int, train: bool,
                  num_packs: int, start: int = 0, num_batches: Optional[int] = None,
                  extras: Optional[SceneExtras] = None, augment: Optional[bool] = None,
                  worker_count: int = 0, read_threads: int = 2, prefetch: int = 4,
                  process_index: Optional[int] = None,
                  process_count: Optional[int] = None,
                  views: Optional[SceneViews] = None) -> grain.IterDataset:
  """Batches start .. start + num_batches of `make_dataset` (None: to the end; training
  streams are endless), each a list of `num_packs` ragged packs.

  worker_count > 0 moves reading, augmentation, voxelisation and kernel maps into that many
  grain worker processes (0 keeps them in this process, on `read_threads` threads). One
  iterator serves a whole training phase, so its workers live across epochs.
  """
  dataset = make_dataset(source, config, seed=seed, train=train, num_packs=num_packs,
                         extras=extras, augment=augment, process_index=process_index,
                         process_count=process_count, views=views)
  stop = None if num_batches is None else start + num_batches
  stream = dataset[start:stop].to_iter_dataset(
      grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch))
  if worker_count > 0:
    if not flags.FLAGS.is_parsed():  # grain workers read absl flags; outside absl.app parse none.
      flags.FLAGS.mark_as_parsed()
    stream = stream.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return stream


def dummy_batch(config: PipelineConfig) -> dict[str, np.ndarray]:
  """A padded batch of one tiny scene (8 points in 2 x 2 x 2 voxels), e.g. to initialise a
  network's variables (their shapes do not depend on the batch)."""
  corners = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3)
  record = {"name": b"dummy", "coords": (corners + 0.5) * np.float32(config.voxel_size),
            "colors": np.full((8, 3), 128, np.uint8), "labels": np.zeros(8, np.int32),
            "segments": np.zeros(8, np.int32), "num_segments": 1}
  element = process_scene(record, 0, np.random.default_rng(0), config, train=False)
  packs = packing.pack_batch([element], 1, 1, config.geometry)
  needs = packing.batch_needs(packs)
  return packing.pad_packs(packs, {q: max(1, n) for q, n in needs.items()}, config.geometry)
