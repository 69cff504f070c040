"""Tests for PointDC's distillation losses against float64 numpy, including gradients."""

import jax
import numpy as np

from jaxseg.methods.pointdc import losses

_S = 6


def _distill_data(seed=0, batch=2, points=25, dim=4):
  rng = np.random.default_rng(seed)
  pred = rng.normal(size=(batch, points, dim)).astype(np.float32)
  segments = rng.choice([-1, 0, 1, 2, 3, 5], size=(batch, points)).astype(np.int32)
  mask = np.ones((batch, points), bool)
  mask[1, 18:] = False
  pred[~mask] = np.nan
  targets = rng.normal(size=(batch, _S, dim)).astype(np.float32)
  has_target = np.ones((batch, _S), bool)
  has_target[0, 1] = False
  targets[0, 1] = np.nan        # No target: may hold garbage.
  targets[1, 2] = 0.0           # All-zero target: unobserved.
  return pred, segments, mask, targets, has_target


def _np_distill(pred, segments, mask, targets, has_target):
  total, count = 0.0, 0
  for b in range(pred.shape[0]):
    for s in range(_S):
      rows = pred[b][mask[b] & (segments[b] == s)].astype(np.float64)
      target = targets[b, s].astype(np.float64)
      if not has_target[b, s] or not len(rows) or not np.any(target):
        continue
      mean = rows.mean(0)
      diff = mean / np.linalg.norm(mean) - target / np.linalg.norm(target)
      total += np.sum(diff ** 2)
      count += 1
  return total, count


def test_segment_distillation_loss_and_gradient_match_numpy():
  pred, segments, mask, targets, has_target = _distill_data()
  loss_sum, count = jax.jit(losses.segment_distillation_loss)(pred, segments, mask, targets, has_target)
  want_sum, want_count = _np_distill(pred, segments, mask, targets, has_target)
  assert want_count == 8   # 2 x {0, 1, 2, 3, 5} minus (0, 1) and (1, 2); segment 4 is empty.
  np.testing.assert_allclose(float(loss_sum), want_sum, rtol=1e-5)
  assert float(count) == want_count
  grad = np.asarray(jax.grad(lambda p: losses.segment_distillation_loss(
      p, segments, mask, targets, has_target)[0])(pred))
  assert np.all(grad[~mask] == 0)
  # Central finite differences of the float64 numpy loss.
  ref = pred.astype(np.float64)
  want = np.zeros_like(ref)
  h = 1e-6
  for idx in zip(*np.nonzero(mask)):
    for d in range(ref.shape[-1]):
      up, down = ref.copy(), ref.copy()
      up[idx + (d,)] += h
      down[idx + (d,)] -= h
      want[idx + (d,)] = (_np_distill(up, segments, mask, targets, has_target)[0]
                          - _np_distill(down, segments, mask, targets, has_target)[0]) / (2 * h)
  np.testing.assert_allclose(grad[mask], want[mask], rtol=1e-3, atol=1e-5)


def test_segment_distillation_loss_is_zero_for_matching_directions():
  pred, segments, mask, targets, has_target = _distill_data(seed=1)
  # Every point of a segment predicts 3x its segment's target: mean has the target's direction.
  aligned = np.where(segments[..., None] >= 0,
                     3.0 * targets[np.arange(2)[:, None], np.maximum(segments, 0)], 1.0)
  aligned = np.where(mask[..., None], aligned, np.nan).astype(np.float32)
  loss_sum, count = losses.segment_distillation_loss(aligned, segments, mask,
                                             np.nan_to_num(targets), has_target)
  assert float(count) > 0
  np.testing.assert_allclose(float(loss_sum), 0.0, atol=1e-5)


def _np_voxel_distill(pred, segments, mask, voxels, targets, has_target):
  """Per voxel: mean over the voxel's used points of mean_d (n(pred) - n(F_seg))^2, where a
  point is used when its super-voxel has a non-zero target; each voxel weighs (used points /
  points)."""
  total, count = 0.0, 0.0
  for b in range(pred.shape[0]):
    for v in np.unique(voxels[b][mask[b]]):
      members = np.flatnonzero(mask[b] & (voxels[b] == v))
      for j in members:
        s = segments[b, j]
        if s < 0 or not has_target[b, s] or not np.any(targets[b, s]):
          continue
        p = pred[b, j].astype(np.float64)
        t = targets[b, s].astype(np.float64)
        diff = p / np.linalg.norm(p) - t / np.linalg.norm(t)
        total += np.mean(diff ** 2) / len(members)
        count += 1.0 / len(members)
  return total, count


def test_voxel_distillation_loss_and_gradient_match_numpy():
  pred, segments, mask, targets, has_target = _distill_data(seed=3)
  rng = np.random.default_rng(3)
  voxels = rng.integers(0, 9, size=segments.shape).astype(np.int32)
  voxels[~mask] = 12                       # padding row = capacity
  # Points of one voxel share its prediction.
  pred = np.where(mask[..., None], rng.normal(size=(2, 12, 4))[np.arange(2)[:, None],
                                                                 np.minimum(voxels, 11)], np.nan)
  pred = pred.astype(np.float32)
  fn = lambda p: losses.voxel_distillation_loss(p, segments, mask, voxels, 12, targets,
                                                 has_target)
  loss_sum, count = jax.jit(fn)(pred)
  want_sum, want_count = _np_voxel_distill(pred, segments, mask, voxels, targets, has_target)
  np.testing.assert_allclose(float(loss_sum), want_sum, rtol=1e-5)
  np.testing.assert_allclose(float(count), want_count, rtol=1e-6)
  grad = np.asarray(jax.grad(lambda p: fn(p)[0])(pred))
  assert np.all(grad[~mask] == 0)
  ref, h = pred.astype(np.float64), 1e-6
  for idx in list(zip(*np.nonzero(mask)))[:12]:
    for d in range(ref.shape[-1]):
      up, down = ref.copy(), ref.copy()
      up[idx + (d,)] += h
      down[idx + (d,)] -= h
      want = (_np_voxel_distill(up, segments, mask, voxels, targets, has_target)[0] -
              _np_voxel_distill(down, segments, mask, voxels, targets, has_target)[0]) / (2 * h)
      np.testing.assert_allclose(grad[idx + (d,)], want, rtol=1e-3, atol=1e-5)
