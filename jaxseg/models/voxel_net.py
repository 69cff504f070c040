"""The network every method trains: a voxel encoder read out at the points, with an optional
linear head (PointDC's distillation head g).

  spec = geometry_spec("res16fpn18")
  net = VoxelNet(spec, encoder="res16fpn18", head_dim=70)    # distillation (PointDC Eq. 7)
  net = VoxelNet(spec, encoder="res16fpn18")                 # clustering, evaluation
  out = net.apply(variables, batch, train=False)
  out["voxel_features"]  f32 [G, C, 128]  the encoder output per voxel
  out["features"]  f32 [G, P, 128]  per-point features (the voxel's encoder output)
  out["aligned"]   f32 [G, P, head_dim]  the linear head (head_dim > 0 only)
  net = VoxelNet(spec, class_dim=20, projection_dim=256)     # COARSE3D
  out["voxel_logits"]      f32 [G, C, class_dim]  a linear classifier per voxel
  out["voxel_projection"]  f32 [G, C, projection_dim]  unit rows of the projection head
  net = VoxelNet(spec, cluster_dim=64)                       # SoftClu / CluRender
  out["voxel_cluster_logits"]  f32 [G, C, cluster_dim]  the cluster head's logits
  net = VoxelNet(spec, cluster_dim=64, color_head=True)      # CluRender's rendering branch
  out["voxel_colors"]  f32 [G, C, 3]  RGB in (0, 1) per voxel (`ColorHead`)
  net = VoxelNet(geometry_spec("dgcnn"), encoder="dgcnn")   # a point encoder on FPS samples
  out["voxel_sampled"]  bool [G, C]  the voxels the encoder sampled (point encoders only)

Parameters live under 'encoder' and the heads' names ('align_head', 'class_head',
'projection_head', 'cluster_head', 'color_head'), so a phase starts from another phase's (or another run's)
network by taking its 'encoder' subtree.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax.numpy as jnp

from jaxseg.models import get_encoder
from jaxseg.models.point_voxel import gather_point_features
from jaxseg.ops.features import l2_normalize
from jaxseg.ops.rows import on_rows
from jaxseg.ops.sparse import geometry as geo
from jaxseg.ops.sparse.geometry import GeometrySpec
from jaxseg.ops.sparse.norm import MaskedBatchNorm


class VoxelNet(nn.Module):
  """Encoder + optional linear head (PointDC's alignment head: the reference's 1x1 sparse conv
  128 -> 70).

  Attributes:
    spec: the batch's geometry spec (levels, kernels, engine); its level kernels must be the
      encoder's (`geometry_spec` makes one).
    encoder: registered encoder name.
    out_dim: encoder feature width.
    head_dim: alignment head width (0 = no head).
    class_dim: classes of a linear classifier head on the voxels (0 = none).
    projection_dim: width of a projection head on the voxels (COARSE3D's: linear, masked
      BatchNorm, LeakyReLU, linear, L2-normalised; 0 = none).
    cluster_dim: clusters of SoftClu's cluster head (`ClusterHead`; 0 = none).
    color_head: add CluRender's colour head (`ColorHead`).
    input_colors: False zeroes the colour channels of the input features (xyz-only input).
    axis_name: device axis for cross-device BatchNorm (None outside shard_map / pmap).
    dtype: compute dtype of the encoder ('float32' or 'bfloat16'); outputs are float32.
  """
  spec: GeometrySpec
  encoder: str = "res16fpn18"
  out_dim: int = 128
  head_dim: int = 0
  class_dim: int = 0
  projection_dim: int = 0
  cluster_dim: int = 0
  color_head: bool = False
  input_colors: bool = True
  axis_name: str | None = None
  dtype: Any = "float32"

  @nn.compact
  def __call__(self, batch: Mapping[str, jnp.ndarray], train: bool) -> dict[str, jnp.ndarray]:
    """batch: a padded pipeline batch on the devices (`jaxseg.data.packing`): voxel_feats
    [G, C, 6], point_to_voxel int32 [G, P], point_mask bool [G, P] and the geometry fields
    (`geometry.batch_keys(spec)`; scene_rows for a point encoder)."""
    encoder = get_encoder(self.encoder)(out_dim=self.out_dim, axis_name=self.axis_name,
                                        dtype=jnp.dtype(self.dtype), name="encoder")
    if encoder.level_kernels() != self.spec.level_kernels:
      raise ValueError(f"the batch was built for kernels {self.spec.level_kernels}, the "
                       f"encoder needs {encoder.level_kernels()}")
    inputs = batch["voxel_feats"]
    if not self.input_colors:   # channels 0-2 are the colour (`jaxseg.data.voxelize`)
      inputs = inputs.at[..., :3].set(0.0)
    out = {}
    if getattr(encoder, "samples_points", False):   # a point encoder (`sampled_dgcnn`)
      if not self.spec.scene_rows:
        raise ValueError(f"encoder {self.encoder!r} needs the scene rows in the batch; build "
                         "the batch with geometry_spec(encoder)")
      voxel_feats, out["voxel_sampled"] = encoder(batch["voxel_coords"], inputs,
                                                  batch[geo.SCENE_ROWS], train)
    else:
      voxel_feats = encoder(geo.from_batch(batch, self.spec), inputs, train)
    out["voxel_features"] = voxel_feats
    out["features"] = gather_point_features(voxel_feats, batch["point_to_voxel"],
                                            batch["point_mask"])
    mask = batch[geo.mask_key(0)]   # The heads see the voxels as rows (`on_rows`).
    if self.head_dim:
      aligned = on_rows(nn.Dense(self.head_dim, name="align_head"), voxel_feats)
      out["aligned"] = gather_point_features(aligned, batch["point_to_voxel"],
                                             batch["point_mask"])
    if self.class_dim:
      out["voxel_logits"] = on_rows(nn.Dense(self.class_dim, name="class_head"), voxel_feats)
    if self.projection_dim:
      head = ProjectionHead(self.projection_dim, self.axis_name, name="projection_head")
      out["voxel_projection"] = on_rows(lambda x, m: head(x, m, train), voxel_feats, mask)
    if self.cluster_dim:
      head = ClusterHead(self.cluster_dim, self.axis_name, name="cluster_head")
      out["voxel_cluster_logits"] = on_rows(lambda x, m: head(x, m, train), voxel_feats, mask)
    if self.color_head:
      out["voxel_colors"] = on_rows(ColorHead(name="color_head"), voxel_feats)
    return out


class ColorHead(nn.Module):
  """CluRender's colour head: linear -> ReLU -> linear -> sigmoid, per voxel: [..., F] ->
  [..., 3] RGB in (0, 1). The paper's (phi_beta) is a Point-Transformer U-Net over xyz and
  the encoder features ending in an MLP and a sigmoid; here the features already come from
  the encoder's U-Net, and the head is the final MLP."""

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    h = nn.relu(nn.Dense(max(x.shape[-1] // 2, 1))(x))
    return nn.sigmoid(nn.Dense(3)(h))


class ProjectionHead(nn.Module):
  """Linear -> masked BatchNorm -> LeakyReLU -> linear, L2-normalised rows (the 1x1-conv
  projection head of COARSE3D's reference code, on voxels): [..., F] with mask [...] ->
  [..., dim]."""
  dim: int
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, mask: jnp.ndarray, train: bool) -> jnp.ndarray:
    h = nn.Dense(x.shape[-1])(x)
    h = MaskedBatchNorm(axis_name=self.axis_name)(h, mask, train)
    return l2_normalize(nn.Dense(self.dim)(nn.leaky_relu(h, negative_slope=0.01)))


class ClusterHead(nn.Module):
  """SoftClu's cluster head (the reference's Conv1d(d, d/2)-BN-ReLU-Conv1d(d/2, d/2)-BN-ReLU-
  Conv1d(d/2, J), 1x1 convolutions per point, here per voxel with masked BatchNorm):
  [..., F] with mask [...] -> [..., clusters] logits."""
  clusters: int
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, mask: jnp.ndarray, train: bool) -> jnp.ndarray:
    width = max(x.shape[-1] // 2, 1)
    for _ in range(2):
      x = nn.Dense(width)(x)
      x = nn.relu(MaskedBatchNorm(axis_name=self.axis_name)(x, mask, train))
    return nn.Dense(self.clusters)(x)


def encoder_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
  """The encoder part of a network's variables (heads dropped); its batch_stats are empty
  for an encoder without BatchNorm (`dgcnn`)."""
  stats = variables.get("batch_stats", {})
  return {"params": {"encoder": variables["params"]["encoder"]},
          "batch_stats": {"encoder": stats["encoder"]} if "encoder" in stats else {}}


def model_spec(model: Mapping[str, Any]) -> GeometrySpec:
  """The geometry spec of a `model` config section."""
  return geometry_spec(model["name"], engine=model["engine"],
                       search_method=model["search_method"])


def geometry_spec(encoder: str, engine: str = "pairs",
                  search_method: str = "scan") -> GeometrySpec:
  """The geometry spec of a registered encoder (with its default attributes); a point encoder
  (`samples_points`) gets the scene slots' rows."""
  cls = get_encoder(encoder)
  return GeometrySpec(level_kernels=cls().level_kernels(), engine=engine,
                      search_method=search_method,
                      scene_rows=getattr(cls, "samples_points", False))


# Batch fields the network reads besides the geometry's.
NET_FIELDS = ("voxel_feats", "point_to_voxel", "point_mask")


def net_fields(spec: GeometrySpec) -> tuple[str, ...]:
  """Every batch field `VoxelNet.__call__` reads."""
  return NET_FIELDS + geo.batch_keys(spec)
