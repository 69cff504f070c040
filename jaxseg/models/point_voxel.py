"""Point <-> voxel feature transfer."""

from __future__ import annotations

import jax.numpy as jnp

from jaxseg.ops import pooling


def gather_point_features(voxel_feats: jnp.ndarray, point_to_voxel: jnp.ndarray,
                          point_mask: jnp.ndarray) -> jnp.ndarray:
  """Each point takes the feature of the voxel it falls in.

  Args:
    voxel_feats: float [B, C, D].
    point_to_voxel: int32 [B, P], row of each point's voxel in [0, C).
    point_mask: bool [B, P] valid points.
  Returns:
    float [B, P, D]; invalid points (and out-of-range indices) get zeros.
  """
  return pooling.unpool(voxel_feats, jnp.where(point_mask, point_to_voxel, -1))
