"""K-means on the accelerator: weighted k-means++ init and a fixed number of Lloyd iterations.

  result = kmeans(features, k=20, num_iters=30, metric="cosine", seed=0)
  result.centroids   # f32 [K, D]
  result.assignments # int32 [N], -1 for zero-weight (padding) rows
  result.inertia     # f32 scalar: sum_i w_i * d(x_i, c_{a_i})

Distances: "euclidean" uses d = ||x - c||^2; "cosine" (spherical k-means) normalises rows to unit
length and uses d = 1 - <x, c> with unit-length centroids.

Memory: the assignment step scans over row blocks of `chunk_size`, so it holds O(chunk_size * K)
distances at a time; k-means++ holds O(N * n_local_trials).

Data parallel: pass `mesh` (a `jax.sharding.Mesh`) and `axis_name`; rows are sharded over that
axis and the per-device centroid sums, counts and inertia are reduced with `psum` inside
`jax.shard_map`. The result equals the single-device run up to float summation order.

Empty clusters keep their previous centroid (no re-seeding), so K centroids are always defined.
Weight-0 rows are padding: they never move a centroid, are never sampled by k-means++ and get
assignment -1. Results are deterministic for a given seed (the initialisation runs unsharded).
"""

from __future__ import annotations

import functools
import math
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxseg.errors import InputError

Metric = Literal["euclidean", "cosine"]
_METRICS = ("euclidean", "cosine")


class KMeansResult(NamedTuple):
  centroids: jax.Array    # f32 [K, D]
  assignments: jax.Array  # int32 [N]; -1 for weight-0 rows
  inertia: jax.Array      # f32 scalar, weighted sum of distances to the assigned centroid


def _prepare(x: jax.Array, metric: str) -> jax.Array:
  """Float32 rows; unit length for cosine (all-zero rows stay zero)."""
  x = jnp.asarray(x, jnp.float32)
  if metric == "cosine":
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  return x


def pairwise_distances(x: jax.Array, centroids: jax.Array, metric: str) -> jax.Array:
  """Distances [B, K] between rows x [B, D] and centroids [K, D] (inputs already prepared)."""
  dots = x @ centroids.T
  if metric == "cosine":
    return jnp.maximum(1.0 - dots, 0.0)
  sq = jnp.sum(x * x, axis=1)[:, None] - 2.0 * dots + jnp.sum(centroids * centroids, axis=1)
  return jnp.maximum(sq, 0.0)


def nearest_centroid(x: jax.Array, centroids: jax.Array, metric: str
                     ) -> tuple[jax.Array, jax.Array]:
  """Index int32 [B] and distance f32 [B] of the nearest centroid (lowest index on ties).

  The row term ||x||^2 is added after the search, and the arg-min is taken as "first index
  equal to the minimum" with two plain reductions, which XLA runs much faster than a
  variadic `argmin` reduction on CPU.
  """
  k = centroids.shape[0]
  dots = x @ centroids.T
  if metric == "cosine":
    scores = -dots
  else:
    scores = jnp.sum(centroids * centroids, axis=1) - 2.0 * dots
  best = jnp.min(scores, axis=1)
  index = jnp.min(jnp.where(scores == best[:, None], jnp.arange(k, dtype=jnp.int32), k), axis=1)
  if metric == "cosine":
    return index, 1.0 + best
  return index, jnp.maximum(best + jnp.sum(x * x, axis=1), 0.0)


@functools.partial(jax.jit, static_argnames=("k", "metric", "n_local_trials"))
def _kmeans_plus_plus(key, x, weights, k, metric, n_local_trials):
  key, first_key = jax.random.split(key)
  first = jax.random.categorical(first_key, jnp.log(weights))
  closest = pairwise_distances(x, x[first][None], metric)[:, 0]
  centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[first])

  def add_center(i, state):
    centers, closest, key = state
    key, sample_key = jax.random.split(key)
    mass = weights * closest
    # If every row already sits on a centre, fall back to sampling by weight alone.
    logits = jnp.log(jnp.where(jnp.sum(mass) > 0, mass, weights))
    candidates = jax.random.categorical(sample_key, logits, shape=(n_local_trials,))
    cand_dist = jnp.minimum(closest[:, None],
                            pairwise_distances(x, x[candidates], metric))   # [N, L]
    potential = jnp.sum(weights[:, None] * cand_dist, axis=0)
    best = jnp.argmin(potential)
    return (centers.at[i].set(x[candidates[best]]), cand_dist[:, best], key)

  centers, _, _ = jax.lax.fori_loop(1, k, add_center, (centers, closest, key))
  return centers


def kmeans_plus_plus(key: jax.Array, x: jax.Array, k: int, *, weights: jax.Array | None = None,
                     metric: Metric = "euclidean", n_local_trials: int | None = None
                     ) -> jax.Array:
  """Greedy weighted k-means++ seeding (as scikit-learn: 2 + log(k) candidates per step).

  Args:
    key: PRNG key.
    x: float [N, D] rows.
    k: number of centres (static).
    weights: float [N] non-negative sample weights (0 = padding, never chosen); None = ones.
    metric: "euclidean" or "cosine".
    n_local_trials: candidates tried per step; None = 2 + floor(log(k)).

  Returns:
    f32 [K, D] initial centroids (unit length for cosine).
  """
  _check_metric(metric)
  x = _prepare(x, metric)
  weights = jnp.ones(x.shape[0], jnp.float32) if weights is None else jnp.asarray(
      weights, jnp.float32)
  trials = 2 + int(math.log(k)) if n_local_trials is None else int(n_local_trials)
  return _kmeans_plus_plus(key, x, weights, k, metric, trials)


def _local_statistics(x, weights, centroids, metric, chunk_size, axis_name=None):
  """Assignment step over row blocks.

  Args:
    x: f32 [R, D] local rows, R a multiple of chunk_size.
    weights: f32 [R].
    centroids: f32 [K, D].
    axis_name: mesh axis when called inside shard_map (the rows vary over it), else None.

  Returns:
    sums f32 [K, D], counts f32 [K] (weighted), inertia f32 [], labels int32 [R].
  """
  k, dim = centroids.shape
  x_blocks = x.reshape(-1, chunk_size, dim)
  w_blocks = weights.reshape(-1, chunk_size)

  def block(carry, xs):
    sums, counts, inertia = carry
    xb, wb = xs
    labels, best = nearest_centroid(xb, centroids, metric)
    sums = sums + jax.ops.segment_sum(xb * wb[:, None], labels, k)
    counts = counts + jax.ops.segment_sum(wb, labels, k)
    return (sums, counts, inertia + jnp.sum(wb * best)), labels

  init = (jnp.zeros((k, dim), x.dtype), jnp.zeros((k,), x.dtype), jnp.zeros((), x.dtype))
  if axis_name is not None:
    init = jax.lax.pcast(init, axis_name, to="varying")
  (sums, counts, inertia), labels = jax.lax.scan(block, init, (x_blocks, w_blocks))
  return sums, counts, inertia, labels.reshape(-1)


def _update(centroids, sums, counts, metric):
  """New centroids; empty clusters keep the old one."""
  if metric == "cosine":
    norms = jnp.linalg.norm(sums, axis=1, keepdims=True)
    new = sums / jnp.maximum(norms, 1e-12)
    return jnp.where(norms > 0, new, centroids)
  new = sums / jnp.maximum(counts, 1e-30)[:, None]
  return jnp.where(counts[:, None] > 0, new, centroids)


def _lloyd(x, weights, centroids, *, num_iters, metric, chunk_size, axis_name):
  """Runs `num_iters` Lloyd updates then a final assignment on the (local) rows."""

  def reduce(value):
    return value if axis_name is None else jax.lax.psum(value, axis_name)

  def step(_, c):
    sums, counts, _, _ = _local_statistics(x, weights, c, metric, chunk_size, axis_name)
    return _update(c, reduce(sums), reduce(counts), metric)

  centroids = jax.lax.fori_loop(0, num_iters, step, centroids)
  _, _, inertia, labels = _local_statistics(x, weights, centroids, metric, chunk_size,
                                            axis_name)
  labels = jnp.where(weights > 0, labels, -1)
  return centroids, labels, reduce(inertia)


@functools.partial(jax.jit, static_argnames=("num_iters", "metric", "chunk_size", "mesh",
                                             "axis_name"))
def _lloyd_jit(x, weights, centroids, *, num_iters, metric, chunk_size, mesh, axis_name):
  run = functools.partial(_lloyd, num_iters=num_iters, metric=metric, chunk_size=chunk_size)
  if mesh is None:
    return run(x, weights, centroids, axis_name=None)
  sharded = jax.shard_map(functools.partial(run, axis_name=axis_name), mesh=mesh,
                          in_specs=(P(axis_name), P(axis_name), P()),
                          out_specs=(P(), P(axis_name), P()))
  return sharded(x, weights, centroids)


def _check_metric(metric: str) -> None:
  if metric not in _METRICS:
    raise InputError(None, f"unknown k-means metric {metric!r}", f"use one of {_METRICS}")


def kmeans(x: jax.Array, k: int, *, num_iters: int = 30, metric: Metric = "euclidean",
           weights: jax.Array | None = None, seed: int | jax.Array = 0,
           init: jax.Array | None = None, chunk_size: int = 4096,
           mesh: Mesh | None = None, axis_name: str = "data",
           n_local_trials: int | None = None) -> KMeansResult:
  """K-means with k-means++ seeding and exactly `num_iters` Lloyd iterations.

  Args:
    x: float [N, D] rows (numpy or jax).
    k: number of clusters K (static).
    num_iters: Lloyd iterations (static); the returned assignments/inertia are those of the
      returned centroids (one extra assignment step, as scikit-learn does).
    metric: "euclidean" (squared distance) or "cosine" (spherical k-means).
    weights: float [N] non-negative sample weights; 0 marks a padding row. None = ones.
    seed: int seed or PRNG key for k-means++ (ignored when `init` is given).
    init: optional f32 [K, D] initial centroids (normalised for cosine).
    chunk_size: rows per assignment block (memory O(chunk_size * K) per device); 4096 is
      fastest on CPU in our runs, accelerators may prefer larger blocks.
    mesh: optional mesh; rows are sharded over `axis_name` and reduced with psum.
    axis_name: mesh axis that shards the rows.
    n_local_trials: k-means++ candidates per step (None = 2 + log k).

  Returns:
    KMeansResult(centroids f32 [K, D], assignments int32 [N], inertia f32 []).
  """
  _check_metric(metric)
  x = _prepare(x, metric)
  if x.ndim != 2 or x.shape[0] == 0:
    raise InputError(None, f"k-means needs a non-empty [N, D] array, got shape {x.shape}",
                     "pass one row per point/super-voxel feature")
  num_rows = x.shape[0]
  weights = (jnp.ones(num_rows, jnp.float32) if weights is None
             else jnp.asarray(weights, jnp.float32))
  if weights.shape != (num_rows,):
    raise InputError(None, f"weights have shape {weights.shape}, expected ({num_rows},)",
                     "give one non-negative weight per row")
  if init is None:
    key = jax.random.key(seed) if isinstance(seed, (int, np.integer)) else seed
    init = kmeans_plus_plus(key, x, k, weights=weights, metric=metric,
                            n_local_trials=n_local_trials)
  init = _prepare(init, metric)
  if init.shape != (k, x.shape[1]):
    raise InputError(None, f"init has shape {init.shape}, expected {(k, x.shape[1])}",
                     "pass K initial centroids with the feature dimension of x")

  shards = 1 if mesh is None else mesh.shape[axis_name]
  chunk = max(1, min(chunk_size, -(-num_rows // shards)))
  padded = -(-num_rows // (shards * chunk)) * shards * chunk
  x = jnp.pad(x, ((0, padded - num_rows), (0, 0)))
  weights = jnp.pad(weights, (0, padded - num_rows))
  if mesh is not None:
    rows = NamedSharding(mesh, P(axis_name))
    x, weights = jax.device_put(x, rows), jax.device_put(weights, rows)
    init = jax.device_put(init, NamedSharding(mesh, P()))
  centroids, labels, inertia = _lloyd_jit(x, weights, init, num_iters=num_iters, metric=metric,
                                          chunk_size=chunk, mesh=mesh, axis_name=axis_name)
  if mesh is not None:  # Gather the row-sharded labels before dropping the padding rows.
    labels = jax.device_put(labels, NamedSharding(mesh, P()))
  return KMeansResult(centroids, labels[:num_rows], inertia)
