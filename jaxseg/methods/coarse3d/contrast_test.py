"""COARSE3D's contrastive pieces against float64 numpy references and sampling statistics."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import losses
from jaxseg.methods.coarse3d import contrast


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _numpy_entropy(logits):
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return -(p * np.log(p)).sum(-1)


def test_contrast_loss_equals_float64_transcription():
  rng = np.random.default_rng(0)
  bank = _unit(rng.normal(size=(3, 4, 6)))
  anchors = _unit(rng.normal(size=(10, 6)))
  classes = rng.integers(0, 3, 10)
  valid = rng.random(10) < 0.8
  loss, count = contrast.prototype_contrast(jnp.asarray(anchors, jnp.float32),
                                            jnp.asarray(classes), jnp.asarray(valid),
                                            jnp.asarray(bank, jnp.float32), temperature=0.07)
  expected = 0.0
  for a, y, ok in zip(anchors, classes, valid):
    if not ok:
      continue
    negatives = sum(np.exp(a @ bank[c, j] / 0.07) for c in range(3) if c != y
                    for j in range(4))
    terms = [-np.log(np.exp(a @ p / 0.07) / (np.exp(a @ p / 0.07) + negatives))
             for p in bank[y]]
    expected += np.mean(terms)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  assert float(count) == valid.sum()


def test_anchor_sampling_prefers_low_entropy_voxels():
  """Draw frequencies follow exp(-H^2) within a group (a chi-square test with a fixed seed),
  so confident voxels are drawn more often; groups whose class is not among the scene's weak
  labels draw nothing."""
  rng = np.random.default_rng(0)
  num = 40
  logits = rng.normal(size=(num, 3)) * rng.uniform(0, 6, (num, 1))
  targets = np.zeros(num, np.int32)            # every voxel a class-0 target, scene 0
  weak = np.full(num, -1, np.int32)
  weak[0] = 0
  scene = np.zeros(num, np.int32)
  draws = 40000
  rows, classes, valid = contrast.sample_anchors(
      jnp.asarray(targets), jnp.asarray(scene), jnp.asarray(weak),
      jnp.asarray(logits, jnp.float32), num_slots=1, per_class=draws, key=jax.random.key(3))
  rows, classes, valid = map(np.asarray, (rows, classes, valid))
  assert valid[classes == 0].all() and not valid[classes != 0].any()
  counts = np.bincount(rows[classes == 0], minlength=num)
  weights = np.exp(-_numpy_entropy(logits) ** 2)
  expected = draws * weights / weights.sum()
  chi2 = np.sum((counts - expected) ** 2 / expected)
  assert chi2 < 80, chi2                        # 39 degrees of freedom: p ~ 1e-4 at 80
  entropy = _numpy_entropy(logits)
  low, high = entropy < np.quantile(entropy, 0.25), entropy > np.quantile(entropy, 0.75)
  assert counts[low].mean() > 2 * counts[high].mean()


def test_confident_pseudo_labels_take_the_scheduled_share():
  rng = np.random.default_rng(1)
  num = 200
  logits = rng.normal(size=(num, 4)) * 3
  scene = np.where(np.arange(num) < 100, 0, 1).astype(np.int32)
  scene[-5:] = -1                                         # padding
  weak = np.full(num, -1, np.int32)
  weak[[0, 1]] = [2, 3]                                  # scene 0 holds classes 2 and 3
  weak[150] = 1                                          # scene 1 holds class 1
  out = np.asarray(contrast.confident_pseudo_labels(
      jnp.asarray(logits, jnp.float32), jnp.asarray(weak), jnp.asarray(scene), 2,
      jnp.float32(0.3), jax.random.key(0)))
  pred = logits.argmax(-1)
  assert out[0] == 2 and out[1] == 3 and out[150] == 1   # weak labels kept
  pseudo = (out >= 0) & (weak < 0)
  assert np.all(out[pseudo] == pred[pseudo]) and not pseudo[-5:].any()
  for s, present in ((0, (2, 3)), (1, (1,))):
    for c in range(4):
      group = (scene == s) & (pred == c)
      picked = (pseudo & group).sum()
      if c in present:            # int(30%) of the group, less its weakly labelled voxels
        share = np.floor(0.3 * group.sum())
        assert share - (group & (weak >= 0)).sum() <= picked <= share
      else:
        assert picked == 0
  assert contrast.pseudo_label_fraction(99, 100) == 0.5


def test_confident_pseudo_labels_follow_weighted_sampling_without_replacement():
  """Per voxel, how often it is pseudo-labelled matches numpy's sequential weighted sampling
  without replacement (np.random.Generator.choice, weights exp(-H), floor(0.2 x 60) = 12
  of the group's 60 voxels), an independent sampler; confident voxels are chosen more."""
  rng = np.random.default_rng(4)
  num, draws = 60, 400
  logits = np.zeros((num, 2))
  logits[:, 0] = rng.uniform(0, 8, num)                  # every voxel predicted class 0
  weak = np.full(num, -1, np.int32)
  weak[0] = 0                                            # the scene holds class 0
  scene = np.zeros(num, np.int32)
  draw = jax.jit(lambda k: contrast.confident_pseudo_labels(
      jnp.asarray(logits, jnp.float32), jnp.asarray(weak), jnp.asarray(scene), 1,
      jnp.float32(0.2), k))
  ours = np.zeros(num)
  for i in range(draws):
    ours += np.asarray(draw(jax.random.key(i))) >= 0
  weights = np.exp(-_numpy_entropy(logits))
  reference = np.zeros(num)
  for _ in range(draws):
    reference[rng.choice(num, 12, replace=False, p=weights / weights.sum())] += 1
  ours, reference = ours[1:] / draws, reference[1:] / draws      # voxel 0 is weakly labelled
  assert np.abs(ours - reference).mean() < 0.05, np.abs(ours - reference).mean()
  confident = _numpy_entropy(logits)[1:] < np.median(_numpy_entropy(logits)[1:])
  assert ours[confident].mean() > 1.2 * ours[~confident].mean()


def test_voxel_labels_take_the_majority():
  labels = jnp.asarray([1, 1, 2, -1, 3, 3, 0])
  to_voxel = jnp.asarray([0, 0, 0, 1, 2, 2, 4])        # 4 = padding (V = 4)
  mask = jnp.asarray([True] * 6 + [False])
  counts = losses.voxel_label_counts(labels[None], to_voxel[None], mask[None], 4, 4)
  out = contrast.voxel_labels(counts[0])
  np.testing.assert_array_equal(np.asarray(out), [1, -1, 3, -1])
