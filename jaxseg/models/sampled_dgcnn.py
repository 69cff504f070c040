"""DGCNN on voxel batches, registered as encoder `dgcnn`: each scene is sampled to a fixed
number of points by farthest-point sampling (4,096, as CluRender samples its ScanNet clouds),
the samples go through DGCNN (`jaxseg.models.dgcnn`) and every voxel takes the features of
its nearest sample.

  encoder = ENCODERS.get("dgcnn")(out_dim=128)
  features, sampled = encoder(coords, feats, scene_rows, train)
  # coords [G, C, 3] voxel coordinates, feats [G, C, F] input features, scene_rows int32
  # [G, Z, L] the pack rows of each scene slot's voxels (C on padding; the batch field
  # `geometry.SCENE_ROWS`, there when the spec has scene_rows, as `geometry_spec("dgcnn")`)
  # -> features f32 [G, C, out_dim] (zeros on padding), sampled bool [G, C] (the FPS picks)

Per scene slot of a pack: the scene's voxels are centred and scaled to the unit sphere, FPS
picks `points_per_scene` of them (all of them in a smaller scene; M = min(points_per_scene,
L) slots, as no scene has more than L voxels), the picks are normalised to
the unit sphere again (the reference's pc_normalize of the sampled cloud), and DGCNN sees their
xyz and input features. Each voxel's nearest pick comes out of the sampling itself
(`clouds.farthest_point_sampling`), so propagating back costs one gather; gradients reach
the picks only. A loss that should see the sampled cloud alone, as the reference's does, masks
with `sampled`. The sampling is deterministic (first pick: the scene's first voxel row). Each
slot samples its own L rows, so the sampling costs M x Z x L (about M x C), not M x Z x C.

Scenes never mix: the sampling, DGCNN's k-NN graphs and its global max pool are all per scene,
so a scene's features do not depend on the other scenes packed with it. The encoder uses no
sparse geometry (`level_kernels` is a single level without kernels) and no BatchNorm, so
`axis_name` has nothing to synchronise.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.dgcnn import DGCNN
from jaxseg.models.registry import ENCODERS
from jaxseg.ops import clouds
from jaxseg.ops.rows import per_pack, scatter_add_rows, take_rows


def _sample_scene(coords: jax.Array, rows: jax.Array, num: int):
  """One scene slot: coords [C, 3] of the pack, rows int32 [L] (C on padding) -> (Samples over
  the slot's L rows, int32 [M] the picks' pack rows (C for empty slots), f32 [M, 3] the picks'
  unit-sphere xyz)."""
  capacity = coords.shape[0]
  valid = rows < capacity
  xyz = take_rows(coords, rows)
  samples = clouds.farthest_point_sampling(clouds.unit_sphere(xyz, valid), valid, num)
  pick_rows = jnp.take(rows, samples.rows, mode="fill", fill_value=capacity)
  return samples, pick_rows, clouds.unit_sphere(take_rows(xyz, samples.rows), samples.found)


def _propagate(features: jax.Array, samples: clouds.Samples, rows: jax.Array,
               capacity: int) -> tuple[jax.Array, jax.Array]:
  """One pack: features [Z, M, D] of the picks, the slots' Samples ([Z, L] nearest), rows
  int32 [Z, L] -> (f32 [C, D]: each voxel the features of its nearest pick, zeros on padding;
  bool [C]: the picked voxels)."""
  per_row = jax.vmap(take_rows)(features, samples.nearest)                 # [Z, L, D]
  # Each pack row is in at most one slot: the scatter-add writes each row once.
  out = scatter_add_rows(rows, per_row, capacity)
  local = jax.vmap(lambda r, n: jnp.zeros((n + 1,), bool).at[r].set(True)[:n],
                   in_axes=(0, None))(samples.rows, rows.shape[1])
  sampled = jnp.zeros((capacity + 1,), bool).at[rows.reshape(-1)].set(local.reshape(-1))
  return out, sampled[:capacity]


@ENCODERS.register("dgcnn")
class SampledDGCNN(nn.Module):
  """DGCNN on farthest-point samples of each scene; see the module docstring.

  Attributes:
    out_dim: output channels per voxel.
    points_per_scene: FPS samples per scene (CluRender's 4,096).
    k, edge_channels, global_dim, head_channels: DGCNN's (`jaxseg.models.dgcnn.DGCNN`); k = 20
      and the 1,024-d global feature are the references' (emb_dims); a pack of fewer than k
      rows uses them all as neighbours.
    relative_input: DGCNN's (False here, True in `dgcnn_relative`).
    axis_name: accepted for the encoder interface; nothing is synchronised (no BatchNorm).
    dtype: compute dtype of DGCNN's Dense layers (output float32).
  """
  out_dim: int = 128
  points_per_scene: int = 4096
  k: int = 20
  edge_channels: Sequence[int] = (64, 64, 64)
  global_dim: int = 1024
  head_channels: Sequence[int] = (512, 256)
  relative_input: bool = False
  axis_name: str | None = None
  dtype: Any = jnp.float32
  samples_points: ClassVar[bool] = True   # VoxelNet calls it with coords and scene rows

  def level_kernels(self) -> tuple[tuple[int, ...], ...]:
    """One level (the voxels) and no convolution kernels: the batch needs no kernel maps."""
    return ((),)

  @nn.compact
  def __call__(self, coords: jax.Array, feats: jax.Array, scene_rows: jax.Array,
               train: bool) -> tuple[jax.Array, jax.Array]:
    """coords [G, C, 3], feats [G, C, F], scene_rows int32 [G, Z, L] -> (features f32
    [G, C, out_dim], sampled bool [G, C]). Padding rows may hold anything."""
    packs, capacity, _ = coords.shape
    slots, width = scene_rows.shape[1:]
    num = min(self.points_per_scene, width)    # No scene holds more than L voxels.
    sample = jax.vmap(lambda c, r: _sample_scene(c, r, num), in_axes=(None, 0))
    samples, pick_rows, xyz = per_pack(sample, coords.astype(jnp.float32), scene_rows)
    picked = per_pack(take_rows, feats.astype(jnp.float32), pick_rows)     # [G, Z, M, F]
    out = DGCNN(out_dim=self.out_dim, k=min(self.k, num),
                edge_channels=tuple(self.edge_channels), global_dim=self.global_dim,
                head_channels=tuple(self.head_channels),
                relative_input=self.relative_input, dtype=self.dtype, name="dgcnn")(
                    xyz.reshape(packs * slots, num, 3),
                    picked.reshape(packs * slots, num, -1),
                    samples.found.reshape(packs * slots, num), train)
    return per_pack(lambda f, s, r: _propagate(f, s, r, capacity),
                    out.reshape(packs, slots, num, -1), samples, scene_rows)


@ENCODERS.register("dgcnn_relative")
class SampledDGCNNRelative(SampledDGCNN):
  """`dgcnn` whose first EdgeConv sees only each sample's offsets to its neighbours, never
  where it is in the scene (`DGCNN.relative_input`). SoftClu fits its spatial clusters from
  the absolute positions `dgcnn` is given and collapses its features (README, SoftClu /
  CluRender); this form has to describe shapes instead."""
  relative_input: bool = True
