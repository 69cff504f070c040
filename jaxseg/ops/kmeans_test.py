"""Tests for accelerator K-means against scikit-learn and a numpy spherical k-means."""

import jax
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from jaxseg.errors import InputError
from jaxseg.ops import kmeans as km

_K = 6
_ITERS = 8


def _blobs(n=1500, dim=5, seed=0, std=1.5):
  x, _ = make_blobs(n_samples=n, n_features=dim, centers=_K, cluster_std=std, random_state=seed)
  return x.astype(np.float32)


def _sklearn(x, init, iters, weights=None):
  model = KMeans(n_clusters=len(init), init=np.asarray(init, np.float64), n_init=1,
                 max_iter=iters, tol=0.0, algorithm="lloyd")
  model.fit(x.astype(np.float64), sample_weight=weights)
  return model


def _random_rows_init(x, seed=1):
  rng = np.random.default_rng(seed)
  return x[rng.choice(len(x), _K, replace=False)]


def test_lloyd_matches_sklearn_from_same_init():
  x = _blobs()
  init = _random_rows_init(x)
  ours = km.kmeans(x, _K, num_iters=_ITERS, init=init, chunk_size=256)
  ref = _sklearn(x, init, _ITERS)
  np.testing.assert_array_equal(ours.assignments, ref.labels_)
  np.testing.assert_allclose(ours.centroids, ref.cluster_centers_, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(float(ours.inertia), ref.inertia_, rtol=1e-4)


def test_weighted_matches_sklearn_sample_weight_and_zero_weight_is_padding():
  x = _blobs(seed=2)
  weights = np.random.default_rng(3).uniform(0.2, 3.0, len(x)).astype(np.float32)
  init = _random_rows_init(x, seed=4)
  ours = km.kmeans(x, _K, num_iters=_ITERS, init=init, weights=weights, chunk_size=300)
  ref = _sklearn(x, init, _ITERS, weights)
  np.testing.assert_array_equal(ours.assignments, ref.labels_)
  np.testing.assert_allclose(ours.centroids, ref.cluster_centers_, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(float(ours.inertia), ref.inertia_, rtol=1e-4)
  # Appending far-away rows with weight 0 changes nothing and labels them -1.
  padded_x = np.concatenate([x, np.full((37, x.shape[1]), 1e3, np.float32)])
  padded_w = np.concatenate([weights, np.zeros(37, np.float32)])
  padded = km.kmeans(padded_x, _K, num_iters=_ITERS, init=init, weights=padded_w,
                     chunk_size=300)
  np.testing.assert_array_equal(padded.assignments[:len(x)], ref.labels_)
  assert np.all(np.asarray(padded.assignments[len(x):]) == -1)
  np.testing.assert_allclose(padded.centroids, ref.cluster_centers_, rtol=1e-4, atol=1e-4)


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


def test_cosine_matches_numpy_spherical_kmeans():
  x = _blobs(seed=6) + 0.5
  init = _random_rows_init(x, seed=7)
  ours = km.kmeans(x, _K, num_iters=_ITERS, init=init, metric="cosine", chunk_size=200)
  c, labels, inertia = _np_spherical(x, init, _ITERS)
  np.testing.assert_array_equal(ours.assignments, labels)
  np.testing.assert_allclose(ours.centroids, c, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(float(ours.inertia), inertia, rtol=1e-3)


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


def test_bad_input_raises_input_error():
  x = _blobs(n=50)
  with pytest.raises(InputError, match="metric"):
    km.kmeans(x, 3, metric="manhattan")
  with pytest.raises(InputError, match="weights"):
    km.kmeans(x, 3, weights=np.ones(3))
