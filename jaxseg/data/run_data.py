"""A run's data: the prepared dataset, its input streams and the device mesh they feed.

  data = RunData.from_config(config.data, spec, capacity_dir=workdir)
  data.source("train")                                  # random-access scene records
  with data.loader("train", train=True, seed=s, fields=f) as batches:
    for host, device in batches: ...                    # padded numpy / device batches
  data.steps_per_epoch("train")                         # training batches per epoch
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Sequence

import jax
import ml_collections
import numpy as np

from jaxseg import distributed
from jaxseg.data import pipeline
from jaxseg.data.capacity import CapacityPolicy
from jaxseg.data.loader import DeviceLoader
from jaxseg.data.packing import need_weights
from jaxseg.data.prepare import DatasetHandle, prepare_dataset
from jaxseg.data.sharding import data_mesh, to_global_arrays
from jaxseg.ops.sparse.geometry import GeometrySpec


@dataclasses.dataclass
class RunData:
  """The dataset handle, the pipeline settings, the mesh and the capacity policies.

  Attributes:
    handle: the prepared ArrayRecord dataset.
    spec: the geometry spec batches are built for (the encoder's levels and kernels).
    pipeline_config: voxelisation, augmentation and batching settings.
    mesh: the device mesh; each batch holds one pack per device.
    num_workers: grain worker processes (0 = in this process).
    capacity_dir: where the capacity policies persist their signatures (for --resume).
  """
  handle: DatasetHandle
  spec: GeometrySpec
  pipeline_config: pipeline.PipelineConfig
  mesh: jax.sharding.Mesh
  num_workers: int
  capacity_dir: str
  policies: dict[str, CapacityPolicy] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_config(cls, data: ml_collections.ConfigDict, spec: GeometrySpec,
                  capacity_dir: str) -> "RunData":
    """Prepares (or reuses) the dataset of the `data` config section (in a multi-process run
    the main process prepares it, then the others open it)."""
    return cls(distributed.main_first(lambda: prepare_dataset(data), "dataset"), spec, pipeline.config_from_data(data, spec), data_mesh(),
               int(data.num_workers), capacity_dir)

  def source(self, split: str):
    return self.handle.source(split)

  def policy(self, kind: str) -> CapacityPolicy:
    """The capacity policy of training ('train') or evaluation ('eval') batches, whose
    signatures persist in <capacity_dir>/capacities_<kind>.json."""
    if kind not in self.policies:
      os.makedirs(self.capacity_dir, exist_ok=True)
      self.policies[kind] = CapacityPolicy(
          path=os.path.join(self.capacity_dir, f"capacities_{kind}.json"), name=kind,
          weights=need_weights(self.spec))
    return self.policies[kind]

  def steps_per_epoch(self, split: str) -> int:
    """Training batches per epoch of `split`."""
    return pipeline.batches_per_epoch(len(self.source(split)), self.pipeline_config, True)

  def eval_batches(self, split: str) -> int:
    """Batches of one ordered pass over `split`."""
    return pipeline.batches_per_epoch(len(self.source(split)), self.pipeline_config, False)

  def loader(self, split: str, *, train: bool, seed: int, fields: Sequence[str],
             start: int = 0, num_batches: int | None = None, augment: bool | None = None,
             invariance: Mapping[str, float] | None = None,
             extras: pipeline.SceneExtras | None = None, mixup: bool = False,
             source=None, views: pipeline.SceneViews | None = None) -> DeviceLoader:
    """(host, device) batches start.. of a stream of `split` (see `pipeline.make_iterator`).

    train: a shuffled stream of whole epochs (training crop applied); otherwise one ordered
      pass over every scene, never cropped.
    augment: apply data.augment (+ `invariance` overrides); default: `train`.
    seed: fixes the order and the augmentations.
    fields: batch fields placed on the devices (the host batch has every field).
    mixup: (train) mix a second scene into each (`pipeline.PipelineConfig.mixup`).
    source: records to read instead of the split's (same length and order, e.g. with their
      labels thinned); the capacity policy is the split's.
    views: draws each scene's posed views (`pipeline.SceneViews`).
    """
    config = dataclasses.replace(self.pipeline_config, mixup=mixup)
    if invariance:
      config = dataclasses.replace(
          config, augment=dataclasses.replace(config.augment, **dict(invariance)))
    stream = pipeline.make_iterator(
        self.source(split) if source is None else source, config, seed=seed, train=train, num_packs=jax.local_device_count(),
        start=start, num_batches=num_batches, extras=extras, worker_count=self.num_workers,
        augment=train if augment is None else augment, views=views)
    return DeviceLoader(stream, self.policy("train" if train else "eval"), self.spec,
                        self.mesh, fields)

  def to_device(self, arrays: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """Host arrays [G, ...] (G = local devices) as global arrays sharded over the mesh."""
    return to_global_arrays(arrays, self.mesh)
