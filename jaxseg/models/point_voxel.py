"""Point <-> voxel transfer: features and scene slots."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxseg.ops import pooling
from jaxseg.ops.sparse.geometry import mask_key


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


def voxel_scene_slots(batch) -> jax.Array:
  """int32 [G, V] scene slot of each voxel (-1 padding): the slot of its points (a pack holds
  several scenes, `jaxseg.data.packing`, and each voxel holds the points of one scene only).

  batch: a packed batch with point_scene, point_to_voxel (V for padding points), point_mask
  [G, P] and the level-0 voxel mask [G, V]."""
  num_voxels = batch[mask_key(0)].shape[1]

  def one(point_scene, point_to_voxel, point_mask):
    rows = jnp.where(point_mask, point_to_voxel, num_voxels)
    slot = jax.ops.segment_max(jnp.where(point_mask, point_scene, -1), rows,
                               num_segments=num_voxels + 1)[:num_voxels]
    return jnp.maximum(slot, -1).astype(jnp.int32)

  return jax.vmap(one)(batch["point_scene"], batch["point_to_voxel"], batch["point_mask"])
