"""Oracle metric vs a hand-computed example and a scikit-learn based implementation."""

import collections

import numpy as np
import pytest
from sklearn import metrics

from jaxseg.supervoxels import oracle


def test_hand_computed_example():
  segments = np.array([0, 0, 0, 1, 1, -1, 2, 2])
  labels = np.array([1, 1, 0, 2, -1, 0, -1, -1])
  np.testing.assert_array_equal(oracle.majority_labels(segments, labels),
                                [1, 1, 1, 2, 2, -1, -1, -1])
  result = oracle.oracle_scores(segments, labels, num_classes=4)
  # class 0: TP 0 / union 2; class 1: TP 2 / union 3; class 2: 1 / 1; class 3 absent.
  assert result["miou"] == pytest.approx((0 + 2 / 3 + 1) / 3)
  assert result["oacc"] == pytest.approx(3 / 5)
  assert np.isnan(result["per_class_iou"][3])
  assert result["num_segments"] == 3
  assert result["coverage"] == pytest.approx(7 / 8)


def _sklearn_oracle(segments, labels, num_classes):
  prediction = np.full(len(labels), -1)
  for s in np.unique(segments[segments >= 0]):
    votes = collections.Counter(labels[(segments == s) & (labels >= 0)].tolist())
    if votes:
      prediction[segments == s] = max(votes, key=lambda c: (votes[c], -c))
  valid = labels >= 0
  matrix = metrics.confusion_matrix(labels[valid], prediction[valid],
                                    labels=list(range(num_classes)) + [-1])
  ious = []
  for c in range(num_classes):
    if matrix[c].sum():
      ious.append(matrix[c, c] / (matrix[c].sum() + matrix[:, c].sum() - matrix[c, c]))
  return np.mean(ious), metrics.accuracy_score(labels[valid], prediction[valid])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn(seed):
  rng = np.random.default_rng(seed)
  n, num_classes = 3000, 7
  segments = rng.integers(-1, 120, size=n)
  # Labels correlated with segments so majorities are meaningful, plus noise and ignores.
  labels = np.where(rng.random(n) < 0.7, (segments * 5) % num_classes,
                    rng.integers(0, num_classes - 1, size=n))
  labels[rng.random(n) < 0.1] = -1
  expected_miou, expected_oacc = _sklearn_oracle(segments, labels, num_classes)
  result = oracle.oracle_scores(segments, labels, num_classes)
  assert result["miou"] == pytest.approx(expected_miou, abs=1e-12)
  assert result["oacc"] == pytest.approx(expected_oacc, abs=1e-12)
