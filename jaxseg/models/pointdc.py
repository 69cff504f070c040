"""PointDC's network: a voxel encoder read out at the points, plus the distillation head.

  net = PointDCNet(encoder="res16fpn18", head_dim=teacher.dim)       # CMD (Eq. 7)
  net = PointDCNet(encoder="res16fpn18")                              # SVC, evaluation
  out = net.apply(variables, batch, train=False)
  out["features"]  f32 [B, P, 128]  per-point features (the voxel's encoder output)
  out["aligned"]   f32 [B, P, head_dim]  the alignment head g (CMD only)

Parameters live under 'encoder' and 'align_head', so SVC starts from a CMD checkpoint by taking
its 'encoder' subtree.
"""

from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax.numpy as jnp

from jaxseg.models import get_encoder
from jaxseg.models.point_voxel import gather_point_features


class PointDCNet(nn.Module):
  """Encoder + optional linear alignment head (the reference's 1x1 sparse conv 128 -> 70).

  Attributes:
    encoder: registered encoder name.
    out_dim: encoder feature width.
    head_dim: alignment head width (0 = no head).
    axis_name: device axis for cross-device BatchNorm (None outside shard_map / pmap).
    coarse_capacities: static capacities of the encoder's coarse levels (from the bucket).
  """
  encoder: str = "res16fpn18"
  out_dim: int = 128
  head_dim: int = 0
  axis_name: str | None = None
  coarse_capacities: tuple[int, ...] | None = None

  @nn.compact
  def __call__(self, batch: Mapping[str, jnp.ndarray], train: bool) -> dict[str, jnp.ndarray]:
    """batch: voxel_coords int32 [B,C,3], voxel_feats f32 [B,C,6], voxel_mask bool [B,C],
    point_to_voxel int32 [B,P], point_mask bool [B,P] (a pipeline batch)."""
    encoder = get_encoder(self.encoder)(out_dim=self.out_dim, axis_name=self.axis_name,
                                        coarse_capacities=self.coarse_capacities,
                                        name="encoder")
    voxel_feats = encoder(batch["voxel_coords"], batch["voxel_feats"], batch["voxel_mask"],
                          train)
    out = {"features": gather_point_features(voxel_feats, batch["point_to_voxel"],
                                             batch["point_mask"])}
    if self.head_dim:
      aligned = nn.Dense(self.head_dim, name="align_head")(voxel_feats)
      out["aligned"] = gather_point_features(aligned, batch["point_to_voxel"],
                                             batch["point_mask"])
    return out
