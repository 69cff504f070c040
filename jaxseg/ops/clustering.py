"""Spherical K-means over the super-voxels of a training set (PointDC Eq. 8) and the merge of
over-clustered primitives into classes (GrowSP / PointDC evaluation).

  centroids = cluster_supervoxels(sv_feats, weights, k=20, seed=0, mesh=mesh)   # f32 [K, D]
  class_of_primitive, class_centroids = merge_primitives(centroids, num_classes=20, seed=0)

Host orchestration: the rows stay on the device(s); only a few scalars come back to the host.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jaxseg.errors import InputError
from jaxseg.logging_utils import get_logger
from jaxseg.ops import kmeans as kmeans_lib
from jaxseg.ops import features as svc_features

_LOG = get_logger("ops.clustering")


def cluster_supervoxels(sv_feats: jax.Array, weights: jax.Array, k: int, *,
                        num_iters: int = 80, seed: int = 0, mesh: Mesh | None = None,
                        axis_name: str = "data", max_points_per_centroid: int | None = None,
                        sum_method: kmeans_lib.SumMethod = "auto") -> jax.Array:
  """Spherical K-means (cosine, k-means++ seeding) over all super-voxels at once.

  Only the rows with a positive weight are clustered: the padding slots of the flattened
  [scenes * slots] layout are dropped before k-means++ and Lloyd (`kmeans(compact=True)`).

  Args:
    sv_feats: f32 [M, D] super-voxel features of every training scene, flattened (normalised
      here; rows with weight 0 may hold anything, NaN included).
    weights: f32 [M] row weights: 0 = padding / excluded (e.g. too few points), 1 for the
      reference's unweighted K-means, or point counts for point-weighted centroids.
    k: number of clusters K (static).
    num_iters: Lloyd iterations (the reference runs 80).
    seed: k-means++ (and subsample) seed.
    mesh: optional mesh; rows are sharded over `axis_name` and reduced with psum.
    axis_name: mesh axis that shards the rows.
    max_points_per_centroid: None fits on every valid row; m fits on a seeded uniform subset of
      K*m valid rows when there are more (faiss's rule; the reference's faiss K-means runs with
      faiss's default m = 256), then assigns every row.
    sum_method: centroid sums, see `jaxseg.ops.kmeans` ("auto" picks by platform and K).

  Returns:
    f32 [K, D] unit-length centroids.
  """
  weights = jnp.asarray(weights, jnp.float32)
  sv_feats = jnp.asarray(sv_feats, jnp.float32)
  if sv_feats.ndim != 2 or weights.shape != sv_feats.shape[:1]:
    raise InputError(None, f"features {sv_feats.shape} and weights {weights.shape} do not "
                     "match", "pass features [M, D] with one weight per row")
  num_valid = int(jnp.sum(weights > 0))
  if num_valid < k:
    raise InputError(None, f"only {num_valid} super-voxels have a positive weight, fewer than "
                     f"the {k} clusters asked for", "use more scenes or a smaller k")
  result = kmeans_lib.kmeans(sv_feats, k, num_iters=num_iters, metric="cosine", weights=weights,
                             seed=seed, mesh=mesh, axis_name=axis_name,
                             max_points_per_centroid=max_points_per_centroid,
                             sum_method=sum_method)
  sizes = jnp.bincount(jnp.where(result.assignments >= 0, result.assignments, k), length=k + 1)
  _LOG.info("spherical k-means: %d super-voxels -> %d clusters, inertia %.4g, %d empty",
            num_valid, k, float(result.inertia), int(jnp.sum(sizes[:k] == 0)))
  return result.centroids


def merge_primitives(centroids: jax.Array, num_classes: int, *, seed: int = 0,
                     num_iters: int = 100, num_inits: int = 20) -> tuple[jax.Array, jax.Array]:
  """Groups K primitive centroids into C classes by spherical K-means of the centroids.

  The best of `num_inits` k-means++ runs (lowest inertia) is kept, as the reference's
  scikit-learn `k_means(n_init=20)` does.

  Args:
    centroids: f32 [K, D] primitive centroids (normalised here).
    num_classes: C <= K.
    seed: seed of the k-means++ runs.
    num_iters: Lloyd iterations per run.
    num_inits: number of runs.

  Returns:
    class_of_primitive int32 [K] in [0, C), class_centroids f32 [C, D] = normalised mean of
    the unit centroids of each class's primitives. K == C gives the identity.
  """
  unit = svc_features.l2_normalize(jnp.asarray(centroids, jnp.float32))
  num_primitives = unit.shape[0]
  if not 1 <= num_classes <= num_primitives:
    raise InputError(None, f"cannot merge {num_primitives} primitives into {num_classes} "
                     "classes", f"use 1 <= num_classes <= {num_primitives}")
  if num_classes == num_primitives:
    return jnp.arange(num_primitives, dtype=jnp.int32), unit
  best = None
  for key in jax.random.split(jax.random.key(seed), num_inits):
    run = kmeans_lib.kmeans(unit, num_classes, num_iters=num_iters, metric="cosine", seed=key)
    if best is None or float(run.inertia) < float(best.inertia):
      best = run
  assignments = best.assignments.astype(jnp.int32)
  sums = jax.ops.segment_sum(unit, assignments, num_classes)
  norms = jnp.linalg.norm(sums, axis=1, keepdims=True)
  class_centroids = jnp.where(norms > 0, sums / jnp.maximum(norms, 1e-12), best.centroids)
  return assignments, class_centroids
