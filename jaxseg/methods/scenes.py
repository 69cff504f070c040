"""Which scene of a packed batch each voxel belongs to (device side, for per-scene losses).

A pack holds several scenes (`jaxseg.data.packing`); its points carry their scene slot
(`point_scene`, int32 [G, P]) and each voxel holds the points of one scene only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxseg.ops.sparse.geometry import mask_key


def voxel_scene_slots(batch) -> jax.Array:
  """int32 [G, V] scene slot of each voxel (-1 padding): the slot of its points.

  batch: a packed batch with point_scene, point_to_voxel (V for padding points), point_mask
  [G, P] and the level-0 voxel mask [G, V]."""
  num_voxels = batch[mask_key(0)].shape[1]

  def one(point_scene, point_to_voxel, point_mask):
    rows = jnp.where(point_mask, point_to_voxel, num_voxels)
    slot = jax.ops.segment_max(jnp.where(point_mask, point_scene, -1), rows,
                               num_segments=num_voxels + 1)[:num_voxels]
    return jnp.maximum(slot, -1).astype(jnp.int32)

  return jax.vmap(one)(batch["point_scene"], batch["point_to_voxel"], batch["point_mask"])
