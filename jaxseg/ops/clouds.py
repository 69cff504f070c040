"""Per-cloud geometry: unit-sphere normalisation and farthest-point sampling.

  unit = unit_sphere(xyz, valid)                                  # f32 [N, 3]
  rows, found, nearest = farthest_point_sampling(unit, valid, 4096)

A cloud is N rows of which `valid` marks the real points; invalid rows may hold anything (NaN
included) and are never sampled.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def unit_sphere(xyz: jax.Array, valid: jax.Array) -> jax.Array:
  """f32 [N, 3]: valid points centred on their mean and scaled so the farthest lies at 1
  (the reference's pc_normalize); invalid rows are 0."""
  weight = valid.astype(jnp.float32)[:, None]
  safe = jnp.where(valid[:, None], xyz.astype(jnp.float32), 0.0)
  centred = (safe - jnp.sum(safe * weight, 0) / jnp.maximum(jnp.sum(weight), 1.0)) * weight
  scale = jnp.max(jnp.sqrt(jnp.sum(centred * centred, -1)))
  return centred / jnp.maximum(scale, 1e-12)


class Samples(NamedTuple):
  rows: jax.Array      # int32 [M]: the sampled rows in pick order; N where found is False
  found: jax.Array     # bool [M]: slot m holds a sample (False beyond the valid count)
  nearest: jax.Array   # int32 [N]: slot of each valid row's nearest sample; M on invalid rows


def farthest_point_sampling(points: jax.Array, valid: jax.Array, num: int) -> Samples:
  """Farthest-point sampling of `num` rows of a cloud, as PointNet++'s sampling op.

  Args:
    points: f32 [N, D]; valid: bool [N]; num: M, static.
  Returns:
    `Samples`. The first pick is the first valid row (the CUDA op starts at row 0); each next
    pick is the valid row farthest (squared Euclidean) from every row picked so far, the lowest
    row on ties. With fewer than M valid rows every valid row is picked once and the remaining
    slots are empty. `nearest` is the slot of the pick closest to each row (the earliest on
    ties), tracked along the way at no extra distance computation; a picked row is its own
    nearest.
  """
  num_rows = points.shape[0]
  # One vector per coordinate: the loop body then streams plain vectors (2.4x faster on CPU
  # than [N, D] rows, 6x faster than a [D, N] array).
  columns = [jnp.where(valid, points[:, d].astype(jnp.float32), 0.0)
             for d in range(points.shape[1])]
  count = jnp.sum(valid)
  first = jnp.argmax(valid).astype(jnp.int32)
  # Invalid rows sit at distance -1: never the farthest while a valid row is left unpicked,
  # and never nearer to a pick than that.
  closest = jnp.where(valid, jnp.inf, -1.0)
  nearest = jnp.full((num_rows,), num, jnp.int32)

  def distances(row):
    return sum((column - column[row]) ** 2 for column in columns)

  def pick(slot, carry):
    rows, closest, nearest = carry
    sq = distances(rows[slot - 1])
    nearer = sq < closest
    nearest = jnp.where(nearer, slot - 1, nearest)
    closest = jnp.where(nearer, sq, closest)
    return rows.at[slot].set(jnp.argmax(closest).astype(jnp.int32)), closest, nearest

  rows = jnp.zeros((num,), jnp.int32).at[0].set(first)
  rows, closest, nearest = jax.lax.fori_loop(1, num, pick, (rows, closest, nearest))
  # The last pick has not yet updated the distances: one more step for `nearest`.
  nearest = jnp.where(distances(rows[num - 1]) < closest, num - 1, nearest)
  found = jnp.arange(num) < count
  return Samples(jnp.where(found, rows, num_rows), found, nearest)
