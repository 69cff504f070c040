"""Point <-> voxel feature transfer."""

from __future__ import annotations

import jax
import jax.numpy as jnp


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
  capacity = voxel_feats.shape[1]
  valid = point_mask & (point_to_voxel >= 0) & (point_to_voxel < capacity)
  index = jnp.where(valid, point_to_voxel, 0)
  gathered = jax.vmap(lambda f, i: f[i])(voxel_feats, index)
  return jnp.where(valid[..., None], gathered, 0)
