"""What every PointDC stage needs from a config: the dataset, the mesh, the network, paths.

  ctx = RunContext.from_config(config, workdir)
  ctx.source("train")                  # random-access scene records
  ctx.batches("train", train=True, epoch=3, skip=0, invariance={...})   # numpy batches
  ctx.net(head_dim=70, coarse=(...))  # PointDCNet for one bucket
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any, Callable, Iterator, Mapping

import jax
import ml_collections
import numpy as np

from jaxseg.data import pipeline
from jaxseg.data.buckets import Buckets
from jaxseg.data.prepare import DatasetHandle, prepare_dataset
from jaxseg.data.sharding import data_mesh, process_batch_size, to_global_arrays
from jaxseg.io import labels as labels_lib
from jaxseg.logging_utils import progress
from jaxseg.models.pointdc import PointDCNet

# Batch fields the network reads (the rest of a pipeline batch stays on the host).
NET_FIELDS = ("voxel_coords", "voxel_feats", "voxel_mask", "point_to_voxel", "point_mask")


def class_names(num_classes: int) -> tuple[str, ...]:
  """ScanNet-20 or S3DIS-13 names, else 'class_i'."""
  if num_classes == len(labels_lib.SCANNET_CLASSES):
    return tuple(labels_lib.SCANNET_CLASSES)
  if num_classes == len(labels_lib.S3DIS_CLASSES):
    return tuple(labels_lib.S3DIS_CLASSES)
  return tuple(f"class_{i}" for i in range(num_classes))


@dataclasses.dataclass
class RunContext:
  """Resolved run settings shared by the CMD, SVC and evaluation stages."""

  config: ml_collections.ConfigDict
  workdir: str
  handle: DatasetHandle
  mesh: jax.sharding.Mesh
  pipeline_config: pipeline.PipelineConfig
  # Jitted passes by key, so repeated clustering rounds reuse their compilations.
  jit_cache: dict[Any, Any] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, workdir: str) -> "RunContext":
    handle = prepare_dataset(config.data)
    return cls(config, workdir, handle, data_mesh(), pipeline.config_from_data(config.data))

  @property
  def buckets(self) -> Buckets:
    return self.pipeline_config.buckets

  @property
  def num_classes(self) -> int:
    return int(self.config.data.num_classes)

  def source(self, split: str):
    return self.handle.source(split)

  def path(self, *parts: str) -> str:
    """A path inside the work directory (parent folders created)."""
    path = os.path.join(self.workdir, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path

  def batches(self, split: str, *, train: bool, epoch: int = 0, skip: int = 0,
              invariance: Mapping[str, float] | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Padded numpy batches of one pass over `split`.

    train: shuffled, augmented with data.augment (+ `invariance` overrides), incomplete last
      batch dropped; the order and augmentations are fixed by (seed, epoch). Otherwise the
      records in order, unaugmented, the last batch padded with empty scenes (scene_index -1).
    skip: drop the first `skip` batches (resuming inside an epoch).
    """
    config = self.pipeline_config
    if invariance:
      augment = dataclasses.replace(config.augment, **dict(invariance))
      config = dataclasses.replace(config, augment=augment)
    iterator = pipeline.make_iterator(
        self.source(split), config, seed=self.config.seed + 1000 * epoch, train=train,
        num_epochs=1, worker_count=self.config.data.num_workers)
    return itertools.islice(iter(iterator), skip, None)

  def pass_batches(self, split: str, desc: str) -> Iterator[dict[str, np.ndarray]]:
    """`batches(split, train=False)` with a progress bar: one ordered pass over the split."""
    total = -(-len(self.source(split)) // process_batch_size(self.config.data.batch_size))
    return progress(self.batches(split, train=False), desc=desc, total=total)

  def jitted(self, key: Any, build: Callable[[], Callable]) -> Callable:
    """jax.jit(build()) compiled once per `key` for this run."""
    if key not in self.jit_cache:
      self.jit_cache[key] = jax.jit(build())
    return self.jit_cache[key]

  def steps_per_epoch(self, split: str) -> int:
    """Training batches per epoch of `split`."""
    return ((len(self.source(split)) // jax.process_count()) //
            process_batch_size(self.config.data.batch_size))

  def to_device(self, batch: Mapping[str, np.ndarray], fields) -> dict[str, jax.Array]:
    """The named fields of a numpy batch as global arrays sharded over the mesh's data axis."""
    return to_global_arrays({k: batch[k] for k in fields}, self.mesh)

  def net(self, *, voxel_cap: int, head_dim: int = 0, axis_name: str | None = None
          ) -> PointDCNet:
    """The network compiled for batches padded to `voxel_cap` voxels."""
    coarse = self.buckets.level_caps(self.buckets.index_of(voxel_cap))
    return PointDCNet(encoder=self.config.model.name, out_dim=self.config.model.out_dim,
                      head_dim=head_dim, axis_name=axis_name, coarse_capacities=coarse)

  def init_variables(self, head_dim: int = 0, seed: int | None = None) -> dict[str, Any]:
    """Fresh variables ({'params', 'batch_stats'}) from a tiny dummy batch."""
    cap = 64  # parameter shapes do not depend on the capacity
    dummy = {
        "voxel_coords": np.zeros((1, cap, 3), np.int32),
        "voxel_feats": np.zeros((1, cap, 6), np.float32),
        "voxel_mask": np.arange(cap)[None] < 1,
        "point_to_voxel": np.zeros((1, 8), np.int32),
        "point_mask": np.ones((1, 8), bool),
    }
    net = PointDCNet(encoder=self.config.model.name, out_dim=self.config.model.out_dim,
                     head_dim=head_dim, coarse_capacities=(cap,) * 4)
    key = jax.random.key(self.config.seed if seed is None else seed)
    variables = jax.jit(lambda k, b: net.init(k, b, train=False))(key, dummy)
    return {k: v for k, v in variables.items() if k in ("params", "batch_stats")}
