"""K-means on the accelerator: weighted k-means++ init and a fixed number of Lloyd iterations.

  result = kmeans(features, k=20, num_iters=30, metric="cosine", seed=0)
  result.centroids   # f32 [K, D]
  result.assignments # int32 [N], -1 for zero-weight (padding) rows
  result.inertia     # f32 scalar: sum_i w_i * d(x_i, c_{a_i})

Distances: "euclidean" uses d = ||x - c||^2; "cosine" (spherical k-means) normalises rows to unit
length and uses d = 1 - <x, c> with unit-length centroids.

One Lloyd iteration is one pass over the rows in blocks of `chunk_size` (`lax.scan`): each block
is read once and used for both steps while it is in cache, so no [N, K] array is ever built.
- Assignment: scores ||c||^2 - 2 <x, c> (cosine: -<x, c>) by one matmul per block, laid out
  [K, B] so that the arg-min over K is an element-wise min across K rows. The row term ||x||^2
  does not change the arg-min, so no iteration computes it; the final pass takes the inertia
  from ||x - c_a||^2 of the assigned centroid (exact, no cancellation).
- Centroid sums: `sum_method="onehot"` multiplies the weighted one-hot [K, B] by the block (a
  matmul: 2*B*K*D flops, no scatter, so no atomics on GPU); "segment_sum" scatters the rows
  (B*D adds). "auto" picks the one-hot matmul on GPU/TPU for K <= 256 (there a scatter onto a few
  rows serialises on atomics and the matmul costs at most as much as the distance matmul) and
  `segment_sum` otherwise; on CPU the scatter measured cheaper (by ~5% at K = 20, 1.6x at
  K = 300, D = 128).
Hamerly's bounds (`algorithm="hamerly"`, `jaxseg.ops.kmeans_bounds`; "auto" takes them on CPU
for large inputs) give the same iterations while skipping every row whose nearest centroid
provably did not change: after the first few iterations an iteration reads three numbers a row
and the few candidate rows instead of every row (1,000,000 x 128, K = 20, 80 iterations on
2 CPU devices: 2.11 s against 5.50 s; tools/bench_suites/kmeans.py).
Both matmuls run at `precision=HIGHEST` (float32; no TF32 or bf16 passes on accelerators).
Euclidean rows are centred once on their weighted mean (as scikit-learn does), which keeps the
float32 expansion accurate away from the origin; the centroids are moved back.

Padding: weight-0 rows are dropped before clustering (`compact=True`, one host sync to count
them), so a caller may pass mostly-empty padded arrays at no cost; assignments come back at the
input positions. Weight-0 rows never move a centroid, are never sampled by k-means++ and get
assignment -1.

Subsampling (off by default, faiss's rule): with `max_points_per_centroid=m`, if more than K*m
rows have a positive weight, k-means++ and the Lloyd iterations run on a seeded uniform random
subset of K*m of them; one final assignment pass then covers every row, so assignments and
inertia are those of all rows.

Memory: O(chunk_size * K) per device for the scores and the one-hot; k-means++ holds
O(N * n_local_trials).

Data parallel: pass `mesh` (a `jax.sharding.Mesh`) and `axis_name`; rows are sharded over that
axis and the per-device centroid sums, counts and inertia are reduced with `psum` inside
`jax.shard_map`. The result equals the single-device run up to float summation order.
Multi-core CPU: one XLA CPU device runs this loop of blocks on about one core (its intra-op
threads pay off only on the matmul of large blocks, hence 4096-row blocks for K >= 64; running
independent block loops concurrently inside one program measured slower still), whereas each
CPU device runs its own program on its own thread. So start the process with one CPU device per
core (`XLA_FLAGS=--xla_force_host_platform_device_count=<cores>` or `jax_num_cpu_devices`) and
pass `mesh=jax.make_mesh((jax.device_count(),), ("data",))`: on 2 cores an iteration took 1.5x
(K = 20) and 1.3x (K = 300) less time than on one device (tools/bench_suites/kmeans.py
measures both).

Empty clusters keep their previous centroid (no re-seeding), so K centroids are always defined.
Results are deterministic for a given seed (the initialisation runs unsharded).
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
from jaxseg.ops import kmeans_bounds
from jaxseg.ops.lloyd import mark_varying, row_blocks, sum_over, update_centroids

Metric = Literal["euclidean", "cosine"]
SumMethod = Literal["auto", "onehot", "segment_sum"]
Algorithm = Literal["auto", "lloyd", "hamerly"]
_ALGORITHMS = ("auto", "lloyd", "hamerly")
_METRICS = ("euclidean", "cosine")
_SUM_METHODS = ("auto", "onehot", "segment_sum")
_HIGHEST = jax.lax.Precision.HIGHEST
# "auto" centroid sums on GPU/TPU: one-hot matmul up to this K, segment_sum above.
ONEHOT_MAX_K = 256
# Default rows per block. CPU: small blocks stay in the L2 cache while both steps read them, and
# each block runs on one core; but one CPU device spreads only a large matmul over its cores, so
# for K >= 64 without a multi-device mesh, blocks are large (measured on a 2-core AVX-512 host,
# D = 128: K = 20 fastest at 256 rows; K = 300 at 4096 rows on one device, 256 rows per device
# on a mesh). Accelerators take large blocks.
_CPU_CHUNK_ROWS = 256
# "auto" takes Hamerly's bounds (`kmeans_bounds`) on CPU from this many fit rows (after
# padding): its program compiles ~0.4 s longer, which its faster iterations repay above ~50k
# rows (a one-off measurement on 2026-12-04, first call including compilation, spherical,
# 128 dims, K = 20, 80 iterations: 6,000 rows 1.37 s against Lloyd's 0.90 s; 100,000 rows
# 1.38 s against 1.74 s).
# On GPU/TPU the dense Lloyd pass is cheap and its candidate loop would run serially, so "auto"
# stays with Lloyd there (not measured: no accelerator was lent).
HAMERLY_MIN_ROWS = 65_536
_CPU_WIDE_CHUNK_ROWS = 4096
_CPU_WIDE_K = 64
_ACCELERATOR_CHUNK_ELEMENTS = 1 << 24   # chunk * K scores per block (64 MiB in f32)


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
  dots = jnp.matmul(x, centroids.T, precision=_HIGHEST)
  if metric == "cosine":
    return jnp.maximum(1.0 - dots, 0.0)
  sq = jnp.sum(x * x, axis=1)[:, None] - 2.0 * dots + jnp.sum(centroids * centroids, axis=1)
  return jnp.maximum(sq, 0.0)


def _centroid_terms(centroids: jax.Array, metric: str) -> jax.Array:
  """f32 [K] per-centroid score offset: ||c||^2 for euclidean, 0 for cosine."""
  if metric == "cosine":
    return jnp.zeros(centroids.shape[:1], centroids.dtype)
  return jnp.sum(centroids * centroids, axis=1)


def _assign(xb: jax.Array, centroids: jax.Array, c_terms: jax.Array, metric: str
            ) -> tuple[jax.Array, jax.Array]:
  """Nearest centroid of each row, without the row term.

  Args:
    xb: f32 [B, D] prepared rows.
    centroids: f32 [K, D].
    c_terms: f32 [K] from `_centroid_terms`.

  Returns:
    index int32 [B] (lowest index on ties; K for a row whose scores are all NaN) and the best
    score f32 [B]: min_k ||c_k||^2 - 2 <x, c_k> (euclidean) or min_k -<x, c_k> (cosine).
  """
  k = centroids.shape[0]
  dots = jnp.matmul(xb, centroids.T, precision=_HIGHEST).T                    # [K, B]
  scores = -dots if metric == "cosine" else c_terms[:, None] - 2.0 * dots
  best = jnp.min(scores, axis=0)
  # "First index equal to the minimum": two element-wise reductions across the K rows, much
  # faster on CPU than a variadic arg-min reduction.
  index = jnp.min(jnp.where(scores == best, jnp.arange(k, dtype=jnp.int32)[:, None], k), axis=0)
  return index, best


def _distances(xb: jax.Array, centroids: jax.Array, index: jax.Array, best: jax.Array,
               metric: str) -> jax.Array:
  """f32 [B] distance of rows xb [B, D] to their centroid index [B] (`_assign`'s outputs).

  Cosine: 1 + best = 1 - <x, c>. Euclidean: ||x - c||^2 itself rather than best + ||x||^2,
  which loses the distance to cancellation when the rows lie far from the origin.
  """
  if metric == "cosine":
    return jnp.maximum(1.0 + best, 0.0)
  diff = xb - jnp.take(centroids, index, axis=0, mode="clip")
  return jnp.sum(diff * diff, axis=1)


def nearest_centroid(x: jax.Array, centroids: jax.Array, metric: str
                     ) -> tuple[jax.Array, jax.Array]:
  """Index int32 [B] and distance f32 [B] of the nearest centroid (lowest index on ties).

  x [B, D] and centroids [K, D] are already prepared (unit length for cosine).
  """
  index, best = _assign(x, centroids, _centroid_terms(centroids, metric), metric)
  return index, _distances(x, centroids, index, best, metric)


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


def _accumulate(xb: jax.Array, wb: jax.Array, index: jax.Array, k: int, sum_method: str
                ) -> tuple[jax.Array, jax.Array]:
  """Weighted centroid sums f32 [K, D] and counts f32 [K] of one block.

  xb f32 [B, D], wb f32 [B], index int32 [B] in [0, K] (K: the row counts nowhere).
  """
  if sum_method == "onehot":
    onehot = jnp.where(jnp.arange(k, dtype=jnp.int32)[:, None] == index, wb, 0.0)   # [K, B]
    return jnp.matmul(onehot, xb, precision=_HIGHEST), jnp.sum(onehot, axis=1)
  return (jax.ops.segment_sum(xb * wb[:, None], index, k),
          jax.ops.segment_sum(wb, index, k))


def _lloyd_sums(x, weights, centroids, *, metric, chunk_size, sum_method, axis_name):
  """One pass over the (local) rows: assign each block and accumulate its centroid sums.

  Args:
    x: f32 [R, D] rows, R a multiple of chunk_size.
    weights: f32 [R].
    centroids: f32 [K, D].
    axis_name: mesh axis when called inside shard_map (the rows vary over it), else None.

  Returns:
    sums f32 [K, D] and weighted counts f32 [K], summed over the mesh axis.
  """
  k, dim = centroids.shape
  c_terms = _centroid_terms(centroids, metric)

  def block(carry, xs):
    xb, wb = xs
    index, _ = _assign(xb, centroids, c_terms, metric)
    sums, counts = _accumulate(xb, wb, index, k, sum_method)
    return (carry[0] + sums, carry[1] + counts), None

  init = mark_varying((jnp.zeros((k, dim), x.dtype), jnp.zeros((k,), x.dtype)), axis_name)
  (sums, counts), _ = jax.lax.scan(block, init, row_blocks(chunk_size, x, weights))
  return sum_over(sums, axis_name), sum_over(counts, axis_name)


def _fit(x, weights, centroids, *, num_iters, metric, chunk_size, sum_method, axis_name):
  """f32 [K, D] centroids after `num_iters` Lloyd iterations on the (local) rows."""
  sums = functools.partial(_lloyd_sums, metric=metric, chunk_size=chunk_size,
                           sum_method=sum_method, axis_name=axis_name)

  def step(_, c):
    return update_centroids(c, *sums(x, weights, c), metric)

  return jax.lax.fori_loop(0, num_iters, step, centroids)


def _assign_all(x, weights, centroids, *, metric, chunk_size, axis_name):
  """Final pass: labels int32 [R] (-1 where the weight is 0) and the inertia f32 []."""
  c_terms = _centroid_terms(centroids, metric)

  def block(_, xs):
    xb, wb = xs
    index, best = _assign(xb, centroids, c_terms, metric)
    inertia = jnp.sum(wb * _distances(xb, centroids, index, best, metric))
    return None, (jnp.where(wb > 0, index, -1), inertia)

  # Per-block inertias summed at the end (a tree reduction): a running float32 sum over
  # thousands of blocks drifts by ~1e-6.
  _, (labels, inertias) = jax.lax.scan(block, None, row_blocks(chunk_size, x, weights))
  return labels.reshape(-1), sum_over(jnp.sum(inertias), axis_name)


def _on_mesh(fn, mesh, axis_name, in_specs, out_specs):
  """fn itself, or fn under shard_map with the rows sharded over `axis_name`."""
  if mesh is None:
    return functools.partial(fn, axis_name=None)
  return jax.shard_map(functools.partial(fn, axis_name=axis_name), mesh=mesh,
                       in_specs=in_specs, out_specs=out_specs)


@functools.partial(jax.jit, static_argnames=("num_iters", "metric", "chunk_size", "sum_method",
                                             "algorithm", "mesh", "axis_name"))
def _fit_jit(x, weights, centroids, *, num_iters, metric, chunk_size, sum_method, algorithm,
             mesh, axis_name):
  if algorithm == "hamerly":
    fit = functools.partial(kmeans_bounds.fit, num_iters=num_iters, metric=metric,
                            chunk_size=chunk_size)
  else:
    fit = functools.partial(_fit, num_iters=num_iters, metric=metric, chunk_size=chunk_size,
                            sum_method=sum_method)
  return _on_mesh(fit, mesh, axis_name, (P(axis_name), P(axis_name), P()), P())(
      x, weights, centroids)


@functools.partial(jax.jit, static_argnames=("metric", "chunk_size", "mesh", "axis_name"))
def _assign_all_jit(x, weights, centroids, *, metric, chunk_size, mesh, axis_name):
  assign = functools.partial(_assign_all, metric=metric, chunk_size=chunk_size)
  return _on_mesh(assign, mesh, axis_name, (P(axis_name), P(axis_name), P()),
                  (P(axis_name), P()))(x, weights, centroids)


def lloyd_step(x: jax.Array, weights: jax.Array, centroids: jax.Array, *,
               metric: Metric = "euclidean", chunk_size: int | None = None,
               sum_method: SumMethod = "auto") -> jax.Array:
  """One Lloyd iteration on one device (the unit the benchmark's cost analysis measures).

  Args:
    x: f32 [N, D] prepared rows.
    weights: f32 [N].
    centroids: f32 [K, D].

  Returns:
    f32 [K, D] updated centroids.
  """
  k = centroids.shape[0]
  chunk = _chunk_rows(chunk_size, k, x.shape[0], 1, None)
  x, weights = _pad_rows(x, weights, chunk)
  sums, counts = _lloyd_sums(x, weights, centroids, metric=metric, chunk_size=chunk,
                             sum_method=resolve_sum_method(sum_method, k, None),
                             axis_name=None)
  return update_centroids(centroids, sums, counts, metric)


def _platform(mesh: Mesh | None) -> str:
  return (mesh.devices.flat[0] if mesh is not None else jax.devices()[0]).platform


def resolve_sum_method(sum_method: SumMethod, k: int, mesh: Mesh | None) -> str:
  """"onehot" or "segment_sum" for `sum_method` ("auto": one-hot on GPU/TPU for K <= 256)."""
  if sum_method not in _SUM_METHODS:
    raise InputError(None, f"unknown k-means sum_method {sum_method!r}",
                     f"use one of {_SUM_METHODS}")
  if sum_method != "auto":
    return sum_method
  return "onehot" if _platform(mesh) != "cpu" and k <= ONEHOT_MAX_K else "segment_sum"


def resolve_algorithm(algorithm: Algorithm, num_rows: int, mesh: Mesh | None) -> str:
  """"lloyd" or "hamerly" for `algorithm` on `num_rows` fit rows ("auto": hamerly on CPU from
  HAMERLY_MIN_ROWS rows, lloyd otherwise)."""
  if algorithm not in _ALGORITHMS:
    raise InputError(None, f"unknown k-means algorithm {algorithm!r}",
                     f"use one of {_ALGORITHMS}")
  if algorithm != "auto":
    return algorithm
  cpu = _platform(mesh) == "cpu"
  return "hamerly" if cpu and num_rows >= HAMERLY_MIN_ROWS else "lloyd"


def _default_chunk_rows(k: int, mesh: Mesh | None) -> int:
  if _platform(mesh) != "cpu":
    return max(1024, _ACCELERATOR_CHUNK_ELEMENTS // k)
  one_device = mesh is None or mesh.devices.size == 1
  return _CPU_WIDE_CHUNK_ROWS if one_device and k >= _CPU_WIDE_K else _CPU_CHUNK_ROWS


def _chunk_rows(chunk_size: int | None, k: int, num_rows: int, shards: int,
                mesh: Mesh | None) -> int:
  """Rows per block: at most `chunk_size` (None: the platform default), sized so that the rows
  per shard split into equal blocks with little padding (a multiple of 8 rows, 128 for large
  blocks)."""
  if chunk_size is None:
    chunk_size = _default_chunk_rows(k, mesh)
  per_shard = -(-num_rows // shards)
  chunk = -(-per_shard // -(-per_shard // max(1, int(chunk_size))))
  align = 128 if chunk >= 1024 else 8
  return -(-chunk // align) * align


def _check_metric(metric: str) -> None:
  if metric not in _METRICS:
    raise InputError(None, f"unknown k-means metric {metric!r}", f"use one of {_METRICS}")


def _valid_rows(x: jax.Array, weights: jax.Array | None, compact: bool
                ) -> tuple[jax.Array, jax.Array, jax.Array | None]:
  """Rows to cluster: x [M, D], weights f32 [M] and their int32 [M] input positions (None when
  all N input rows are kept). With `compact`, weight-0 rows are dropped (one host sync for M);
  otherwise they are zeroed (padding rows may hold NaN)."""
  if weights is None:
    return x, jnp.ones(x.shape[0], jnp.float32), None
  weights = jnp.asarray(weights, jnp.float32)
  if weights.shape != x.shape[:1]:
    raise InputError(None, f"weights have shape {weights.shape}, expected ({x.shape[0]},)",
                     "give one non-negative weight per row")
  valid = weights > 0
  if not compact:
    return jnp.where(valid[:, None], x, 0.0), weights, None
  num_valid = int(jnp.sum(valid))
  if num_valid == 0:
    raise InputError(None, "every k-means weight is 0", "give some rows a positive weight")
  if num_valid == weights.shape[0]:
    return x, weights, None
  index = jnp.nonzero(valid, size=num_valid)[0].astype(jnp.int32)
  return x[index], weights[index], index


def subsample_indices(key: jax.Array, num_rows: int, k: int,
                      max_points_per_centroid: int | None) -> jax.Array | None:
  """faiss's subsampling rule: with more than K * max_points_per_centroid rows, the sorted
  positions int32 [K * max_points_per_centroid] of a uniform random subset (no repeats);
  otherwise (or when max_points_per_centroid is None) None, meaning every row."""
  if max_points_per_centroid is None or num_rows <= k * int(max_points_per_centroid):
    return None
  # The rows holding the largest of N random 32-bit keys: a uniform subset, without the full
  # permutation (a sort of N keys) that `jax.random.choice(replace=False)` costs.
  keys = jax.lax.bitcast_convert_type(jax.random.bits(key, (num_rows,), jnp.uint32), jnp.int32)
  _, pick = jax.lax.top_k(keys, k * int(max_points_per_centroid))
  return jnp.sort(pick).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames="multiple")
def _pad_rows(x: jax.Array, weights: jax.Array, multiple: int, shift: jax.Array | None = None
              ) -> tuple[jax.Array, jax.Array]:
  """Rows x [M, D] minus `shift` [D] (if given), then zero rows of weight 0 up to a multiple of
  `multiple` rows (one fused pass)."""
  extra = -x.shape[0] % multiple
  x = x if shift is None else x - shift
  return jnp.pad(x, ((0, extra), (0, 0))), jnp.pad(weights, (0, extra))


@jax.jit
def _weighted_mean(x: jax.Array, weights: jax.Array) -> jax.Array:
  """f32 [D] weighted mean of the rows x [M, D].

  Euclidean k-means is translation invariant, and rows centred on it keep the float32
  expansion ||c||^2 - 2 <x, c> accurate (as scikit-learn does); centroids are moved back.
  """
  return jnp.sum(weights[:, None] * x, axis=0) / jnp.sum(weights)


def _device_rows(x: jax.Array, weights: jax.Array, shift: jax.Array | None, *, k: int,
                 chunk_size: int | None, mesh: Mesh | None, axis_name: str
                 ) -> tuple[jax.Array, jax.Array, int]:
  """Rows x [M, D] (minus `shift`) and weights [M] padded for equal blocks on every shard and
  sharded by rows over the mesh axis: (x [R, D], weights [R], rows per block)."""
  shards = 1 if mesh is None else mesh.shape[axis_name]
  chunk = _chunk_rows(chunk_size, k, x.shape[0], shards, mesh)
  x, weights = _pad_rows(x, weights, shards * chunk, shift)
  if mesh is not None:
    rows = NamedSharding(mesh, P(axis_name))
    x, weights = jax.device_put(x, rows), jax.device_put(weights, rows)
  return x, weights, chunk


def _initial_centroids(init: jax.Array | None, key: jax.Array, x: jax.Array, weights: jax.Array,
                       *, k: int, metric: str, n_local_trials: int | None) -> jax.Array:
  """f32 [K, D] initial centroids: the given `init` (prepared), or k-means++ on the fit rows
  x [M, D] with weights [M]."""
  if init is None:
    return kmeans_plus_plus(key, x, k, weights=weights, metric=metric,
                            n_local_trials=n_local_trials)
  init = _prepare(init, metric)
  if init.shape != (k, x.shape[1]):
    raise InputError(None, f"init has shape {init.shape}, expected {(k, x.shape[1])}",
                     "pass K initial centroids with the feature dimension of x")
  return init


def kmeans(x: jax.Array, k: int, *, num_iters: int = 30, metric: Metric = "euclidean",
           weights: jax.Array | None = None, seed: int | jax.Array = 0,
           init: jax.Array | None = None, chunk_size: int | None = None,
           mesh: Mesh | None = None, axis_name: str = "data",
           n_local_trials: int | None = None, sum_method: SumMethod = "auto",
           compact: bool = True, max_points_per_centroid: int | None = None,
           algorithm: Algorithm = "auto") -> KMeansResult:
  """K-means with k-means++ seeding and exactly `num_iters` Lloyd iterations.

  Args:
    x: float [N, D] rows (numpy or jax).
    k: number of clusters K (static).
    num_iters: Lloyd iterations (static); the returned assignments/inertia are those of the
      returned centroids (one extra assignment pass, as scikit-learn does).
    metric: "euclidean" (squared distance) or "cosine" (spherical k-means).
    weights: float [N] non-negative sample weights; 0 marks a padding row. None = ones.
    seed: int seed or PRNG key for k-means++ and the subsample (k-means++ is skipped when
      `init` is given).
    init: optional f32 [K, D] initial centroids (normalised for cosine).
    chunk_size: rows per block (memory O(chunk_size * K) per device); None = 256 on CPU (the
      block stays in L2 while both steps read it; 4096 for K >= 64 on one device, whose
      matmul then spreads over the cores), 2^24 / K (at least 1024) on GPU/TPU.
    mesh: optional mesh; rows are sharded over `axis_name` and reduced with psum.
    axis_name: mesh axis that shards the rows.
    n_local_trials: k-means++ candidates per step (None = 2 + log k).
    sum_method: Lloyd's centroid sums by "onehot" matmul, "segment_sum" scatter, or "auto"
      (module docstring).
    compact: drop weight-0 rows before clustering (one host sync; pass False under `jit`).
    max_points_per_centroid: None (default) fits on every row; m fits on a seeded uniform
      subset of K*m positive-weight rows when there are more (`subsample_indices` of the
      compacted rows, key `fold_in(key, 1)`), then assigns every row.
    algorithm: "lloyd" (every row against every centroid each iteration), "hamerly" (the same
      iterations, skipping the rows whose bounds prove their centroid unchanged:
      `jaxseg.ops.kmeans_bounds`), or "auto" (hamerly on CPU from HAMERLY_MIN_ROWS rows to
      fit, counted after padding to whole blocks).

  Returns:
    KMeansResult(centroids f32 [K, D], assignments int32 [N], inertia f32 []).
  """
  _check_metric(metric)
  x = _prepare(x, metric)
  if x.ndim != 2 or x.shape[0] == 0:
    raise InputError(None, f"k-means needs a non-empty [N, D] array, got shape {x.shape}",
                     "pass one row per point/super-voxel feature")
  num_rows = x.shape[0]
  x, weights, positions = _valid_rows(x, weights, compact)
  sum_method = resolve_sum_method(sum_method, k, mesh)
  key = jax.random.key(seed) if isinstance(seed, (int, np.integer)) else seed
  pick = subsample_indices(jax.random.fold_in(key, 1), x.shape[0], k, max_points_per_centroid)
  fit_x, fit_w = (x, weights) if pick is None else (x[pick], weights[pick])
  init = _initial_centroids(init, key, fit_x, fit_w, k=k, metric=metric,
                            n_local_trials=n_local_trials)
  shift = _weighted_mean(x, weights) if metric == "euclidean" else None
  device_rows = functools.partial(_device_rows, shift=shift, k=k, chunk_size=chunk_size,
                                  mesh=mesh, axis_name=axis_name)
  all_x, all_w, chunk = device_rows(x, weights)
  fit_x, fit_w, fit_chunk = (all_x, all_w, chunk) if pick is None else device_rows(fit_x, fit_w)
  if shift is not None:
    init = init - shift
  if mesh is not None:
    init = jax.device_put(init, NamedSharding(mesh, P()))
  algorithm = resolve_algorithm(algorithm, fit_x.shape[0], mesh)
  centroids = _fit_jit(fit_x, fit_w, init, num_iters=num_iters, metric=metric,
                       chunk_size=fit_chunk, sum_method=sum_method, algorithm=algorithm,
                       mesh=mesh, axis_name=axis_name)
  labels, inertia = _assign_all_jit(all_x, all_w, centroids, metric=metric, chunk_size=chunk,
                                    mesh=mesh, axis_name=axis_name)
  if mesh is not None:  # Gather the row-sharded labels before dropping the padding rows.
    labels = jax.device_put(labels, NamedSharding(mesh, P()))
  labels = labels[:x.shape[0]]
  if positions is not None:
    labels = jnp.full((num_rows,), -1, jnp.int32).at[positions].set(labels)
  if shift is not None:
    centroids = centroids + shift
  return KMeansResult(centroids, labels, inertia)
