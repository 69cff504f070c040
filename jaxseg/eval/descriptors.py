"""Per-point raw descriptors (colour, position, normal): the no-learning clustering baseline.

  feats = raw_point_descriptors(batch["point_coords"], batch["point_colors"],
                                batch["point_normals"], batch["point_mask"],
                                batch["point_scene"], num_slots=Z)           # [G, P, 9]
  # then segment_mean over super-voxels and/or kmeans(..., metric="euclidean")

Layout of the 9 channels: color_weight * (rgb - 0.5), xyz_weight * (xyz - scene centre),
normal_weight * normal. The parts are centred on 0 (colours like the network input
RGB/255 - 0.5, positions on the masked mean of the scene so rooms anywhere in the world frame
are comparable) so Euclidean and cosine K-means both make sense.

Default weights are GrowSP's super-point growing weights (colour 1.0, metric xyz 0.2, normal
0.8; reference_implementations.md B4): centred colours span about [-0.5, 0.5], room positions a
few metres (0.2 brings a 5 m room to about +-0.5, so distant parts of a room separate without
position dominating colour), unit normals span [-1, 1] (0.8 keeps a wall-vs-floor normal change,
distance ~1.1, comparable to a strong colour change). Normals of estimated point clouds may have
arbitrary sign; scenes without normals carry zeros, which drops that part.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxseg.ops import pooling

DEFAULT_COLOR_WEIGHT = 1.0
DEFAULT_XYZ_WEIGHT = 0.2
DEFAULT_NORMAL_WEIGHT = 0.8


@functools.partial(jax.jit, static_argnames=("num_slots",))
def raw_point_descriptors(coords: jax.Array, colors: jax.Array, normals: jax.Array,
                          mask: jax.Array, scene: jax.Array, *, num_slots: int,
                          color_weight: float = DEFAULT_COLOR_WEIGHT,
                          xyz_weight: float = DEFAULT_XYZ_WEIGHT,
                          normal_weight: float = DEFAULT_NORMAL_WEIGHT) -> jax.Array:
  """Weighted [colour, centred xyz, normal] per point.

  Args:
    coords: f32 [G, P, 3] metres.
    colors: f32 [G, P, 3] RGB in [0, 1].
    normals: f32 [G, P, 3] unit normals (zeros when unknown).
    mask: bool [G, P], False for padding rows.
    scene: int32 [G, P] the scene slot of each point in its pack (the batch's point_scene).
    num_slots: scene slots per pack (static).
    color_weight / xyz_weight / normal_weight: per-part multipliers (see the module docstring).
  Returns:
    f32 [G, P, 9]; padding rows are 0. xyz is centred on the mean of the valid points of the
    point's scene.
  """
  ids = jnp.where(mask, scene, -1)
  centre = pooling.unpool(pooling.segment_mean(coords, ids, num_slots), ids)
  out = jnp.concatenate([color_weight * (colors - 0.5), xyz_weight * (coords - centre),
                         normal_weight * normals], axis=-1)
  return jnp.where(mask[..., None], out, 0.0).astype(jnp.float32)
