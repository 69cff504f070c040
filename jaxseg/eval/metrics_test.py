"""Metrics against brute force, scipy and float64 numpy hand computations."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from jaxseg.errors import InputError
from jaxseg.eval import metrics


def _brute_force_best(conf):
  """All assignments of the C classes to distinct clusters (C <= K): best total and argmax."""
  c, k = conf.shape
  best, best_perm, ties = -1, None, 0
  for perm in itertools.permutations(range(k), c):
    total = sum(conf[i, perm[i]] for i in range(c))
    if total > best:
      best, best_perm, ties = total, perm, 1
    elif total == best:
      ties += 1
  return best, best_perm, ties


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_hungarian_matches_brute_force_on_square_matrices(size):
  rng = np.random.default_rng(size)
  for _ in range(20):
    conf = rng.integers(0, 50, (size, size))
    mapping = metrics.hungarian_match(conf)
    assert mapping.dtype == np.int32 and sorted(mapping) == list(range(size))  # a permutation
    best, perm, ties = _brute_force_best(conf)
    assert conf[mapping, np.arange(size)].sum() == best
    if ties == 1:  # a unique optimum must be found exactly: class i <- cluster perm[i]
      np.testing.assert_array_equal(mapping[list(perm)], np.arange(size))


def test_hungarian_agrees_with_scipy_on_a_large_matrix():
  rng = np.random.default_rng(0)
  conf = rng.integers(0, 10_000, (20, 20))
  mapping = metrics.hungarian_match(conf)
  rows, cols = linear_sum_assignment(conf.max() - conf)  # the reference's cost form
  assert conf[mapping, np.arange(20)].sum() == conf[rows, cols].sum()


def test_more_clusters_than_classes_unmatched_take_their_majority_class():
  rng = np.random.default_rng(1)
  checked = 0
  for _ in range(20):
    conf = rng.integers(0, 1000, (3, 5))
    best, perm, ties = _brute_force_best(conf)
    if ties > 1:
      continue
    expected = np.argmax(conf, axis=0)   # every cluster votes for its majority class ...
    expected[list(perm)] = np.arange(3)  # ... except the optimally matched ones
    np.testing.assert_array_equal(metrics.hungarian_match(conf), expected)
    checked += 1
  assert checked >= 15
  # A hand example: clusters 0-2 match classes 0-2, clusters 3 and 4 are mostly class 1 / 2.
  conf = np.array([[9, 0, 0, 1, 0],
                   [0, 8, 0, 6, 1],
                   [0, 0, 7, 2, 5]])
  np.testing.assert_array_equal(metrics.hungarian_match(conf), [0, 1, 2, 1, 2])


def test_fewer_clusters_than_classes_leave_classes_unpredicted():
  conf = np.array([[5, 1],
                   [0, 0],
                   [1, 9],
                   [4, 2]])
  mapping = metrics.hungarian_match(conf)
  np.testing.assert_array_equal(mapping, [0, 2])
  scores = metrics.clustering_scores(conf, ["a", "b", "c", "d"])
  assert scores["present"] == [True, False, True, True]
  assert scores["class_iou"]["d"] == 0.0 and scores["class_iou"]["b"] is None


def _hand_scores(conf):
  """float64 per-class loops, written independently of the vectorised code."""
  c = conf.shape[0]
  ious, accs = [], []
  for i in range(c):
    tp = float(conf[i, i])
    fn = float(sum(conf[i, j] for j in range(c) if j != i))
    fp = float(sum(conf[j, i] for j in range(c) if j != i))
    if tp + fn == 0:
      ious.append(None)
      accs.append(None)
    else:
      ious.append(100.0 * tp / (tp + fp + fn))
      accs.append(100.0 * tp / (tp + fn))
  total = float(sum(conf[i, j] for i in range(c) for j in range(c)))
  oacc = 100.0 * sum(float(conf[i, i]) for i in range(c)) / total
  present = [x for x in ious if x is not None]
  present_acc = [x for x in accs if x is not None]
  return sum(present) / len(present), oacc, sum(present_acc) / len(present_acc), ious, accs


def test_segmentation_scores_match_a_hand_computation():
  rng = np.random.default_rng(2)
  conf = rng.integers(0, 100, (6, 6))
  conf[4] = 0                # class 4 never in the ground truth ...
  conf[0, 4] = 17            # ... but predicted for some class-0 points
  scores = metrics.segmentation_scores(conf)
  miou, oacc, macc, ious, accs = _hand_scores(conf)
  assert scores["miou"] == pytest.approx(miou, abs=1e-9)
  assert scores["oacc"] == pytest.approx(oacc, abs=1e-9)
  assert scores["macc"] == pytest.approx(macc, abs=1e-9)
  assert scores["present"] == [True, True, True, True, False, True]
  for got, want in zip(scores["iou"] + scores["acc"], ious + accs):
    assert (got is None and want is None) or got == pytest.approx(want, abs=1e-9)


def test_scores_equal_the_reference_formula_when_every_class_is_present():
  """PointDC's compute_seg_results (tp / (tp + fp + fn + 1e-8), Hungarian on max - hist)."""
  rng = np.random.default_rng(3)
  labels = rng.integers(0, 5, 4000)
  preds = np.where(rng.random(4000) < 0.6, (labels + 2) % 5, rng.integers(0, 5, 4000))
  hist = np.bincount(5 * labels + preds, minlength=25).reshape(5, 5)
  rows, cols = linear_sum_assignment(hist.max() - hist)
  oacc = hist[rows, cols].sum() / hist.sum() * 100
  macc = np.mean(hist[rows, cols] / hist.sum(1)) * 100
  hist_new = hist[:, cols].astype(np.float64)
  tp = np.diag(hist_new)
  iou = tp / (tp + (hist_new.sum(0) - tp) + (hist_new.sum(1) - tp) + 1e-8)
  scores = metrics.clustering_scores(metrics.confusion_matrix(labels, preds, 5, 5), list("abcde"))
  assert scores["oacc"] == pytest.approx(oacc, abs=1e-6)
  assert scores["macc"] == pytest.approx(macc, abs=1e-6)
  assert scores["miou"] == pytest.approx(np.nanmean(iou) * 100, abs=1e-4)
  assert scores["oacc"] > 50  # the permuted predictions were recovered


def test_confusion_update_matches_numpy_with_padding_and_ignore_labels():
  rng = np.random.default_rng(4)
  conf = jnp.zeros((4, 6), jnp.int32)
  update = jax.jit(metrics.confusion_update)
  expected = np.zeros((4, 6), np.int64)
  for _ in range(3):
    labels = rng.integers(-1, 5, (2, 50))    # -1 ignore and 4 (>= C) are not counted
    preds = rng.integers(-1, 7, (2, 50))     # -1 and 6 (>= K) are not counted
    mask = rng.random((2, 50)) < 0.8
    conf = update(conf, jnp.asarray(labels), jnp.asarray(preds), jnp.asarray(mask))
    for lab, pred, ok in zip(labels.ravel(), preds.ravel(), mask.ravel()):
      if ok and 0 <= lab < 4 and 0 <= pred < 6:
        expected[lab, pred] += 1
  assert conf.dtype == jnp.int32
  np.testing.assert_array_equal(np.asarray(conf), expected)
  keep = mask.ravel()
  np.testing.assert_array_equal(
      metrics.confusion_matrix(labels.ravel()[keep], preds.ravel()[keep], 4, 6),
      np.asarray(metrics.confusion_update(jnp.zeros((4, 6), jnp.int32), labels, preds, mask)))


def test_seed_summary_uses_population_std():
  runs = [{"miou": 20.0, "oacc": 60.0, "macc": 30.0, "class_iou": {"a": 10.0, "b": None}},
          {"miou": 24.0, "oacc": 62.0, "macc": 33.0, "class_iou": {"a": 20.0, "b": None}}]
  summary = metrics.seed_summary(runs)
  assert summary["num_seeds"] == 2
  assert summary["miou"] == {"mean": 22.0, "std": 2.0, "values": [20.0, 24.0]}
  assert summary["oacc"]["std"] == pytest.approx(np.std([60.0, 62.0]))
  assert summary["class_iou"] == {"a": 15.0, "b": None}


def test_bad_inputs_raise_input_error():
  with pytest.raises(InputError, match="2-D"):
    metrics.hungarian_match(np.zeros(3))
  with pytest.raises(InputError, match="no labelled point"):
    metrics.segmentation_scores(np.zeros((2, 2)))
  with pytest.raises(InputError, match="class names"):
    metrics.clustering_scores(np.ones((2, 2)), ["a"])
  with pytest.raises(InputError, match="no runs"):
    metrics.seed_summary([])
