"""Tests for super-voxel spherical K-means and primitive merging on planted clusters."""

import itertools

import jax
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from jaxseg.errors import InputError
from jaxseg.ops import clustering


def _planted(k=6, per=150, dim=16, noise=0.25, seed=0, padding=40):
  """Rows around k random unit directions, with NaN padding rows of weight 0."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(k, dim))
  centres /= np.linalg.norm(centres, axis=1, keepdims=True)
  truth = np.repeat(np.arange(k), per)
  rows = centres[truth] + noise * rng.normal(size=(k * per, dim)) / np.sqrt(dim)
  rows *= rng.uniform(0.5, 2.0, (len(rows), 1))   # Norms do not matter for cosine.
  order = rng.permutation(len(rows))
  rows, truth = rows[order], truth[order]
  feats = np.concatenate([rows, np.full((padding, dim), np.nan)]).astype(np.float32)
  weights = np.concatenate([np.ones(len(rows)), np.zeros(padding)]).astype(np.float32)
  return feats, weights, truth, centres


def test_recovers_planted_clusters():
  feats, weights, truth, centres = _planted()
  centroids = np.asarray(clustering.cluster_supervoxels(feats, weights, 6, num_iters=20, seed=1))
  assert centroids.shape == (6, 16)
  np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-5)
  valid = weights > 0
  labels = (feats[valid] @ centroids.T).argmax(1)
  assert adjusted_rand_score(truth, labels) == 1.0
  # Each centroid is the normalised mean of its (unit) rows: compare in float64.
  unit = feats[valid].astype(np.float64)
  unit /= np.linalg.norm(unit, axis=1, keepdims=True)
  for j in range(6):
    mean = unit[labels == j].sum(0)
    np.testing.assert_allclose(centroids[j], mean / np.linalg.norm(mean), atol=1e-5)


def test_four_device_mesh_equals_single_device():
  assert jax.device_count() >= 4
  mesh = jax.make_mesh((4,), ("data",))
  feats, weights, _, _ = _planted(k=5, per=97, seed=2, padding=3)   # 488 rows: padded.
  single = clustering.cluster_supervoxels(feats, weights, 5, num_iters=10, seed=3)
  sharded = clustering.cluster_supervoxels(feats, weights, 5, num_iters=10, seed=3, mesh=mesh)
  np.testing.assert_allclose(sharded, single, rtol=1e-5, atol=1e-6)


def test_padding_slots_are_dropped_before_clustering():
  # As the stage's [scenes * slots] layout: most rows are padding (weight 0, NaN features).
  feats, weights, _, _ = _planted(k=4, per=60, seed=6, padding=2000)
  order = np.random.default_rng(7).permutation(len(feats))
  feats, weights = feats[order], weights[order]
  valid = weights > 0
  padded = clustering.cluster_supervoxels(feats, weights, 4, num_iters=10, seed=2)
  alone = clustering.cluster_supervoxels(feats[valid], weights[valid], 4, num_iters=10, seed=2)
  np.testing.assert_allclose(padded, alone, rtol=1e-6, atol=1e-6)
  # faiss-style subsampling (4 * 20 of the 240 valid rows) still finds the planted clusters.
  sub = np.asarray(clustering.cluster_supervoxels(feats, weights, 4, num_iters=10, seed=2,
                                                  max_points_per_centroid=20))
  full_labels = (feats[valid] @ np.asarray(alone).T).argmax(1)
  assert adjusted_rand_score(full_labels, (feats[valid] @ sub.T).argmax(1)) == 1.0


def test_fewer_valid_rows_than_k_raises():
  feats, weights, _, _ = _planted(k=2, per=2, padding=5)
  with pytest.raises(InputError, match="fewer than"):
    clustering.cluster_supervoxels(feats, weights, 5)


def test_merge_primitives_groups_planted_primitives():
  rng = np.random.default_rng(4)
  classes, per, dim = 4, 5, 12
  groups = rng.normal(size=(classes, dim))
  groups /= np.linalg.norm(groups, axis=1, keepdims=True)
  truth = np.repeat(np.arange(classes), per)
  primitives = (groups[truth] + 0.15 * rng.normal(size=(classes * per, dim))).astype(np.float32)
  order = rng.permutation(len(primitives))
  primitives, truth = primitives[order], truth[order]
  assign, class_centroids = clustering.merge_primitives(primitives, classes, seed=0,
                                                        num_iters=20, num_inits=3)
  assign = np.asarray(assign)
  assert assign.dtype == np.int32
  # Exact match up to a permutation of the class ids.
  perms = [p for p in itertools.permutations(range(classes))
           if np.array_equal(np.asarray(p)[truth], assign)]
  assert len(perms) == 1
  unit = primitives.astype(np.float64) / np.linalg.norm(primitives, axis=1, keepdims=True)
  for c in range(classes):
    mean = unit[assign == c].sum(0)
    np.testing.assert_allclose(class_centroids[c], mean / np.linalg.norm(mean), atol=1e-5)


def test_merge_primitives_identity_and_bad_class_count():
  rng = np.random.default_rng(5)
  primitives = rng.normal(size=(7, 4)).astype(np.float32)
  assign, class_centroids = clustering.merge_primitives(primitives, 7)
  np.testing.assert_array_equal(assign, np.arange(7))
  np.testing.assert_allclose(
      class_centroids, primitives / np.linalg.norm(primitives, axis=1, keepdims=True),
      rtol=1e-6)
  with pytest.raises(InputError, match="merge"):
    clustering.merge_primitives(primitives, 8)
