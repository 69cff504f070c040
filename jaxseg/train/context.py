"""What a run's methods and modes share: the config, the work directory, the data, the
network factory and the compilation count.

  ctx = RunContext.from_config(config, workdir)
  ctx.data.loader("train", train=True, seed=s, fields=f)   # see jaxseg.data.run_data
  ctx.net(head_dim=70)                                       # VoxelNet of config.model
  ctx.init_variables(head_dim=70)                            # its fresh variables
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import ml_collections

from jaxseg.data import pipeline
from jaxseg.data.run_data import RunData
from jaxseg.models.voxel_net import VoxelNet, model_spec, net_fields
from jaxseg.train.compilation import CompilationCounter, enable_persistent_cache


@dataclasses.dataclass
class RunContext:
  """Resolved run settings shared by a method's phases and by evaluation."""

  config: ml_collections.ConfigDict
  workdir: str
  data: RunData
  compilations: CompilationCounter

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, workdir: str) -> "RunContext":
    """Prepares the dataset; turns on the persistent compilation cache and counts the
    compilations of the run."""
    data = RunData.from_config(config.data, model_spec(config.model), capacity_dir=workdir)
    enable_persistent_cache()
    return cls(config, workdir, data, CompilationCounter())

  @property
  def num_classes(self) -> int:
    return int(self.config.data.num_classes)

  @property
  def mesh(self) -> jax.sharding.Mesh:
    return self.data.mesh

  def path(self, *parts: str) -> str:
    """A path inside the work directory (parent folders created)."""
    path = os.path.join(self.workdir, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path

  @property
  def net_fields(self) -> tuple[str, ...]:
    """The batch fields the network reads."""
    return net_fields(self.data.spec)

  def net(self, *, axis_name: str | None = None, **heads: int) -> VoxelNet:
    """The network of config.model with the heads `heads` asks for (`VoxelNet`'s head_dim,
    class_dim, projection_dim; none by default)."""
    model = self.config.model
    return VoxelNet(self.data.spec, encoder=model.name, out_dim=model.out_dim,
                    axis_name=axis_name, dtype=model.dtype,
                    input_colors=bool(model.get("input_colors", True)), **heads)

  def init_variables(self, seed: int | None = None, **heads: int) -> dict[str, Any]:
    """Fresh variables ({'params', 'batch_stats'}) of `net(**heads)` from a tiny dummy
    scene; batch_stats is empty for a network without BatchNorm."""
    batch = {k: v[:1] for k, v in pipeline.dummy_batch(self.data.pipeline_config).items()
             if k in self.net_fields}
    net = self.net(**heads)
    key = jax.random.key(self.config.seed if seed is None else seed)
    variables = jax.jit(lambda k, b: net.init(k, b, train=False))(key, batch)
    return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
