"""Super-voxel pooling: per-segment mean / max of point features and scatter back to points.

Every function takes one scene (features [P, D], ids int32 [P]) or a batch of scenes
(features [B, P, D], ids int32 [B, P]; segments are per scene, the batch is vmapped).

Padding convention: a point whose id is < 0 or >= num_segments (use -1 or num_segments for
padding rows) belongs to no segment. It contributes to no pooled value, and `unpool` gives it
zeros. `num_segments` is a static Python int (fixed capacity under jit).

Empty segments (no valid point) pool to 0 for the mean and to `fill` (default 0.0) for the max.

`sorted_ids=True` promises that the valid ids are ascending along the points and every padding
id comes after them (pipeline batches sort each pack's points by super-voxel); the segment
reductions then tell XLA the indices are sorted, which accelerators reduce without atomics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxseg.ops.rows import per_pack, take_rows


def _drop_padding(ids: jax.Array, num_segments: int) -> jax.Array:
  """Maps every id outside [0, num_segments) to num_segments, which segment ops drop."""
  ids = ids.astype(jnp.int32)
  return jnp.where((ids >= 0) & (ids < num_segments), ids, num_segments)


def _batched(fn):
  """Lets `fn(features [P, D], ids [P], ...)` also take [B, P, D] / [B, P] via vmap."""

  def wrapper(features, ids, *args, **kwargs):
    if ids.ndim == 2:
      return jax.vmap(lambda f, i: fn(f, i, *args, **kwargs))(features, ids)
    return fn(features, ids, *args, **kwargs)

  wrapper.__name__ = fn.__name__
  wrapper.__doc__ = fn.__doc__
  return wrapper


def segment_counts(ids: jax.Array, num_segments: int, sorted_ids: bool = False) -> jax.Array:
  """Number of valid points per segment: ids int32 [P] or [B, P] -> int32 [S] or [B, S]."""
  if ids.ndim == 2:
    return jax.vmap(lambda i: segment_counts(i, num_segments, sorted_ids))(ids)
  safe = _drop_padding(ids, num_segments)
  return jax.ops.segment_sum(jnp.ones_like(safe), safe, num_segments,
                             indices_are_sorted=sorted_ids)


@_batched
def segment_mean(features: jax.Array, ids: jax.Array, num_segments: int,
                 sorted_ids: bool = False) -> jax.Array:
  """Mean feature per segment.

  Args:
    features: float [P, D] (or [B, P, D]).
    ids: int32 [P] (or [B, P]); ids outside [0, num_segments) are padding.
    num_segments: static number of segments S.
    sorted_ids: see the module docstring.

  Returns:
    float [S, D] (or [B, S, D]), same dtype as `features`; 0 for empty segments.
  """
  safe = _drop_padding(ids, num_segments)
  sums = jax.ops.segment_sum(features, safe, num_segments, indices_are_sorted=sorted_ids)
  counts = jax.ops.segment_sum(jnp.ones_like(safe), safe, num_segments,
                               indices_are_sorted=sorted_ids)
  return sums / jnp.maximum(counts, 1).astype(features.dtype)[:, None]


@_batched
def segment_max(features: jax.Array, ids: jax.Array, num_segments: int,
                fill: float = 0.0) -> jax.Array:
  """Max feature per segment.

  Args:
    features: float [P, D] (or [B, P, D]).
    ids: int32 [P] (or [B, P]); ids outside [0, num_segments) are padding.
    num_segments: static number of segments S.
    fill: value given to empty segments (default 0.0).

  Returns:
    float [S, D] (or [B, S, D]); `fill` for empty segments. The gradient flows to the arg-max
    point(s) of each segment.
  """
  safe = _drop_padding(ids, num_segments)
  maxima = jax.ops.segment_max(features, safe, num_segments)
  counts = jax.ops.segment_sum(jnp.ones_like(safe), safe, num_segments)
  return jnp.where(counts[:, None] > 0, maxima, jnp.asarray(fill, features.dtype))


def unpool(segment_features: jax.Array, ids: jax.Array) -> jax.Array:
  """Scatters segment features back to points.

  Args:
    segment_features: float [S, D] (or [B, S, D]).
    ids: int32 [P] (or [B, P]); ids outside [0, S) are padding.

  Returns:
    float [P, D] (or [B, P, D]): row p is segment_features[ids[p]], zeros for padding points.
  """
  if ids.ndim == 2:
    return per_pack(unpool, segment_features, ids)
  return take_rows(segment_features, _drop_padding(ids, segment_features.shape[0]))
