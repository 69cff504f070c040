"""Blocked brute-force k nearest neighbours with `lax.top_k` (static shapes, padding mask).

  idx, sq_dist = knn(points, k=16, mask=valid)              # self-query, [N, k]
  idx, sq_dist = knn(points, k=16, mask=valid, queries=q)   # other queries, [Q, k]

Queries are processed in blocks of `block_size` with `lax.map`, so memory is
O(block_size * N). Neighbours are sorted by increasing squared Euclidean distance; in a
self-query each valid point is its own first neighbour (distance 0).

Padding: a point with mask False is never returned as a neighbour while a valid point is
still available. If fewer than k valid points exist, the missing slots hold index 0 and
distance +inf, so callers test `jnp.isfinite(sq_dist)` for neighbour validity. Rows of padding
queries are computed like any other row and should be ignored by the caller.
Ties between equal distances go to the lower index.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxseg.errors import InputError


def _block_knn(queries, points, point_sq, valid, k):
  """Neighbours of a block of queries [B, D] among points [N, D] -> ([B, k], [B, k])."""
  dots = queries @ points.T
  sq = jnp.sum(queries * queries, axis=1, keepdims=True) - 2.0 * dots + point_sq[None]
  sq = jnp.where(valid[None], jnp.maximum(sq, 0.0), jnp.inf)
  neg, idx = jax.lax.top_k(-sq, k)
  found = jnp.isfinite(neg)
  return jnp.where(found, idx, 0).astype(jnp.int32), -neg


@functools.partial(jax.jit, static_argnames=("k", "block_size"))
def _knn(points, mask, queries, k, block_size):
  num_queries, dim = queries.shape
  padded = -(-num_queries // block_size) * block_size
  blocks = jnp.pad(queries, ((0, padded - num_queries), (0, 0))).reshape(-1, block_size, dim)
  point_sq = jnp.sum(points * points, axis=1)
  idx, sq = jax.lax.map(lambda q: _block_knn(q, points, point_sq, mask, k), blocks)
  return idx.reshape(padded, k)[:num_queries], sq.reshape(padded, k)[:num_queries]


def knn(points: jax.Array, k: int, *, mask: jax.Array | None = None,
        queries: jax.Array | None = None, block_size: int = 1024
        ) -> tuple[jax.Array, jax.Array]:
  """k nearest valid points for each query (exact, brute force).

  Args:
    points: float [N, D] candidate points (xyz or features).
    k: number of neighbours (static, <= N).
    mask: bool [N], False for padding points (never chosen); None = all valid.
    queries: float [Q, D]; None = the points themselves.
    block_size: queries per block (static); memory is O(block_size * N).

  Returns:
    indices int32 [Q, k] into `points` and squared distances f32 [Q, k], nearest first;
    +inf distance (index 0) in slots without a valid neighbour.
  """
  points = jnp.asarray(points, jnp.float32)
  if points.ndim != 2:
    raise InputError(None, f"knn points must be [N, D], got shape {points.shape}",
                     "pass one row per point; vmap over scenes for batches")
  if not 1 <= k <= points.shape[0]:
    raise InputError(None, f"k={k} must be in [1, {points.shape[0]}] (number of points)",
                     "lower k or pad the scene to more points")
  mask = jnp.ones(points.shape[0], bool) if mask is None else jnp.asarray(mask, bool)
  # Padding rows may hold garbage (NaN); zero them so they cannot poison the distances.
  points = jnp.where(mask[:, None], points, 0.0)
  queries = points if queries is None else jnp.asarray(queries, jnp.float32)
  block = max(1, min(block_size, queries.shape[0]))
  return _knn(points, mask, queries, k, block)
