"""Lloyd iterations that skip the rows whose nearest centroid provably did not change (Hamerly).

Hamerly (2010), "Making k-means even faster": each row keeps an upper bound u on the distance to
its assigned centroid and a lower bound l on the distance to every other centroid. After the
centroids move by delta_j, u grows by delta of its own centroid and l shrinks by the largest
delta of the others. A row whose u is at most max(l, s_a), where s_a is half the distance from
its centroid to the nearest other one, keeps its centroid (triangle inequality); only the other
rows (the "candidates") are compared with every centroid again. The assignments of every
iteration are therefore those of plain Lloyd, and so are the centroids and the inertia (up to
float summation order); only the distance computations that cannot change an assignment are
skipped. Once most rows have settled, an iteration reads the bounds (three numbers a row) and
the candidates' rows instead of every row.

Static shapes: the candidates of an iteration are compacted to the front of a row-index array
of the rows' length (`_compact`) and processed in blocks of `chunk_size` rows by a
`lax.while_loop` whose trip count is the number of candidate blocks, so the work follows the
candidate count without recompiling.

Centroid sums are kept up to date from the rows that change centroid (their weighted rows
subtracted from the old centroid's sum and added to the new one's); each centroid's member
count is an exact integer, so an empty cluster keeps its previous centroid, as with fresh sums
(`lloyd.update_centroids`). Each such update rounds by about eps * |sum|, which matters when a
centroid loses most of its rows or weight (its small remaining sum keeps the large one's
error): so once the rows that entered or left a centroid since its sums were last summed
afresh outnumber its members, or their weight exceeds its weight, all sums are summed afresh
from the assignments (a pass over the rows, rare once the rows have settled).

Data parallel: called inside shard_map with `axis_name`, each device keeps the bounds of its
own rows and the sum changes are reduced with psum, as `kmeans._fit` does.

Bounds in float32: distances come from the expansion ||x||^2 - 2 <x, c> + ||c||^2, whose
rounding error is at most about D * eps * (||x||^2 + max ||c||^2); the upper bound is taken
that much above and the lower bound that much below the computed squared distances, and the
centroid moves and the bound updates are rounded outwards by a few ulps, so rounding can make
a row a candidate needlessly rather than keep it on a stale centroid (up to the float32
rounding of the distances themselves, which plain Lloyd shares).
Cosine (spherical) k-means runs on unit rows and unit centroids, where the nearest centroid by
1 - <x, c> is the nearest by Euclidean distance, so the same bounds hold.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxseg.ops.lloyd import mark_varying, row_blocks, sum_over, update_centroids

_HIGHEST = jax.lax.Precision.HIGHEST
_EPS32 = float(jnp.finfo(jnp.float32).eps)
_SLACK = 4 * _EPS32      # outward rounding of the bound updates


def _new_centroids(centroids, totals, metric):
  """Centroids f32 [K, D] from (sums, counts, members); see `lloyd.update_centroids`."""
  sums, counts, members = totals
  return update_centroids(centroids, sums, counts, metric, members)


def _sq_norms(centroids: jax.Array, metric: str) -> jax.Array:
  """f32 [K] ||c||^2; exactly 1 for cosine, whose centroids are unit vectors, so that the
  nearest centroid is the one of largest <x, c> as in `kmeans._assign` (ties included)."""
  if metric == "cosine":
    return jnp.ones(centroids.shape[:1], centroids.dtype)
  return jnp.sum(centroids * centroids, axis=1)


def _margin(x_sq: jax.Array, c_sq: jax.Array, dim: int) -> jax.Array:
  """f32 [B] bound on the float32 rounding error of a squared distance by the expansion."""
  return 2.0 * dim * _EPS32 * (x_sq + jnp.max(c_sq))


def _two_nearest(xb, centroids, c_sq):
  """Nearest centroid int32 [B] (lowest index on ties), an upper bound f32 [B] on its distance
  and a lower bound f32 [B] on the distance to every other centroid (inf when K = 1)."""
  k, dim = centroids.shape
  x_sq = jnp.sum(xb * xb, axis=1)
  dots = jnp.matmul(xb, centroids.T, precision=_HIGHEST).T                   # [K, B]
  sq = jnp.maximum(x_sq[None] - 2.0 * dots + c_sq[:, None], 0.0)
  best = jnp.min(sq, axis=0)
  ids = jnp.arange(k, dtype=jnp.int32)[:, None]
  index = jnp.min(jnp.where(sq == best, ids, k), axis=0)
  second = jnp.min(jnp.where(ids == index, jnp.inf, sq), axis=0)
  margin = _margin(x_sq, c_sq, dim)
  return (jnp.minimum(index, k - 1), jnp.sqrt(best + margin),
          jnp.sqrt(jnp.maximum(second - margin, 0.0)))


def _half_gaps(centroids, c_sq):
  """f32 [K] lower bound on half the distance from each centroid to its nearest other one."""
  k, dim = centroids.shape
  sq = c_sq[:, None] - 2.0 * jnp.matmul(centroids, centroids.T, precision=_HIGHEST) + c_sq
  sq = jnp.where(jnp.eye(k, dtype=bool), jnp.inf, sq - 8.0 * dim * _EPS32 * jnp.max(c_sq))
  return 0.5 * jnp.sqrt(jnp.maximum(jnp.min(sq, axis=1), 0.0))


def _moves(xb, wb, old, new, changed, k):
  """Changes of the sums f32 [K, D], weighted counts f32 [K] and member counts int32 [K], and
  the churn (rows in plus rows out int32 [K], and their weight f32 [K]), when the rows
  xb [B, D] (weights wb [B]) where `changed` move from centroid `old` to `new`."""
  into, out_of = jnp.where(changed, new, k), jnp.where(changed, old, k)
  wb = jnp.where(changed, wb, 0.0)
  ones = changed.astype(jnp.int32)
  sums_in, sums_out = (jax.ops.segment_sum(xb * wb[:, None], ids, k) for ids in (into, out_of))
  weight_in, weight_out = (jax.ops.segment_sum(wb, ids, k) for ids in (into, out_of))
  rows_in, rows_out = (jax.ops.segment_sum(ones, ids, k) for ids in (into, out_of))
  return ((sums_in - sums_out, weight_in - weight_out, rows_in - rows_out),
          (rows_in + rows_out, weight_in + weight_out))


def _block_totals(xb, wb, index, k):
  """Sums f32 [K, D], weighted counts f32 [K] and member counts int32 [K] of one block of rows
  xb [B, D] (weights wb [B]) assigned as `index` [B]."""
  return (jax.ops.segment_sum(xb * wb[:, None], index, k), jax.ops.segment_sum(wb, index, k),
          jax.ops.segment_sum((wb > 0).astype(jnp.int32), index, k))


def _totals(x, weights, assign, k, chunk_size, axis_name):
  """Local (sums, counts, members) of the rows x [R, D] assigned as `assign` [R], summed block
  by block (a block's scatter stays in cache: 4.6x faster on CPU than one scatter of all
  rows)."""
  def block(acc, xs):
    return jax.tree.map(jnp.add, acc, _block_totals(*xs, k)), None

  zeros = mark_varying(_zero_totals(k, x.shape[1], x.dtype), axis_name)
  return jax.lax.scan(block, zeros, row_blocks(chunk_size, x, weights, assign))[0]


def _zero_churn(k, dtype):
  return jnp.zeros((k,), jnp.int32), jnp.zeros((k,), dtype)


def _zero_totals(k, dim, dtype):
  return jnp.zeros((k, dim), dtype), jnp.zeros((k,), dtype), jnp.zeros((k,), jnp.int32)


def _first_pass(x, weights, centroids, metric, chunk_size, axis_name):
  """Every (local) row against every centroid, block by block: (assignments int32 [R], upper
  and lower bounds f32 [R]; u = -inf for weight-0 rows, which are never candidates) and the
  local (sums, counts, members)."""
  k, dim = centroids.shape
  c_sq = _sq_norms(centroids, metric)

  def block(acc, xs):
    xb, wb = xs
    index, upper, lower = _two_nearest(xb, centroids, c_sq)
    acc = jax.tree.map(jnp.add, acc, _block_totals(xb, wb, index, k))
    return acc, (index, jnp.where(wb > 0, upper, -jnp.inf), lower)

  zeros = mark_varying(_zero_totals(k, dim, x.dtype), axis_name)
  totals, bounds = jax.lax.scan(block, zeros, row_blocks(chunk_size, x, weights))
  return tuple(b.reshape(-1) for b in bounds), totals


def _compact(need, chunk_size):
  """Candidate rows in order, int32 [R + chunk_size] (R past the last one), their count, and
  each row's rank among them int32 [R] (meaningful where `need`). Ranks come from per-block
  prefix sums plus block offsets (on CPU, 1M rows: 3.4 ms against 13 ms for
  `jnp.nonzero`)."""
  num_rows = need.shape[0]
  inclusive = jax.lax.associative_scan(jnp.add, need.astype(jnp.int32).reshape(-1, chunk_size),
                                       axis=1)
  per_block = inclusive[:, -1]
  rank = (inclusive + (jnp.cumsum(per_block) - per_block)[:, None]).reshape(-1) - 1
  slots = jnp.where(need, rank, num_rows + chunk_size)       # other rows: dropped
  order = jnp.full((num_rows + chunk_size,), num_rows, jnp.int32)
  order = order.at[slots].set(jnp.arange(num_rows, dtype=jnp.int32), mode="drop")
  return order, jnp.sum(per_block), rank


def _candidate_pass(x, weights, centroids, metric, bounds, need, chunk_size, axis_name):
  """Re-assigns the rows where `need` (bool [R]) against `centroids`, a block of compacted rows
  at a time: the new (assign, upper, lower), the local changes of (sums, counts, members) and
  the local churn (rows that entered or left each centroid, int32 [K], and their weight).
  Results are written to compact buffers inside the loop and read back by rank after it
  (scatters into the [R] arrays inside the loop measured 5x slower on CPU)."""
  k, dim = centroids.shape
  num_rows = x.shape[0]
  c_sq = _sq_norms(centroids, metric)
  order, count, rank = _compact(need, chunk_size)
  assign = bounds[0]

  def body(carry):
    i, buffers, changes = carry
    start = i * chunk_size
    rows = jax.lax.dynamic_slice(order, (start,), (chunk_size,))
    valid = rows < num_rows
    xb = jnp.take(x, rows, axis=0, mode="clip")
    wb = jnp.take(weights, rows, mode="clip")
    old = jnp.take(assign, rows, mode="clip")
    index, up, low = _two_nearest(xb, centroids, c_sq)
    moved = _moves(xb, wb, old, index, valid & (wb > 0) & (index != old), k)
    buffers = tuple(jax.lax.dynamic_update_slice(b, v, (start,))
                    for b, v in zip(buffers, (index, up, low)))
    return i + 1, buffers, jax.tree.map(jnp.add, changes, moved)

  buffers = tuple(jnp.zeros(order.shape, b.dtype) for b in bounds)
  zeros = mark_varying((_zero_totals(k, dim, x.dtype), _zero_churn(k, x.dtype)), axis_name)
  blocks = -(-count // chunk_size)
  _, buffers, (changes, churn) = jax.lax.while_loop(
      lambda c: c[0] < blocks, body,
      (jnp.zeros((), jnp.int32), mark_varying(buffers, axis_name), zeros))
  bounds = tuple(jnp.where(need, jnp.take(buf, rank, mode="clip"), old)
                 for buf, old in zip(buffers, bounds))
  return bounds, changes, churn


def fit(x, weights, centroids, *, num_iters, metric, chunk_size, axis_name):
  """f32 [K, D] centroids after `num_iters` Lloyd iterations on the (local) rows x f32 [R, D]
  (R a multiple of chunk_size) with weights f32 [R], from centroids f32 [K, D]; the rows are
  sharded over `axis_name` when called inside shard_map (None: one device). The contract of
  `kmeans._fit`."""
  if num_iters == 0:
    return centroids
  k = centroids.shape[0]
  bounds, totals = _first_pass(x, weights, centroids, metric, chunk_size, axis_name)
  totals = sum_over(totals, axis_name)
  churned = _zero_churn(k, x.dtype)

  def step(_, carry):
    old, current, (assign, upper, lower), totals, churned = carry
    # Each centroid's move, rounded up (by a few ulps of the centroids' scale).
    scale = jnp.max(jnp.abs(current)) + jnp.max(jnp.abs(old))
    shift = (jnp.linalg.norm(current - old, axis=1) * (1 + _SLACK)
             + _SLACK * jnp.sqrt(float(current.shape[1])) * scale)               # [K]
    if k > 1:     # Each row's other centroids moved at most the largest shift but its own.
      top, top_ids = jax.lax.top_k(shift, 2)
      others = jnp.where(assign == top_ids[0], top[1], top[0])
    else:
      others = jnp.zeros_like(lower)
    # Both sums rounded outwards (upper is >= 0, or -inf on padding; lower may be +inf).
    upper = (upper + jnp.take(shift, assign)) * (1 + _SLACK)
    lower = lower - others
    lower = jnp.where(jnp.isinf(lower), lower, lower - _SLACK * (jnp.abs(lower) + others))
    gaps = _half_gaps(current, _sq_norms(current, metric))
    need = upper > jnp.maximum(lower, jnp.take(gaps, assign))
    bounds, changes, churn = _candidate_pass(x, weights, current, metric,
                                             (assign, upper, lower), need, chunk_size, axis_name)
    changes = sum_over(changes, axis_name)
    churned = jax.tree.map(jnp.add, churned, sum_over(churn, axis_name))
    updated = jax.tree.map(jnp.add, totals, changes)
    # Sums summed afresh once a centroid's churn outnumbers or outweighs its members (module
    # docstring).
    fresh = jnp.any((churned[0] > jnp.maximum(updated[2], 1)) | (churned[1] > updated[1]))
    local = jax.lax.cond(fresh, lambda: _totals(x, weights, bounds[0], k, chunk_size, axis_name),
                         lambda: mark_varying(_zero_totals(k, x.shape[1], x.dtype), axis_name))
    summed = sum_over(local, axis_name)
    totals = jax.tree.map(lambda a, b: jnp.where(fresh, a, b), summed, updated)
    churned = jax.tree.map(lambda c: jnp.where(fresh, 0, c), churned)
    return current, _new_centroids(current, totals, metric), bounds, totals, churned

  new = _new_centroids(centroids, totals, metric)
  return jax.lax.fori_loop(1, num_iters, step, (centroids, new, bounds, totals, churned))[1]
