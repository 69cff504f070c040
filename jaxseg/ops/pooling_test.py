"""Tests for super-voxel pooling against float64 numpy loops."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.ops import pooling

_S = 7  # Segment 5 is left empty on purpose.


def _data(seed=0, points=60, dim=4):
  rng = np.random.default_rng(seed)
  feats = rng.normal(size=(points, dim)).astype(np.float32)
  ids = rng.choice([0, 1, 2, 3, 4, 6], size=points).astype(np.int32)
  ids[:5] = -1          # Padding, negative convention.
  ids[5:8] = _S         # Padding, num_segments convention.
  ids[8:10] = 100       # Far out of range: also dropped.
  return feats, ids


def _np_mean(feats, ids, s):
  sums = np.zeros((s, feats.shape[1]), np.float64)
  counts = np.zeros(s, np.int64)
  for p, i in enumerate(ids):
    if 0 <= i < s:
      sums[i] += feats[p]
      counts[i] += 1
  return sums / np.maximum(counts, 1)[:, None], counts


def _np_max(feats, ids, s, fill):
  out = np.full((s, feats.shape[1]), fill, np.float64)
  for seg in range(s):
    rows = feats[ids == seg].astype(np.float64)
    if len(rows):
      out[seg] = rows.max(0)
  return out


def test_mean_counts_and_max_match_numpy_with_padding_and_empty_segment():
  feats, ids = _data()
  want_mean, want_counts = _np_mean(feats, ids, _S)
  assert want_counts[5] == 0
  np.testing.assert_allclose(pooling.segment_mean(feats, ids, _S), want_mean, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_array_equal(pooling.segment_counts(ids, _S), want_counts)
  np.testing.assert_allclose(pooling.segment_max(feats, ids, _S), _np_max(feats, ids, _S, 0.0),
                             rtol=1e-6)
  np.testing.assert_allclose(pooling.segment_max(feats, ids, _S, fill=-7.0),
                             _np_max(feats, ids, _S, -7.0), rtol=1e-6)


def test_unpool_matches_numpy_gather_and_zeros_padding():
  feats, ids = _data(1)
  seg = np.random.default_rng(2).normal(size=(_S, 4)).astype(np.float32)
  want = np.zeros((len(ids), 4), np.float32)
  for p, i in enumerate(ids):
    if 0 <= i < _S:
      want[p] = seg[i]
  np.testing.assert_array_equal(pooling.unpool(seg, ids), want)


def test_batched_equals_per_scene_and_jit():
  scenes = [_data(s) for s in range(3)]
  feats = np.stack([f for f, _ in scenes])
  ids = np.stack([i for _, i in scenes])
  mean_fn = jax.jit(pooling.segment_mean, static_argnums=2)
  batched = mean_fn(feats, ids, _S)
  assert batched.shape == (3, _S, 4)
  for b, (f, i) in enumerate(scenes):
    np.testing.assert_allclose(batched[b], _np_mean(f, i, _S)[0], rtol=1e-5, atol=1e-6)
  maxed = pooling.segment_max(feats, ids, _S)
  counts = pooling.segment_counts(ids, _S)
  back = pooling.unpool(batched, ids)
  for b, (f, i) in enumerate(scenes):
    np.testing.assert_allclose(maxed[b], _np_max(f, i, _S, 0.0), rtol=1e-6)
    np.testing.assert_array_equal(counts[b], _np_mean(f, i, _S)[1])
    np.testing.assert_allclose(back[b], pooling.unpool(batched[b], i), rtol=1e-6)


def test_mean_pooling_gradient_matches_numpy():
  feats, ids = _data(3)
  weights = np.random.default_rng(4).normal(size=(_S, 4)).astype(np.float32)
  grad = jax.grad(lambda f: jnp.sum(pooling.segment_mean(f, ids, _S) * weights))(feats)
  _, counts = _np_mean(feats, ids, _S)
  want = np.zeros(feats.shape, np.float64)
  for p, i in enumerate(ids):
    if 0 <= i < _S:
      want[p] = weights[i] / counts[i]
  np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-7)
