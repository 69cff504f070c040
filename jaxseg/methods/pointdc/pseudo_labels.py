"""Super-voxel pseudo-labels for clustering training (PointDC Eq. 9-10, Sinkhorn variant).

  pooled = pooled_pseudo_labels(feats, segments, mask, centroids, temperature=0.1,
                                segment_cap=512)      # labels int32 [B, S], soft f32 [B, S, K]
  labels = sinkhorn_pseudo_labels(sv_feats, sv_valid, sv_counts, centroids=centroids,
                                  marginal="equipartition")            # int32 [M]
  point_labels = point_labels_from_supervoxels(pooled.labels, segments, mask, ignore)

The outputs are training targets: no gradient is meant to flow through them (the labels are
integers; wrap `soft` in jax.lax.stop_gradient if it is used inside a differentiated function).
Points with a segment id >= segment_cap belong to no super-voxel here.
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

from jaxseg.errors import InputError
from jaxseg.ops import pooling
from jaxseg.ops import sinkhorn
from jaxseg.ops import features as svc_features

Marginal = Literal["equipartition", "point_count"]
MARGINALS = ("equipartition", "point_count")


class PooledLabels(NamedTuple):
  labels: jax.Array  # int32 [B, S], argmax of `soft`; -1 for empty super-voxels
  soft: jax.Array    # f32 [B, S, K], mean point soft label of each super-voxel; 0 if empty


def pooled_pseudo_labels(point_feats: jax.Array, point_segments: jax.Array,
                         point_mask: jax.Array, centroids: jax.Array, *, temperature: float,
                         segment_cap: int, sorted_ids: bool = False) -> PooledLabels:
  """Point soft labels (Eq. 9) averaged over each super-voxel (Eq. 10), then arg-maxed.

  Args:
    point_feats: f32 [B, P, D] point features (padded rows may be NaN).
    point_segments: int32 [B, P] super-voxel id of each point, -1 for none.
    point_mask: bool [B, P], False for padding points.
    centroids: f32 [K, D] cluster centroids (normalised here).
    temperature: softmax temperature of softmax_l(cos(f_j, mu_l) / temperature).
    segment_cap: static number of super-voxel slots S per scene (or pack).
    sorted_ids: the valid ids are ascending along P (`jaxseg.ops.pooling`).

  Returns:
    PooledLabels(labels int32 [B, S], soft f32 [B, S, K]).
  """
  feats = jnp.where(point_mask[..., None], point_feats, jnp.zeros((), point_feats.dtype))
  soft = jax.nn.softmax(svc_features.cosine_logits(feats, centroids, 1.0 / temperature), axis=-1)
  ids = svc_features.point_segment_ids(point_segments, point_mask)
  pooled = pooling.segment_mean(soft, ids, segment_cap, sorted_ids=sorted_ids)
  counts = pooling.segment_counts(ids, segment_cap, sorted_ids=sorted_ids)
  labels = jnp.where(counts > 0, jnp.argmax(pooled, axis=-1), -1).astype(jnp.int32)
  return PooledLabels(labels, pooled)


def point_labels_from_supervoxels(sv_labels: jax.Array, point_segments: jax.Array,
                                  point_mask: jax.Array,
                                  ignore: jax.Array | None = None) -> jax.Array:
  """Broadcasts super-voxel labels to their points.

  Args:
    sv_labels: int32 [B, S] label of each super-voxel (-1 = none).
    point_segments: int32 [B, P] super-voxel id of each point; ids outside [0, S) = none.
    point_mask: bool [B, P], False for padding points.
    ignore: optional bool [B, P], True for points to leave out (e.g. ground-truth ignore).

  Returns:
    int32 [B, P]: the label of the point's super-voxel, -1 for points in no super-voxel,
    masked or ignored.
  """
  num_segments = sv_labels.shape[-1]
  segments = point_segments.astype(jnp.int32)
  inside = point_mask & (segments >= 0) & (segments < num_segments)
  if ignore is not None:
    inside = inside & ~ignore
  gathered = jnp.take_along_axis(sv_labels.astype(jnp.int32), jnp.where(inside, segments, 0),
                                 axis=-1)
  return jnp.where(inside, gathered, -1)


@functools.partial(jax.jit, static_argnames=("marginal", "epsilon", "num_iters"))
def _transport_labels(values, centroids, valid, counts, *, marginal, epsilon, num_iters):
  """Labels int32 [M] from rows `values` (scores [M, K], or features [M, D] with centroids)."""
  values = jnp.where(valid[:, None], values, 0.0)
  if centroids is None:
    cost = -values
  else:
    cost = 1.0 - svc_features.l2_normalize(values) @ svc_features.l2_normalize(centroids).T
  row_weights = jnp.where(valid, counts, 0.0) if marginal == "point_count" else None
  return sinkhorn.sinkhorn_labels_from_cost(cost, valid, epsilon=epsilon, num_iters=num_iters,
                                            row_weights=row_weights).labels


def sinkhorn_pseudo_labels(features_or_scores: jax.Array, valid: jax.Array, counts: jax.Array,
                           *, centroids: jax.Array | None = None,
                           marginal: Marginal = "equipartition", epsilon: float = 0.05,
                           num_iters: int = 100, mesh: Mesh | None = None,
                           axis_name: str = "data") -> jax.Array:
  """Balanced super-voxel labels by entropic optimal transport over the whole training set.

  Rows are all super-voxels of all scenes, flattened. The cost is dense [M, K] and solved by
  OTT-JAX (`jaxseg.ops.sinkhorn.sinkhorn_labels_from_cost`, an `ott.geometry.Geometry` with an
  explicit cost matrix, log-domain Sinkhorn, exactly `num_iters` updates):
    - with `centroids`: c = 1 - cos(x_m, mu_k), the cost of `ott.geometry.costs.Cosine`,
      computed as one matmul of unit rows;
    - without: the rows are scores s [M, K] (higher = closer, e.g. cosine logits), c = -s.
  `epsilon` is absolute, in cost units (OTT relative_epsilon=None): for the cosine cost it acts
  like a softmax temperature on the cosine. A label is the arg-max of the transport row.

  Marginals (cluster side always uniform):
    - 'equipartition': every valid row has the same mass, so each cluster gets ~M/K rows;
    - 'point_count': row masses are the point counts, so each cluster gets the same number of
      points; valid rows with count 0 get no mass and label -1.

  Args:
    features_or_scores: f32 [M, D] super-voxel features (with `centroids`) or f32 [M, K] scores.
      Invalid rows may hold anything (NaN included).
    valid: bool [M], False for padding / excluded super-voxels.
    counts: f32 [M] points per super-voxel (used by 'point_count').
    centroids: f32 [K, D] cluster centroids, or None when the rows are scores.
    marginal: 'equipartition' or 'point_count'.
    epsilon: absolute entropic regularisation (> 0).
    num_iters: Sinkhorn updates (static).
    mesh: optional mesh; rows are sharded over `axis_name` (XLA inserts the cross-device
      reductions), so the [M, K] cost and plan are split over the devices.
    axis_name: mesh axis that shards the rows.

  Returns:
    int32 [M] cluster labels, -1 for invalid rows.
  """
  if marginal not in MARGINALS:
    raise InputError(None, f"unknown Sinkhorn marginal {marginal!r}", f"use one of {MARGINALS}")
  values = jnp.asarray(features_or_scores, jnp.float32)
  valid = jnp.asarray(valid, bool)
  counts = jnp.asarray(counts, jnp.float32)
  num_rows = values.shape[0]
  if values.ndim != 2 or valid.shape != (num_rows,) or counts.shape != (num_rows,):
    raise InputError(None, f"rows {values.shape}, valid {valid.shape} and counts "
                     f"{counts.shape} do not match", "pass [M, D] rows with [M] valid and counts")
  if centroids is not None:
    centroids = jnp.asarray(centroids, jnp.float32)
    if centroids.ndim != 2 or centroids.shape[1] != values.shape[1]:
      raise InputError(None, f"centroids {centroids.shape} do not match features "
                       f"{values.shape}", "pass centroids [K, D] with the features' D")
  if not bool(jnp.any(valid)):
    raise InputError(None, "no valid super-voxel to label",
                     "check the valid mask (and that the training set is not empty)")
  if mesh is not None:
    shards = mesh.shape[axis_name]
    pad = -num_rows % shards
    values = jnp.pad(values, ((0, pad), (0, 0)))
    valid, counts = jnp.pad(valid, (0, pad)), jnp.pad(counts, (0, pad))
    rows = NamedSharding(mesh, PartitionSpec(axis_name))
    values, valid, counts = jax.device_put((values, valid, counts), rows)
    if centroids is not None:
      centroids = jax.device_put(centroids, NamedSharding(mesh, PartitionSpec()))
  labels = _transport_labels(values, centroids, valid, counts, marginal=marginal,
                             epsilon=float(epsilon), num_iters=int(num_iters))
  if mesh is not None:  # Gather the row-sharded labels before dropping the padding rows.
    labels = jax.device_put(labels, NamedSharding(mesh, PartitionSpec()))
  return labels[:num_rows]
