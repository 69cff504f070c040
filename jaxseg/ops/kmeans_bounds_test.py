"""Hamerly's bounds give Lloyd's iterations: checked against a float64 numpy Lloyd loop over
many iterations from starts that make rows move far, leave a cluster empty and shrink clusters
(which must refresh the running sums), alone and on a 4-device mesh."""

import jax
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from jaxseg.ops import kmeans as km


def _float64_lloyd(x, init, iters, weights, metric):
  """(centroids, labels) after `iters` weighted Lloyd updates in float64; labels of the
  returned centroids, lowest index on ties; a centroid without weight stays."""
  x, c = x.astype(np.float64), init.astype(np.float64).copy()
  if metric == "cosine":
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    c = c / np.linalg.norm(c, axis=1, keepdims=True)
  w = weights.astype(np.float64)
  for it in range(iters + 1):
    labels = ((x ** 2).sum(1)[:, None] - 2 * x @ c.T + (c ** 2).sum(1)).argmin(1)
    if it == iters:
      return c, labels
    for j in range(len(c)):
      members = (labels == j) & (w > 0)
      if members.any():
        s = (w[members, None] * x[members]).sum(0)
        c[j] = s / np.linalg.norm(s) if metric == "cosine" else s / w[members].sum()


def _bad_start(x, labels, k, seed):
  """K initial centroids: rows of one blob only (most rows must travel to other centroids and
  the first clusters shrink), the last one far beyond every row (it never gets a member)."""
  rng = np.random.default_rng(seed)
  init = x[rng.choice(np.flatnonzero(labels == 0), k, replace=False)].copy()
  init[-1] = x.max(0) + 50.0
  return init


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_forty_iterations_from_a_bad_start_match_float64_lloyd(metric):
  k = 7
  x, blob = make_blobs(n_samples=3000, n_features=8, centers=5, cluster_std=2.0,
                       random_state=3)
  x = (x + (4.0 if metric == "cosine" else 0.0)).astype(np.float32)
  weights = np.random.default_rng(4).uniform(0.5, 2.0, len(x)).astype(np.float32)
  weights[::10] = 0.0                                     # padding rows
  init = _bad_start(x, blob, k, seed=5)
  ours = km.kmeans(x, k, num_iters=40, init=init, weights=weights, metric=metric,
                   chunk_size=64, algorithm="hamerly", compact=False)
  c, labels = _float64_lloyd(x, init, 40, weights, metric)
  real = weights > 0
  np.testing.assert_array_equal(np.asarray(ours.assignments)[real], labels[real])
  assert np.all(np.asarray(ours.assignments)[~real] == -1)
  np.testing.assert_allclose(ours.centroids, c, rtol=1e-5, atol=1e-5)
  if metric == "euclidean":                 # The far centroid had no member: it stayed.
    np.testing.assert_allclose(ours.centroids[-1], init[-1], rtol=1e-6)
  # The same run without bounds: Lloyd's own iterations agree.
  lloyd = km.kmeans(x, k, num_iters=40, init=init, weights=weights, metric=metric,
                    chunk_size=64, algorithm="lloyd", compact=False)
  np.testing.assert_array_equal(ours.assignments, lloyd.assignments)
  np.testing.assert_allclose(float(ours.inertia), float(lloyd.inertia), rtol=1e-5)


def test_sums_are_summed_afresh_when_clusters_lose_most_rows():
  """From 20 random rows of 20 blobs in 128-d, the first updates empty some clusters of most
  of their rows; sums kept up to date by subtraction alone would then be off by 2.5e-3
  (measured), the refreshed ones agree with float64 to float32 rounding."""
  x, _ = make_blobs(n_samples=20000, n_features=128, centers=20, cluster_std=4.0,
                    random_state=0)
  x = x.astype(np.float32)
  init = x[np.random.default_rng(0).choice(len(x), 20, replace=False)]
  ours = km.kmeans(x, 20, num_iters=3, init=init, algorithm="hamerly")
  c, labels = _float64_lloyd(x, init, 3, np.ones(len(x), np.float32), "euclidean")
  np.testing.assert_array_equal(ours.assignments, labels)
  np.testing.assert_allclose(ours.centroids, c, rtol=0, atol=1e-4)


def test_one_cluster_and_zero_iterations():
  x = np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32)
  one = km.kmeans(x, 1, num_iters=5, algorithm="hamerly")
  np.testing.assert_allclose(one.centroids[0], x.astype(np.float64).mean(0), atol=1e-5)
  init = x[:3]
  none = km.kmeans(x, 3, num_iters=0, init=init, algorithm="hamerly")
  np.testing.assert_allclose(none.centroids, init, atol=1e-6)


def test_four_device_mesh_equals_single_device():
  assert jax.device_count() >= 4
  mesh = jax.make_mesh((4,), ("data",))
  x, blob = make_blobs(n_samples=2001, n_features=6, centers=6, cluster_std=1.5,
                       random_state=8)
  x = x.astype(np.float32)
  init = _bad_start(x, blob, 6, seed=9)
  options = dict(num_iters=25, init=init, chunk_size=64, algorithm="hamerly")
  single = km.kmeans(x, 6, **options)
  sharded = km.kmeans(x, 6, mesh=mesh, **options)
  np.testing.assert_array_equal(sharded.assignments, single.assignments)
  np.testing.assert_allclose(sharded.centroids, single.centroids, rtol=1e-5, atol=1e-5)
  c, labels = _float64_lloyd(x, init, 25, np.ones(len(x), np.float32), "euclidean")
  np.testing.assert_array_equal(sharded.assignments, labels)
  np.testing.assert_allclose(sharded.centroids, c, rtol=1e-5, atol=1e-5)


def test_auto_takes_bounds_on_large_cpu_inputs_only():
  assert km.resolve_algorithm("auto", km.HAMERLY_MIN_ROWS, None) == "hamerly"
  assert km.resolve_algorithm("auto", km.HAMERLY_MIN_ROWS - 1, None) == "lloyd"
  assert km.resolve_algorithm("lloyd", 10 ** 7, None) == "lloyd"


def test_heavy_rows_leaving_a_light_cluster_refresh_its_sums():
  """Two rows of weight 1e4 leave a centroid that keeps three rows of weight 1: fewer rows
  moved than remain, but far more weight, so the sums must be summed afresh (without that
  the centroid was off by 4.6e-4 relative, found in review)."""
  x = np.array([[0.1234, 0.3], [-0.2345, -0.1], [0.3456, 0.05], [4.5, 0], [-4.5, 0], [6, 0],
                [-6, 0], [6.1, 0.2], [-6.1, 0.2]], np.float32)
  weights = np.array([1, 1, 1, 1e4, 1e4, 1e4, 1e4, 1, 1], np.float32)
  init = np.array([[0, 0], [10, 0], [-10, 0]], np.float32)
  ours = km.kmeans(x, 3, num_iters=4, init=init, weights=weights, chunk_size=8,
                   algorithm="hamerly")
  c, labels = _float64_lloyd(x, init, 4, weights, "euclidean")
  np.testing.assert_array_equal(ours.assignments, labels)
  np.testing.assert_allclose(ours.centroids, c, rtol=1e-6, atol=1e-6)


def test_cosine_cluster_of_zero_rows_keeps_its_centroid_as_lloyd_does():
  """All-zero rows with a positive weight stay zero after normalisation; a cosine cluster
  holding only them has a zero sum and keeps its centroid, in both algorithms."""
  rng = np.random.default_rng(6)
  x = np.concatenate([0.3 * rng.normal(size=(200, 3)) + [3, 0, 0], np.zeros((5, 3))]).astype(
      np.float32)
  init = np.array([[-1, 0, 0], [1, 0.1, 0], [1, 0, 0.1]], np.float32)   # blob: never c0
  runs = [km.kmeans(x, 3, num_iters=5, init=init, metric="cosine", chunk_size=16,
                    algorithm=a) for a in ("hamerly", "lloyd")]
  np.testing.assert_array_equal(runs[0].assignments, runs[1].assignments)
  assert np.all(np.asarray(runs[0].assignments)[-5:] == 0)     # the zero rows' own cluster
  np.testing.assert_allclose(runs[0].centroids, runs[1].centroids, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(runs[0].centroids[0], init[0], atol=1e-7)
