"""Super-voxel oracle: the best a super-voxel-constant labelling can score.

Every super-voxel takes the majority ground-truth label of its labelled points; points with
ground truth -1 are ignored; points outside every super-voxel (segment -1) and super-voxels
without labelled points predict -1, which counts as wrong. mIoU averages IoU over the classes
present in the ground truth.
"""

from __future__ import annotations

import numpy as np

from jaxseg.errors import InputError


def majority_labels(segments: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """int32 (N,) per-point prediction: the majority GT label of the point's super-voxel.

  Args:
    segments: int (N,) super-voxel ids, -1 = none.
    labels: int (N,) GT classes >= 0, -1 = ignore.
  Ties go to the smaller class id; -1 where the super-voxel has no labelled point.
  """
  segments = np.asarray(segments, np.int64)
  labels = np.asarray(labels, np.int64)
  if segments.shape != labels.shape or segments.ndim != 1:
    raise InputError(None, f"segments {segments.shape} and labels {labels.shape} differ",
                     "pass one segment id and one label per point")
  prediction = np.full(labels.shape, -1, np.int32)
  both = (segments >= 0) & (labels >= 0)
  if not both.any():
    return prediction
  num_segments = int(segments.max()) + 1
  num_classes = int(labels.max()) + 1
  votes = np.bincount(segments[both] * num_classes + labels[both],
                      minlength=num_segments * num_classes).reshape(num_segments, num_classes)
  winner = np.where(votes.any(axis=1), votes.argmax(axis=1), -1)
  in_segment = segments >= 0
  prediction[in_segment] = winner[segments[in_segment]]
  return prediction


def confusion(prediction: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
  """int64 (C, C+1) confusion over labelled points: rows GT, columns prediction, last = -1."""
  labels = np.asarray(labels, np.int64)
  prediction = np.asarray(prediction, np.int64)
  valid = labels >= 0
  column = np.where(prediction[valid] >= 0, prediction[valid], num_classes)
  return np.bincount(labels[valid] * (num_classes + 1) + column,
                     minlength=num_classes * (num_classes + 1)).reshape(num_classes,
                                                                        num_classes + 1)


def scores_from_confusion(matrix: np.ndarray) -> dict:
  """mIoU (classes present in GT), oAcc and per-class IoU (NaN if absent) from `confusion`."""
  num_classes = matrix.shape[0]
  true_positive = np.diag(matrix[:, :num_classes]).astype(np.float64)
  gt_count = matrix.sum(axis=1).astype(np.float64)
  predicted_count = matrix[:, :num_classes].sum(axis=0).astype(np.float64)
  present = gt_count > 0
  union = gt_count + predicted_count - true_positive
  iou = np.full(num_classes, np.nan)
  iou[present] = true_positive[present] / union[present]
  total = gt_count.sum()
  return {"miou": float(np.mean(iou[present])) if present.any() else float("nan"),
          "oacc": float(true_positive.sum() / total) if total else float("nan"),
          "per_class_iou": iou}


def oracle_scores(segments: np.ndarray, labels: np.ndarray, num_classes: int | None = None
                  ) -> dict:
  """Oracle mIoU / oAcc of a super-voxel partition plus the confusion matrix.

  Args:
    segments: int (N,) super-voxel ids, -1 = none.
    labels: int (N,) GT in [0, num_classes), -1 = ignore.
    num_classes: C; default max(labels) + 1.
  Returns:
    dict with miou, oacc, per_class_iou float64 (C,), confusion int64 (C, C+1),
    num_segments (distinct ids >= 0), coverage (fraction of points in a super-voxel).
  """
  labels = np.asarray(labels)
  if num_classes is None:
    num_classes = int(labels.max()) + 1 if labels.size else 0
  prediction = majority_labels(segments, labels)
  matrix = confusion(prediction, labels, num_classes)
  result = scores_from_confusion(matrix)
  segments = np.asarray(segments)
  result.update(confusion=matrix, num_segments=int(np.unique(segments[segments >= 0]).size),
                coverage=float(np.mean(segments >= 0)) if segments.size else float("nan"))
  return result
