"""Tests for the cross-entropy losses (Eq. 11) against float64 numpy, including their
gradients."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import log_softmax
from scipy.special import softmax

from jaxseg import losses

def test_cross_entropy_loss_and_gradient_match_numpy():
  rng = np.random.default_rng(2)
  batch, points, k = 2, 40, 7
  logits = (rng.normal(size=(batch, points, k)) * 5).astype(np.float32)
  logits[0, 0] = [1000.0, -1000.0, 0, 0, 0, 0, 990.0]   # Stability check.
  labels = rng.integers(-1, k, size=(batch, points)).astype(np.int32)
  labels[0, 0] = 6
  mask = np.ones((batch, points), bool)
  mask[1, 30:] = False
  logits[~mask] = np.nan
  loss_sum, count = jax.jit(losses.cross_entropy_loss)(logits, labels, mask)
  used = mask & (labels >= 0)
  log_p = log_softmax(logits.astype(np.float64), axis=-1)
  picked = np.take_along_axis(log_p, np.maximum(labels, 0)[..., None], -1)[..., 0]
  np.testing.assert_allclose(float(loss_sum), -picked[used].sum(), rtol=1e-5)
  assert float(count) == used.sum()
  assert np.isclose(-picked[0, 0], 10.0, rtol=1e-5)
  grad = np.asarray(jax.grad(lambda x: losses.cross_entropy_loss(x, labels, mask)[0])(logits))
  want = softmax(logits.astype(np.float64), axis=-1) - np.eye(k)[np.maximum(labels, 0)]
  want[~used] = 0.0
  assert np.all(np.isfinite(grad))
  np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6)


def test_cross_entropy_ignores_out_of_range_labels():
  logits = jnp.zeros((1, 3, 4))
  loss_sum, count = losses.cross_entropy_loss(logits, jnp.array([[0, 4, -1]]),
                                              jnp.ones((1, 3), bool))
  np.testing.assert_allclose(float(loss_sum), np.log(4.0), rtol=1e-6)
  assert float(count) == 1.0


def test_voxel_cross_entropy_equals_the_point_wise_loss_and_its_gradient():
  rng = np.random.default_rng(7)
  packs, points, voxels, classes = 2, 300, 40, 6
  voxel_logits = rng.normal(size=(packs, voxels, classes)).astype(np.float32)
  point_to_voxel = rng.integers(0, voxels, (packs, points)).astype(np.int32)
  labels = rng.integers(-1, classes + 1, (packs, points)).astype(np.int32)   # -1, K: ignored
  mask = rng.random((packs, points)) < 0.9
  point_to_voxel[~mask] = voxels

  def point_wise(logits):
    gathered = jnp.take_along_axis(logits, jnp.minimum(point_to_voxel, voxels - 1)[..., None],
                                   axis=1)
    return losses.cross_entropy_loss(gathered, labels, mask)

  (want, want_count), want_grad = jax.value_and_grad(point_wise, has_aux=True)(voxel_logits)
  (got, (count, correct)), grad = jax.value_and_grad(
      lambda l: (lambda s, c, k: (s, (c, k)))(*losses.voxel_cross_entropy_loss(
          l, labels, point_to_voxel, mask)), has_aux=True)(voxel_logits)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert float(count) == float(want_count)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6)
  used = mask & (labels >= 0) & (labels < classes)
  best = np.argmax(voxel_logits, -1)
  expected = sum(int(best[g, point_to_voxel[g, p]] == labels[g, p])
                 for g in range(packs) for p in range(points) if used[g, p])
  assert float(correct) == expected


def _point_problem(seed, voxels=9, classes=4, points=60):
  """One pack: voxel logits (a NaN padding voxel last), and labelled points in voxels."""
  rng = np.random.default_rng(seed)
  logits = (rng.normal(size=(1, voxels, classes)) * 2).astype(np.float32)
  logits[0, -1] = np.nan
  point_to_voxel = rng.integers(0, voxels - 1, (1, points)).astype(np.int32)
  labels = rng.integers(-1, classes, (1, points)).astype(np.int32)
  labels[0, :classes] = np.arange(classes)
  mask = np.ones((1, points), bool)
  mask[0, -5:] = False
  point_to_voxel[~mask] = voxels
  counts = losses.voxel_label_counts(labels, point_to_voxel, mask, voxels, classes)
  used = mask[0] & (labels[0] >= 0)
  return logits, counts, point_to_voxel[0][used], labels[0][used]


def _numpy_focal(voxel_logits, rows, labels, alpha, gamma):
  """float64: the focal loss summed over points, each with its voxel's logits."""
  p = softmax(voxel_logits.astype(np.float64)[rows], axis=-1)[np.arange(len(rows)), labels]
  return float(np.sum(-alpha[labels] * (1 - p) ** gamma * np.log(p)))


def _numpy_lovasz(voxel_logits, rows, labels):
  """float64 transcription of lovasz_softmax_flat (classes='present') over the points."""
  probs = softmax(voxel_logits.astype(np.float64)[rows], axis=-1)
  per_class = []
  for c in range(probs.shape[1]):
    fg = (labels == c).astype(np.float64)
    if fg.sum() == 0:
      continue
    errors = np.abs(fg - probs[:, c])
    order = np.argsort(-errors, kind="stable")
    fg_sorted = fg[order]
    intersection = fg_sorted.sum() - np.cumsum(fg_sorted)
    union = fg_sorted.sum() + np.cumsum(1 - fg_sorted)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1]
    per_class.append(np.dot(errors[order], jaccard))
  return float(np.mean(per_class))


def _finite_difference(fn, x, step=1e-5):
  grad = np.zeros_like(x, np.float64)
  for index in np.ndindex(x.shape):
    if not np.isfinite(x[index]):
      continue
    up, down = x.astype(np.float64), x.astype(np.float64)
    up[index] += step
    down[index] -= step
    grad[index] = (fn(up) - fn(down)) / (2 * step)
  return grad


def test_focal_loss_and_gradient_match_float64_numpy_over_points():
  logits, counts, rows, labels = _point_problem(3)
  alpha = np.array([0.2, 1.0, 0.5, 0.7], np.float32)
  loss_sum, count = losses.counts_focal_loss(logits, counts, alpha, gamma=2.0)
  np.testing.assert_allclose(float(loss_sum), _numpy_focal(logits[0], rows, labels, alpha, 2.0),
                             rtol=1e-5)
  assert float(count) == len(rows)
  grad = np.asarray(jax.grad(lambda x: losses.counts_focal_loss(x, counts, alpha)[0])(logits))
  want = _finite_difference(lambda x: _numpy_focal(x, rows, labels, alpha, 2.0), logits[0])
  assert np.all(np.isfinite(grad))
  np.testing.assert_allclose(grad[0], want, rtol=1e-3, atol=1e-5)
  # gamma = 0 and alpha = 1 is the cross-entropy.
  ce = losses.counts_cross_entropy_loss(logits, counts)[0]
  np.testing.assert_allclose(losses.counts_focal_loss(logits, counts, np.ones(4), 0.0)[0], ce,
                             rtol=1e-6)


def test_lovasz_softmax_and_gradient_match_float64_numpy_over_points():
  for seed in range(3):
    logits, counts, rows, labels = _point_problem(seed)
    got = losses.counts_lovasz_softmax(logits[0], counts[0])
    np.testing.assert_allclose(float(got), _numpy_lovasz(logits[0], rows, labels), rtol=1e-5)
    grad = np.asarray(jax.grad(losses.counts_lovasz_softmax)(logits[0], counts[0]))
    want = _finite_difference(lambda x: _numpy_lovasz(x, rows, labels), logits[0])
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, want, rtol=1e-3, atol=1e-5)
  # A perfect, confident prediction costs nothing; no labels cost nothing.
  eye = np.eye(4, dtype=np.float32)
  assert float(losses.counts_lovasz_softmax(eye * 50, eye * 3)) < 1e-6
  assert float(losses.counts_lovasz_softmax(eye, np.zeros((4, 4), np.float32))) == 0.0


def test_focal_class_weights_follow_the_reference_formula():
  counts = np.array([900, 90, 10, 0])
  freq = counts / counts.sum()
  raw = np.log(1 + 1 / (freq + 1e-3))
  np.testing.assert_allclose(losses.focal_class_weights(counts), raw / raw.max(), rtol=1e-6)
  assert losses.focal_class_weights(counts)[3] == 1.0
