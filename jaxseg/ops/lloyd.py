"""What the two forms of Lloyd's iterations share: the plain one (`kmeans`) and the one that
skips settled rows by Hamerly's bounds (`kmeans_bounds`).

  update_centroids(centroids, sums, counts, metric, members=None)
                                                       new centroids from the weighted sums
  row_blocks(chunk_size, x, weights)                   rows as blocks for lax.scan
  mark_varying(value, axis_name)                       a fresh accumulator inside shard_map
  sum_over(value, axis_name)                           psum over the rows' mesh axis

axis_name is the mesh axis the rows are sharded over when called inside shard_map, or None on
one device (then mark_varying and sum_over return their input).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def update_centroids(centroids: jax.Array, sums: jax.Array, counts: jax.Array, metric: str,
                     members: jax.Array | None = None) -> jax.Array:
  """New centroids f32 [K, D] from weighted sums f32 [K, D] and weighted counts f32 [K].

  Euclidean: the weighted mean; cosine: the normalised sum. A centroid without members keeps
  its place (an empty cluster), and so does a cosine centroid whose sum is zero. members:
  int32 [K] exact member counts, from a caller that updates its sums and counts incrementally
  (their rounding can leave a count slightly off zero on an empty cluster); without them a
  euclidean centroid is empty when its count is 0, a cosine one when its sum is 0.
  """
  if metric == "cosine":
    norms = jnp.linalg.norm(sums, axis=1, keepdims=True)
    new = sums / jnp.maximum(norms, 1e-12)
    keep = norms[:, 0] > 0
    if members is not None:
      keep &= members > 0
  else:
    new = sums / jnp.maximum(counts, 1e-30)[:, None]
    keep = counts > 0 if members is None else members > 0
  return jnp.where(keep[:, None], new, centroids)


def row_blocks(chunk_size: int, *arrays: jax.Array) -> tuple[jax.Array, ...]:
  """Each array [R, ...] (R a multiple of chunk_size) as blocks [R / chunk_size, chunk_size,
  ...]."""
  return tuple(a.reshape(-1, chunk_size, *a.shape[1:]) for a in arrays)


def mark_varying(value, axis_name: str | None):
  """A fresh accumulator (pytree) marked as varying over the mesh axis inside shard_map."""
  return value if axis_name is None else jax.lax.pcast(value, axis_name, to="varying")


def sum_over(value, axis_name: str | None):
  """A pytree of per-device partial sums summed over the mesh axis."""
  return value if axis_name is None else jax.lax.psum(value, axis_name)
