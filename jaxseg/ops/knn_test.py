"""Tests for blocked brute-force k-NN against scipy's cKDTree."""

import jax
import numpy as np
import pytest
from scipy.spatial import cKDTree

from jaxseg.errors import InputError
from jaxseg.ops import knn as knn_lib


def _cloud(n=500, seed=0):
  return np.random.default_rng(seed).uniform(-2, 2, size=(n, 3)).astype(np.float32)


def test_self_query_matches_ckdtree_with_padding():
  points = _cloud()
  mask = np.ones(len(points), bool)
  mask[::7] = False
  poisoned = points.copy()
  poisoned[~mask] = np.nan
  idx, sq = knn_lib.knn(poisoned, 8, mask=mask, block_size=64)
  valid_ids = np.flatnonzero(mask)
  dist, nn = cKDTree(points[mask].astype(np.float64)).query(points[mask].astype(np.float64), 8)
  np.testing.assert_array_equal(np.asarray(idx)[mask], valid_ids[nn])
  np.testing.assert_allclose(np.asarray(sq)[mask], dist**2, rtol=1e-4, atol=1e-5)
  assert np.all(mask[np.asarray(idx)])  # No padding point is ever a neighbour.


def test_other_queries_and_vmap_over_scenes():
  points = _cloud(300, 1)
  queries = _cloud(77, 2)
  idx, sq = knn_lib.knn(points, 5, queries=queries, block_size=32)
  dist, nn = cKDTree(points.astype(np.float64)).query(queries.astype(np.float64), 5)
  np.testing.assert_array_equal(idx, nn)
  np.testing.assert_allclose(sq, dist**2, rtol=1e-4, atol=1e-5)
  batch = np.stack([_cloud(100, s) for s in range(3)])
  b_idx, _ = jax.vmap(lambda p: knn_lib.knn(p, 4, block_size=16))(batch)
  for s in range(3):
    _, nn = cKDTree(batch[s].astype(np.float64)).query(batch[s].astype(np.float64), 4)
    np.testing.assert_array_equal(b_idx[s], nn)


def test_fewer_valid_points_than_k_gives_infinite_slots():
  points = _cloud(20, 3)
  mask = np.zeros(20, bool)
  mask[[2, 5, 11]] = True
  idx, sq = knn_lib.knn(points, 5, mask=mask)
  sq = np.asarray(sq)
  assert np.all(np.isfinite(sq[:, :3])) and np.all(np.isinf(sq[:, 3:]))
  assert set(np.asarray(idx)[:, :3].ravel()) <= {2, 5, 11}


def test_bad_k_raises_input_error():
  with pytest.raises(InputError, match="k="):
    knn_lib.knn(_cloud(10), 11)
