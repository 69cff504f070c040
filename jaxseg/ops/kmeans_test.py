"""Tests for accelerator K-means against scikit-learn and float64 numpy Lloyd loops."""

import jax
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from jaxseg.errors import InputError
from jaxseg.ops import kmeans as km

_K = 6
_ITERS = 8
_METHODS = ("onehot", "segment_sum")
# Lloyd with either centroid sum, and Hamerly's bounds (the same iterations, fewer distances).
_VARIANTS = [dict(algorithm="lloyd", sum_method="onehot"),
             dict(algorithm="lloyd", sum_method="segment_sum"), dict(algorithm="hamerly")]
_VARIANT_IDS = ["lloyd-onehot", "lloyd-segment_sum", "hamerly"]


def _blobs(n=1500, dim=5, seed=0, std=1.5):
  x, _ = make_blobs(n_samples=n, n_features=dim, centers=_K, cluster_std=std, random_state=seed)
  return x.astype(np.float32)


def _sklearn(x, init, iters, weights=None):
  model = KMeans(n_clusters=len(init), init=np.asarray(init, np.float64), n_init=1,
                 max_iter=iters, tol=0.0, algorithm="lloyd")
  model.fit(x.astype(np.float64), sample_weight=weights)
  return model


def _np_lloyd(x, init, iters, weights=None):
  """Weighted Lloyd in float64: (centroids [K, D], labels [N], inertia) after `iters` updates,
  the labels and inertia being those of the returned centroids."""
  x = x.astype(np.float64)
  w = np.ones(len(x)) if weights is None else weights.astype(np.float64)
  c = np.asarray(init, np.float64).copy()
  for it in range(iters + 1):
    dist = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    labels = dist.argmin(1)
    if it == iters:
      break
    for j in range(len(c)):
      mass = w[labels == j].sum()
      if mass > 0:
        c[j] = (w[labels == j, None] * x[labels == j]).sum(0) / mass
  return c, labels, float((w * dist[np.arange(len(x)), labels]).sum())


def _random_rows_init(x, seed=1, k=_K):
  rng = np.random.default_rng(seed)
  return x[rng.choice(len(x), k, replace=False)]


@pytest.mark.parametrize("variant", _VARIANTS, ids=_VARIANT_IDS)
def test_lloyd_matches_sklearn_from_same_init(variant):
  x = _blobs()
  init = _random_rows_init(x)
  ours = km.kmeans(x, _K, num_iters=_ITERS, init=init, chunk_size=256, **variant)
  ref = _sklearn(x, init, _ITERS)
  np.testing.assert_array_equal(ours.assignments, ref.labels_)
  np.testing.assert_allclose(ours.centroids, ref.cluster_centers_, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(float(ours.inertia), ref.inertia_, rtol=1e-4)


@pytest.mark.parametrize("variant", _VARIANTS, ids=_VARIANT_IDS)
def test_weighted_matches_float64_numpy_lloyd(variant):
  x = _blobs(seed=2, std=2.5)
  weights = np.random.default_rng(3).uniform(0.2, 3.0, len(x)).astype(np.float32)
  init = _random_rows_init(x, seed=4)
  ours = km.kmeans(x, _K, num_iters=_ITERS, init=init, weights=weights, chunk_size=300,
                   **variant)
  c, labels, inertia = _np_lloyd(x, init, _ITERS, weights)
  np.testing.assert_array_equal(ours.assignments, labels)
  np.testing.assert_allclose(ours.centroids, c, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(ours.inertia), inertia, rtol=1e-5)
  ref = _sklearn(x, init, _ITERS, weights)
  np.testing.assert_allclose(float(ours.inertia), ref.inertia_, rtol=1e-5)


def test_onehot_and_segment_sum_paths_agree_at_larger_k():
  x, _ = make_blobs(n_samples=3000, n_features=16, centers=40, cluster_std=3.0, random_state=9)
  x = x.astype(np.float32)
  init = _random_rows_init(x, seed=10, k=40)
  runs = [km.kmeans(x, 40, num_iters=6, init=init, chunk_size=512, sum_method=m)
          for m in _METHODS]
  np.testing.assert_array_equal(runs[0].assignments, runs[1].assignments)
  np.testing.assert_allclose(runs[0].centroids, runs[1].centroids, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(runs[0].inertia), float(runs[1].inertia), rtol=1e-6)
  c, labels, inertia = _np_lloyd(x, init, 6)
  np.testing.assert_array_equal(runs[1].assignments, labels)
  np.testing.assert_allclose(float(runs[1].inertia), inertia, rtol=1e-5)


def _with_padding(x, weights, every=4, seed=0):
  """Interleaves weight-0 NaN rows so that 3 of every 4 rows are padding (as a caller's
  [scenes * slots] layout): x [4N, D], weights [4N] and the positions of the real rows."""
  n, dim = x.shape
  rows = np.full((n * every, dim), np.nan, np.float32)
  w = np.zeros(n * every, np.float32)
  real = np.sort(np.random.default_rng(seed).choice(n * every, n, replace=False))
  rows[real], w[real] = x, weights
  return rows, w, real


def test_compaction_equals_padded_call_and_real_rows_alone():
  x = _blobs(seed=11)
  weights = np.random.default_rng(12).uniform(0.5, 2.0, len(x)).astype(np.float32)
  rows, w, real = _with_padding(x, weights)
  init = _random_rows_init(x, seed=13)
  compact = km.kmeans(rows, _K, num_iters=_ITERS, init=init, weights=w)
  padded = km.kmeans(rows, _K, num_iters=_ITERS, init=init, weights=w, compact=False)
  np.testing.assert_array_equal(compact.assignments, padded.assignments)
  np.testing.assert_allclose(compact.centroids, padded.centroids, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(compact.inertia), float(padded.inertia), rtol=1e-5)
  assert np.all(np.asarray(compact.assignments)[np.setdiff1d(np.arange(len(rows)), real)] == -1)
  # With k-means++ seeding too: the padded call is the call on the real rows alone.
  seeded = km.kmeans(rows, _K, num_iters=_ITERS, weights=w, seed=5)
  alone = km.kmeans(x, _K, num_iters=_ITERS, weights=weights, seed=5)
  np.testing.assert_allclose(seeded.centroids, alone.centroids, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(seeded.assignments)[real], alone.assignments)


def test_subsample_follows_faiss_rule_then_assigns_every_row():
  key = jax.random.key(0)
  assert km.subsample_indices(key, 1000, 5, None) is None
  assert km.subsample_indices(key, 1000, 5, 200) is None          # 1000 <= 5 * 200
  pick = np.asarray(km.subsample_indices(key, 1000, 5, 100))
  assert pick.shape == (500,) and np.all(np.diff(pick) > 0) and pick[-1] < 1000
  np.testing.assert_array_equal(pick, km.subsample_indices(key, 1000, 5, 100))
  assert not np.array_equal(pick, km.subsample_indices(jax.random.key(1), 1000, 5, 100))

  x = _blobs(seed=14, std=3.0)
  weights = np.ones(len(x), np.float32)
  rows, w, real = _with_padding(x, weights)
  init = _random_rows_init(x, seed=15)
  mpc = 40                                                         # 1500 > 6 * 40 rows
  ours = km.kmeans(rows, _K, num_iters=_ITERS, init=init, weights=w, seed=7,
                   max_points_per_centroid=mpc)
  # The fit ran on the rule's subset of the (compacted) real rows ...
  fit = np.asarray(km.subsample_indices(jax.random.fold_in(jax.random.key(7), 1), len(x), _K,
                                        mpc))
  c, _, _ = _np_lloyd(x[fit], init, _ITERS)
  np.testing.assert_allclose(ours.centroids, c, rtol=1e-5, atol=1e-5)
  # ... then every row was assigned to those centroids.
  dist = ((x[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(np.asarray(ours.assignments)[real], dist.argmin(1))
  np.testing.assert_allclose(float(ours.inertia), dist.min(1).sum(), rtol=1e-5)
  # Few enough rows: the option changes nothing.
  full = km.kmeans(x, _K, num_iters=_ITERS, init=init)
  loose = km.kmeans(x, _K, num_iters=_ITERS, init=init, max_points_per_centroid=len(x))
  np.testing.assert_array_equal(full.centroids, loose.centroids)


def test_kmeans_plus_plus_objective_close_to_sklearn():
  x = _blobs(n=3000, seed=5, std=2.0)
  ours = [float(km.kmeans(x, _K, num_iters=20, seed=s).inertia) for s in range(3)]
  ref = [KMeans(_K, n_init=1, random_state=s, algorithm="lloyd").fit(x).inertia_
         for s in range(3)]
  assert min(ours) <= 1.03 * min(ref)
  assert np.median(ours) <= 1.05 * np.median(ref)
  # The seeding alone: weighted k-means++ centres are data rows with positive weight.
  weights = np.ones(len(x), np.float32)
  weights[::2] = 0.0
  init = np.asarray(km.kmeans_plus_plus(jax.random.key(0), x, _K, weights=weights))
  rows = {tuple(r) for r in x[1::2]}
  assert all(tuple(c) in rows for c in init)


def _np_spherical(x, init, iters):
  x = x.astype(np.float64)
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  c = init.astype(np.float64) / np.linalg.norm(init, axis=1, keepdims=True)
  for _ in range(iters + 1):
    sims = x @ c.T
    labels = sims.argmax(1)
    if _ == iters:
      break
    for j in range(len(c)):
      s = x[labels == j].sum(0)
      if np.linalg.norm(s) > 0:
        c[j] = s / np.linalg.norm(s)
  inertia = np.sum(1.0 - sims[np.arange(len(x)), labels])
  return c, labels, inertia


@pytest.mark.parametrize("variant", _VARIANTS, ids=_VARIANT_IDS)
def test_cosine_matches_numpy_spherical_kmeans(variant):
  x = _blobs(seed=6) + 0.5
  init = _random_rows_init(x, seed=7)
  ours = km.kmeans(x, _K, num_iters=_ITERS, init=init, metric="cosine", chunk_size=200,
                   **variant)
  c, labels, inertia = _np_spherical(x, init, _ITERS)
  np.testing.assert_array_equal(ours.assignments, labels)
  np.testing.assert_allclose(ours.centroids, c, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(float(ours.inertia), inertia, rtol=1e-3)


def test_nearest_centroid_and_pairwise_distances_match_float64():
  x = _blobs(n=200, seed=16)
  c = _random_rows_init(x, seed=17)
  ref = ((x[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
  index, dist = km.nearest_centroid(x, c, "euclidean")
  np.testing.assert_array_equal(index, ref.argmin(1))
  np.testing.assert_allclose(dist, ref.min(1), rtol=1e-5)
  np.testing.assert_allclose(km.pairwise_distances(x, c, "euclidean"), ref, rtol=1e-4, atol=1e-3)
  # Far from the origin ||x||^2 dwarfs the distances: they are still exact (no cancellation).
  far_index, far = km.nearest_centroid(x + 1e3, c + 1e3, "euclidean")
  np.testing.assert_allclose(far, ref[np.arange(len(x)), far_index], rtol=1e-3)


def test_four_device_sharded_run_equals_single_device_and_is_deterministic():
  assert jax.device_count() >= 4
  mesh = jax.make_mesh((4,), ("data",))
  x = _blobs(n=1001, seed=8)  # Not a multiple of 4: exercises padding rows.
  single = km.kmeans(x, _K, num_iters=_ITERS, seed=3, chunk_size=128)
  sharded = km.kmeans(x, _K, num_iters=_ITERS, seed=3, chunk_size=128, mesh=mesh)
  again = km.kmeans(x, _K, num_iters=_ITERS, seed=3, chunk_size=128)
  np.testing.assert_array_equal(sharded.assignments, single.assignments)
  np.testing.assert_allclose(sharded.centroids, single.centroids, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(sharded.inertia), float(single.inertia), rtol=1e-5)
  np.testing.assert_array_equal(again.assignments, single.assignments)
  np.testing.assert_array_equal(again.centroids, single.centroids)
  # The sharded run is itself a correct Lloyd run: compare with sklearn from its init.
  init = np.asarray(km.kmeans_plus_plus(jax.random.key(3), x, _K))
  ref = _sklearn(x, init, _ITERS)
  np.testing.assert_array_equal(sharded.assignments, ref.labels_)
  # One-hot sums of compacted weighted rows with the subsample option, sharded and not.
  weights = np.random.default_rng(9).uniform(0.5, 2.0, len(x)).astype(np.float32)
  rows, w, _ = _with_padding(x, weights)
  options = dict(num_iters=_ITERS, weights=w, seed=4, sum_method="onehot",
                 max_points_per_centroid=100)
  single = km.kmeans(rows, _K, **options)
  sharded = km.kmeans(rows, _K, mesh=mesh, **options)
  np.testing.assert_array_equal(sharded.assignments, single.assignments)
  np.testing.assert_allclose(sharded.centroids, single.centroids, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(sharded.inertia), float(single.inertia), rtol=1e-5)


def test_bad_input_raises_input_error():
  x = _blobs(n=50)
  with pytest.raises(InputError, match="metric"):
    km.kmeans(x, 3, metric="manhattan")
  with pytest.raises(InputError, match="weights"):
    km.kmeans(x, 3, weights=np.ones(3))
  with pytest.raises(InputError, match="sum_method"):
    km.kmeans(x, 3, sum_method="scatter")
  with pytest.raises(InputError, match="algorithm"):
    km.kmeans(x, 3, algorithm="elkan")
  with pytest.raises(InputError, match="weight is 0"):
    km.kmeans(x, 3, weights=np.zeros(len(x)))
