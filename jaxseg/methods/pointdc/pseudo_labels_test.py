"""Tests for pooled and Sinkhorn super-voxel pseudo-labels against float64 numpy references."""

import jax
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.special import softmax

from jaxseg.errors import InputError
from jaxseg.methods.pointdc import pseudo_labels as pl

_CAP = 10


def _scenes(seed=0, batch=2, points=120, dim=5):
  rng = np.random.default_rng(seed)
  feats = rng.normal(size=(batch, points, dim)).astype(np.float32)
  segments = rng.choice([-1, 0, 1, 2, 3, 5, 6, 8], size=(batch, points)).astype(np.int32)
  mask = np.ones((batch, points), bool)
  mask[1, 70:] = False
  feats[~mask] = np.nan
  return feats, segments, mask


def test_pooled_pseudo_labels_match_numpy_loops():
  feats, segments, mask = _scenes()
  rng = np.random.default_rng(1)
  centroids = rng.normal(size=(4, feats.shape[-1])).astype(np.float32)
  temperature = 0.2
  out = jax.jit(pl.pooled_pseudo_labels, static_argnames=("temperature", "segment_cap"))(
      feats, segments, mask, centroids, temperature=temperature, segment_cap=_CAP)
  c64 = centroids / np.linalg.norm(centroids.astype(np.float64), axis=1, keepdims=True)
  want_soft = np.zeros((2, _CAP, 4))
  want_labels = np.full((2, _CAP), -1)
  for b in range(2):
    for s in range(_CAP):
      rows = feats[b][mask[b] & (segments[b] == s)].astype(np.float64)
      if not len(rows):
        continue
      cos = (rows / np.linalg.norm(rows, axis=1, keepdims=True)) @ c64.T
      want_soft[b, s] = softmax(cos / temperature, axis=1).mean(0)
      want_labels[b, s] = want_soft[b, s].argmax()
  np.testing.assert_allclose(out.soft, want_soft, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(out.labels, want_labels)
  assert out.labels.dtype == np.int32
  assert np.all(want_labels[:, [4, 7, 9]] == -1)


def test_point_labels_from_supervoxels_match_numpy_loop():
  _, segments, mask = _scenes(seed=2)
  segments[0, :3] = _CAP + 2   # Outside the label table: no super-voxel.
  rng = np.random.default_rng(3)
  sv_labels = rng.integers(-1, 4, size=(2, _CAP)).astype(np.int32)
  ignore = rng.uniform(size=mask.shape) < 0.2
  out = np.asarray(pl.point_labels_from_supervoxels(sv_labels, segments, mask, ignore))
  no_ignore = np.asarray(pl.point_labels_from_supervoxels(sv_labels, segments, mask))
  for b in range(2):
    for p in range(segments.shape[1]):
      s = segments[b, p]
      want = sv_labels[b, s] if mask[b, p] and 0 <= s < _CAP else -1
      assert no_ignore[b, p] == want
      assert out[b, p] == (-1 if ignore[b, p] else want)
  assert out.dtype == np.int32


def _unbalanced(m=2000, k=5, dim=8, seed=4):
  """Features mostly near centroid 0, so plain argmax is very unbalanced."""
  rng = np.random.default_rng(seed)
  centroids = np.eye(k, dim, dtype=np.float32)
  feats = (0.5 * centroids[rng.choice(k, m, p=[0.7, 0.15, 0.1, 0.04, 0.01])]
           + 0.3 * rng.normal(size=(m, dim))).astype(np.float32)
  valid = np.ones(m, bool)
  valid[-77:] = False
  feats[~valid] = np.nan
  counts = rng.integers(1, 300, m).astype(np.float32)
  return feats, centroids, valid, counts


def _argmax_sizes(feats, centroids, valid):
  return np.bincount((feats[valid] @ centroids.T).argmax(1), minlength=len(centroids))


def test_equipartition_balances_cluster_sizes():
  feats, centroids, valid, counts = _unbalanced()
  k, expected = len(centroids), valid.sum() / len(centroids)
  assert _argmax_sizes(feats, centroids, valid).max() > 2 * expected
  labels = np.asarray(pl.sinkhorn_pseudo_labels(feats, valid, counts, centroids=centroids,
                                                epsilon=0.02, num_iters=300))
  assert np.all(labels[~valid] == -1)
  sizes = np.bincount(labels[valid], minlength=k)
  assert np.all(np.abs(sizes - expected) <= 0.04 * expected), sizes


def test_point_count_balances_point_mass():
  feats, centroids, valid, counts = _unbalanced(seed=5)
  k = len(centroids)
  labels = np.asarray(pl.sinkhorn_pseudo_labels(feats, valid, counts, centroids=centroids,
                                                marginal="point_count", epsilon=0.02,
                                                num_iters=300))
  assert np.all(labels[valid] >= 0) and np.all(labels[~valid] == -1)
  mass = np.bincount(labels[valid], weights=counts[valid], minlength=k)
  expected = counts[valid].sum() / k
  assert np.all(np.abs(mass - expected) <= 0.03 * expected), mass
  # Equipartition balances rows, not points: its point masses are further from equal.
  equi = np.asarray(pl.sinkhorn_pseudo_labels(feats, valid, counts, centroids=centroids,
                                              epsilon=0.02, num_iters=300))
  equi_mass = np.bincount(equi[valid], weights=counts[valid], minlength=k)
  assert np.abs(equi_mass - expected).max() > np.abs(mass - expected).max()


def _np_sinkhorn_labels(cost, a, eps, iters):
  """Float64 log-domain Sinkhorn (uniform columns; g then f updates); arg-max of the plan."""
  b = np.full(cost.shape[1], 1.0 / cost.shape[1])
  f, g = np.zeros(len(a)), np.zeros(len(b))
  for _ in range(iters):
    g = eps * np.log(b) - eps * logsumexp((f[:, None] - cost) / eps, axis=0)
    f = eps * np.log(a) - eps * logsumexp((g[None, :] - cost) / eps, axis=1)
  return np.exp((f[:, None] + g[None, :] - cost) / eps).argmax(1)


@pytest.mark.parametrize("marginal", ["equipartition", "point_count"])
def test_transport_labels_match_float64_numpy_sinkhorn(marginal):
  rng = np.random.default_rng(6)
  m, k, dim = 80, 4, 6
  feats = rng.normal(size=(m, dim)).astype(np.float32)
  centroids = rng.normal(size=(k, dim)).astype(np.float32)
  counts = rng.integers(1, 40, m).astype(np.float32)
  valid = np.ones(m, bool)
  valid[:9] = False
  eps, iters = 0.1, 60
  f64 = feats[valid].astype(np.float64)
  c64 = centroids.astype(np.float64)
  cos = (f64 / np.linalg.norm(f64, axis=1, keepdims=True)) @ (
      c64 / np.linalg.norm(c64, axis=1, keepdims=True)).T
  a = counts[valid].astype(np.float64) if marginal == "point_count" else np.ones(valid.sum())
  a /= a.sum()
  want = _np_sinkhorn_labels(1.0 - cos, a, eps, iters)
  got = np.asarray(pl.sinkhorn_pseudo_labels(feats, valid, counts, centroids=centroids,
                                             marginal=marginal, epsilon=eps, num_iters=iters))
  np.testing.assert_array_equal(got[valid], want)
  # Scores instead of features: cost = -score.
  scores = rng.normal(size=(m, k)).astype(np.float32)
  scores[~valid] = np.nan
  want = _np_sinkhorn_labels(-scores[valid].astype(np.float64), a, eps, iters)
  got = np.asarray(pl.sinkhorn_pseudo_labels(scores, valid, counts, marginal=marginal,
                                             epsilon=eps, num_iters=iters))
  np.testing.assert_array_equal(got[valid], want)
  assert np.all(got[~valid] == -1)


def test_four_device_mesh_equals_single_device():
  assert jax.device_count() >= 4
  mesh = jax.make_mesh((4,), ("data",))
  feats, centroids, valid, counts = _unbalanced(m=1001, seed=7)   # 1001: padded to 1004.
  for marginal in ("equipartition", "point_count"):
    kwargs = dict(centroids=centroids, marginal=marginal, epsilon=0.05, num_iters=100)
    single = pl.sinkhorn_pseudo_labels(feats, valid, counts, **kwargs)
    sharded = pl.sinkhorn_pseudo_labels(feats, valid, counts, mesh=mesh, **kwargs)
    assert sharded.shape == (1001,)
    np.testing.assert_array_equal(sharded, single)


def test_bad_arguments_raise_input_error():
  feats, centroids, valid, counts = _unbalanced(m=20)
  with pytest.raises(InputError, match="marginal"):
    pl.sinkhorn_pseudo_labels(feats, valid, counts, centroids=centroids, marginal="uniform")
  with pytest.raises(InputError, match="no valid"):
    pl.sinkhorn_pseudo_labels(feats, np.zeros(20, bool), counts, centroids=centroids)
  with pytest.raises(InputError, match="centroids"):
    pl.sinkhorn_pseudo_labels(feats, valid, counts, centroids=centroids[:, :3])
