"""What every PointDC stage needs from a config: the dataset, the mesh, the network, streams.

  ctx = RunContext.from_config(config, workdir)
  ctx.source("train")                                   # random-access scene records
  with ctx.loader("train", train=True, seed=s, start=0, num_batches=n) as batches:
    for host, device in batches: ...                    # padded numpy / device batches
  ctx.net(head_dim=70)                                  # PointDCNet
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxseg.data import pipeline
from jaxseg.data.capacity import CapacityPolicy
from jaxseg.data.loader import DeviceLoader
from jaxseg.data.packing import need_weights
from jaxseg.data.prepare import DatasetHandle, prepare_dataset
from jaxseg.data.sharding import data_mesh, to_global_arrays
from jaxseg.io import labels as labels_lib
from jaxseg.models.pointdc import PointDCNet, geometry_spec, net_fields
from jaxseg.ops.sparse.geometry import GeometrySpec
from jaxseg.train.compilation import CompilationCounter, enable_persistent_cache

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def class_names(num_classes: int) -> tuple[str, ...]:
  """ScanNet-20 or S3DIS-13 names, else 'class_i'."""
  if num_classes == len(labels_lib.SCANNET_CLASSES):
    return tuple(labels_lib.SCANNET_CLASSES)
  if num_classes == len(labels_lib.S3DIS_CLASSES):
    return tuple(labels_lib.S3DIS_CLASSES)
  return tuple(f"class_{i}" for i in range(num_classes))


def model_spec(model: ml_collections.ConfigDict) -> GeometrySpec:
  """The geometry spec of the `model` config section."""
  return geometry_spec(model.name, engine=model.engine, search_method=model.search_method)


@dataclasses.dataclass
class RunContext:
  """Resolved run settings shared by the CMD, SVC and evaluation stages."""

  config: ml_collections.ConfigDict
  workdir: str
  handle: DatasetHandle
  mesh: jax.sharding.Mesh
  spec: GeometrySpec
  pipeline_config: pipeline.PipelineConfig
  compilations: CompilationCounter
  policies: dict[str, CapacityPolicy] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, workdir: str) -> "RunContext":
    """Prepares the dataset; turns on the persistent compilation cache and counts the
    compilations of the run."""
    spec = model_spec(config.model)
    handle = prepare_dataset(config.data)
    enable_persistent_cache()
    return cls(config, workdir, handle, data_mesh(), spec,
               pipeline.config_from_data(config.data, spec), CompilationCounter())

  @property
  def num_classes(self) -> int:
    return int(self.config.data.num_classes)

  @property
  def dtype(self) -> Any:
    return DTYPES[self.config.model.dtype]

  def source(self, split: str):
    return self.handle.source(split)

  def path(self, *parts: str) -> str:
    """A path inside the work directory (parent folders created)."""
    path = os.path.join(self.workdir, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path

  def policy(self, kind: str) -> CapacityPolicy:
    """The capacity policy of training ('train') or evaluation ('eval') batches, whose
    signatures persist in <workdir>/capacities_<kind>.json."""
    if kind not in self.policies:
      self.policies[kind] = CapacityPolicy(path=self.path(f"capacities_{kind}.json"),
                                           name=kind, weights=need_weights(self.spec))
    return self.policies[kind]

  def steps_per_epoch(self, split: str) -> int:
    """Training batches per epoch of `split`."""
    return pipeline.batches_per_epoch(len(self.source(split)), self.pipeline_config, True)

  def eval_batches(self, split: str) -> int:
    """Batches of one evaluation pass over `split`."""
    return pipeline.batches_per_epoch(len(self.source(split)), self.pipeline_config, False)

  def loader(self, split: str, *, train: bool, seed: int, fields: Sequence[str],
             start: int = 0, num_batches: int | None = None,
             invariance: Mapping[str, float] | None = None,
             extras: pipeline.SceneExtras | None = None) -> DeviceLoader:
    """(host, device) batches start.. of a stream of `split` (see `pipeline.make_iterator`).

    train: shuffled and augmented with data.augment (+ `invariance` overrides); otherwise one
      ordered, unaugmented pass. seed fixes the order and the augmentations.
    fields: batch fields placed on the devices (the host batch has every field).
    """
    config = self.pipeline_config
    if invariance:
      config = dataclasses.replace(
          config, augment=dataclasses.replace(config.augment, **dict(invariance)))
    stream = pipeline.make_iterator(
        self.source(split), config, seed=seed, train=train, num_packs=jax.local_device_count(),
        start=start, num_batches=num_batches, extras=extras,
        worker_count=self.config.data.num_workers)
    return DeviceLoader(stream, self.policy("train" if train else "eval"), self.spec,
                        self.mesh, fields)

  def to_device(self, arrays: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    """Host arrays [G, ...] (G = local devices) as global arrays sharded over the mesh."""
    return to_global_arrays(arrays, self.mesh)

  @property
  def net_fields(self) -> tuple[str, ...]:
    """The batch fields the network reads."""
    return net_fields(self.spec)

  def net(self, *, head_dim: int = 0, axis_name: str | None = None) -> PointDCNet:
    return PointDCNet(self.spec, encoder=self.config.model.name,
                      out_dim=self.config.model.out_dim, head_dim=head_dim,
                      axis_name=axis_name, dtype=self.dtype)

  def init_variables(self, head_dim: int = 0, seed: int | None = None) -> dict[str, Any]:
    """Fresh variables ({'params', 'batch_stats'}) from a tiny dummy scene."""
    batch = {k: v[:1] for k, v in pipeline.dummy_batch(self.pipeline_config).items()
             if k in self.net_fields}
    net = self.net(head_dim=head_dim)
    key = jax.random.key(self.config.seed if seed is None else seed)
    variables = jax.jit(lambda k, b: net.init(k, b, train=False))(key, batch)
    return {k: v for k, v in variables.items() if k in ("params", "batch_stats")}
