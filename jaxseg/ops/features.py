"""Super-voxel features and cosine-classifier logits (PointDC Stage 2, step 1 and Eq. 9/11).

  sv = supervoxel_features(point_feats, point_segments, point_mask, segment_cap=512)
  sv.feats     # f32 [G, S, D]: normalize(mean of the normalised point features), 0 if empty
  sv.counts    # f32 [G, S]: valid points per super-voxel

  logits = cosine_logits(point_feats, centroids, scale=1 / 0.1)   # f32 [G, P, K]

Padding: points with point_mask False (or segment id -1, or an id >= segment_cap) belong to no
super-voxel; their features may hold anything, NaN included, and reach neither the outputs nor
the gradients. Pipeline batches order each pack's points by super-voxel id
(`jaxseg.data.packing`); pass sorted_ids=True for them.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxseg.ops import pooling


class SupervoxelFeatures(NamedTuple):
  feats: jax.Array     # f32 [G, S, D], unit rows; zeros for empty super-voxels
  counts: jax.Array    # f32 [G, S], number of valid points of each super-voxel


@functools.partial(jax.jit, static_argnames=("axis", "eps"))   # one program, not five
def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / max(||x||, eps) along `axis` (torch's F.normalize).

  Args:
    x: float [..., D].

  Returns:
    float [..., D] with the dtype of x; all-zero rows stay zero, with finite gradients.
  """
  squared = jnp.sum(x * x, axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(squared, eps * eps))


def point_segment_ids(point_segments: jax.Array, point_mask: jax.Array) -> jax.Array:
  """Segment id of each point, -1 for masked points: int32 [B, P] (or [P])."""
  return jnp.where(point_mask, point_segments, -1).astype(jnp.int32)


def supervoxel_features(point_feats: jax.Array, point_segments: jax.Array,
                        point_mask: jax.Array, segment_cap: int,
                        sorted_ids: bool = False) -> SupervoxelFeatures:
  """Unit super-voxel features as PointDC computes them (scatter-mean, renormalised).

  Args:
    point_feats: f32 [G, P, D] point features (any norm; padded rows may be NaN).
    point_segments: int32 [G, P] super-voxel id of each point, -1 for none.
    point_mask: bool [G, P], False for padding points.
    segment_cap: static number of super-voxel slots S per pack.
    sorted_ids: the valid ids are ascending along P, with the others after them.

  Returns:
    SupervoxelFeatures(feats f32 [G, S, D] = normalize(mean_j normalize(f_j)) with zeros for
    empty super-voxels, counts f32 [G, S]).
  """
  ids = point_segment_ids(point_segments, point_mask)
  feats = jnp.where(point_mask[..., None], point_feats, jnp.zeros((), point_feats.dtype))
  means = pooling.segment_mean(l2_normalize(feats), ids, segment_cap, sorted_ids=sorted_ids)
  counts = pooling.segment_counts(ids, segment_cap, sorted_ids=sorted_ids).astype(jnp.float32)
  return SupervoxelFeatures(l2_normalize(means), counts)


def cosine_logits(point_feats: jax.Array, centroids: jax.Array, scale: float | jax.Array,
                  normalize_features: bool | jax.Array = True) -> jax.Array:
  """Logits of the frozen cosine classifier whose weights are the normalised centroids.

  Args:
    point_feats: f32 [B, P, D] (or [..., D]).
    centroids: f32 [K, D] cluster centroids (normalised here).
    scale: multiplier, e.g. 1 / temperature (Eq. 9) or 1.0 (the reference's classifier).
    normalize_features: True gives scale * cos(f, mu); False gives scale * ||f|| * cos(f, mu),
      the reference's frozen nn.Linear applied to unnormalised features; a bool [] array
      chooses at run time (one compiled program for both).

  Returns:
    f32 [B, P, K] (or [..., K]).
  """
  if isinstance(normalize_features, bool):
    feats = l2_normalize(point_feats) if normalize_features else point_feats
  else:
    feats = jnp.where(normalize_features, l2_normalize(point_feats), point_feats)
  return scale * jnp.einsum("...d,kd->...k", feats, l2_normalize(centroids))
