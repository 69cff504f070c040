"""Tests for super-voxel features and cosine logits against float64 numpy loops."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.ops import features

_CAP = 12


def _scenes(seed=0, batch=2, points=150, dim=6):
  """Two padded scenes: segment ids in [-1, 9) with 4 left empty, NaN features on padding."""
  rng = np.random.default_rng(seed)
  feats = rng.normal(size=(batch, points, dim)).astype(np.float32)
  segments = rng.choice([-1, 0, 1, 2, 4, 5, 7, 8], size=(batch, points)).astype(np.int32)
  mask = np.ones((batch, points), bool)
  mask[0, 120:] = False
  mask[1, 90:] = False
  feats[~mask] = np.nan
  segments[0, 130:] = _CAP + 3   # Ids beyond the cap belong to no super-voxel.
  segments[1, 8:20] = 3          # Segment 3 exists only in scene 1.
  return feats, segments, mask


def _np_supervoxels(feats, segments, mask, cap):
  batch, _, dim = feats.shape
  out = np.zeros((batch, cap, dim))
  counts = np.zeros((batch, cap))
  for b in range(batch):
    for s in range(cap):
      rows = feats[b][mask[b] & (segments[b] == s)].astype(np.float64)
      if len(rows):
        mean = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).mean(0)
        out[b, s] = mean / np.linalg.norm(mean)
        counts[b, s] = len(rows)
  return out, counts


def test_supervoxel_features_match_numpy_with_empty_segments_and_nan_padding():
  feats, segments, mask = _scenes()
  fn = jax.jit(features.supervoxel_features, static_argnums=3)
  out = fn(feats, segments, mask, _CAP)
  want, counts = _np_supervoxels(feats, segments, mask, _CAP)
  np.testing.assert_allclose(out.feats, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(out.counts, counts)
  assert out.counts.dtype == jnp.float32
  assert np.all(np.asarray(out.feats)[counts == 0] == 0)   # 3 (scene 0), 6, 9, 10, 11 empty.
  assert counts[0, 3] == 0 and counts[1, 3] == 12


def test_sorted_ids_hint_gives_the_same_features():
  feats, segments, mask = _scenes(seed=1)
  keys = np.where(mask & (segments >= 0) & (segments < _CAP), segments, _CAP + 1)
  order = np.argsort(keys, axis=1, kind="stable")
  take = lambda a: np.take_along_axis(a, order if a.ndim == 2 else order[..., None], axis=1)
  feats, segments, mask = take(feats), take(segments), take(mask)
  plain = features.supervoxel_features(feats, segments, mask, _CAP)
  hinted = features.supervoxel_features(feats, segments, mask, _CAP, sorted_ids=True)
  np.testing.assert_allclose(hinted.feats, plain.feats, rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(hinted.counts, plain.counts)


def test_gradients_are_finite_and_zero_on_nan_padding():
  feats, segments, mask = _scenes(seed=2)
  weights = np.random.default_rng(3).normal(size=(2, _CAP, feats.shape[-1])).astype(np.float32)
  grad = jax.grad(lambda f: jnp.sum(
      features.supervoxel_features(f, segments, mask, _CAP).feats * weights))(feats)
  grad = np.asarray(grad)
  assert np.all(np.isfinite(grad))
  assert np.all(grad[~mask] == 0)
  in_segment = mask & (segments >= 0)
  assert np.all(np.abs(grad[in_segment]).sum(-1) > 0)
  assert np.all(grad[mask & (segments < 0)] == 0)


def test_cosine_logits_both_variants_match_numpy():
  rng = np.random.default_rng(4)
  feats = (rng.normal(size=(2, 30, 5)) * rng.uniform(0.1, 5, (2, 30, 1))).astype(np.float32)
  centroids = rng.normal(size=(7, 5)).astype(np.float32) * 3.0
  f64 = feats.astype(np.float64)
  c64 = centroids / np.linalg.norm(centroids.astype(np.float64), axis=1, keepdims=True)
  cos = (f64 / np.linalg.norm(f64, axis=-1, keepdims=True)) @ c64.T
  np.testing.assert_allclose(features.cosine_logits(feats, centroids, 10.0), 10.0 * cos,
                             rtol=1e-5, atol=1e-5)
  unnormalised = features.cosine_logits(feats, centroids, 2.0, normalize_features=False)
  np.testing.assert_allclose(unnormalised, 2.0 * np.linalg.norm(f64, axis=-1)[..., None] * cos,
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(unnormalised, 2.0 * f64 @ c64.T, rtol=1e-5, atol=1e-5)


def test_l2_normalize_matches_numpy_and_keeps_zero_rows():
  x = np.array([[3.0, 4.0], [0.0, 0.0], [1e-3, -2e-3]], np.float32)
  want = x / np.maximum(np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True), 1e-12)
  np.testing.assert_allclose(features.l2_normalize(x), want, rtol=1e-6)
  grad = jax.grad(lambda v: jnp.sum(features.l2_normalize(v)[1]))(x)
  assert np.all(np.isfinite(grad))
