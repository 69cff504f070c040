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
