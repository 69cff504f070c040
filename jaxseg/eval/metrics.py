"""Semantic-segmentation metrics for unsupervised clusters: confusion, Hungarian matching, scores.

  conf = jnp.zeros((C, K), jnp.int32)
  for batch in batches:                                   # device-side accumulation
    conf = confusion_update(conf, batch_labels, batch_clusters, batch_mask)
  scores = clustering_scores(np.asarray(conf), class_names)
  scores["miou"], scores["class_iou"]["wall"], scores["cluster_to_class"]
  summary = seed_summary([scores_seed_12, scores_seed_43, ...])  # mean / std over K-means seeds

Rows of a confusion matrix are ground-truth classes, columns are predicted clusters (or, once
mapped, predicted classes). Labels -1 (ignore) and everything outside [0, C) are not counted,
so GrowSP's S3DIS protocol (clutter = 12 with C = 12) needs no extra masking.

Conventions, compared with PointDC's `compute_seg_results` (lib/utils.py; GrowSP's is the same):
  * Matching: scipy `linear_sum_assignment` on the negated matrix maximises the number of
    matched points, the same optimum as the reference's sklearn 0.22 `linear_assignment(
    hist.max() - hist)`. The reference only matches square matrices; here K > C clusters map
    the ones left unmatched to their majority class, and K < C leaves classes without cluster.
  * Scores are in percent. oAcc = matched points / labelled points. A class that never occurs
    in the ground truth is EXCLUDED from mIoU and mAcc (its IoU / accuracy are reported as None).
    The reference instead computes IoU = tp / (tp + fp + fn + 1e-8), so an absent class counts
    as IoU 0 in mIoU, and its mAcc becomes NaN (0 / 0). When every class occurs (the full
    ScanNet val and S3DIS Area 5 splits) both conventions give the same numbers; on small
    subsets (the mini set) excluding absent classes is the only meaningful choice.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from jaxseg.errors import InputError

_HEADLINE = ("miou", "oacc", "macc")


def confusion_update(conf: jax.Array, labels: jax.Array, preds: jax.Array,
                     mask: Optional[jax.Array] = None) -> jax.Array:
  """Adds one batch to a confusion matrix (jittable, static shapes).

  The counts are one matmul of one-hot rows, one_hot(labels)^T @ one_hot(preds), instead of a
  scatter-add into C x K cells (which serialises on accelerators); exact in float32 up to
  2^24 points per batch.

  Args:
    conf: int32 [C, K], counts so far (rows ground truth, columns predicted cluster).
    labels: int [...], ground-truth class; -1 and values outside [0, C) are not counted.
    preds: int [...] (same shape), predicted cluster; values outside [0, K) are not counted.
    mask: bool [...] or None; False rows (padding) are not counted.
  Returns:
    int32 [C, K]: conf plus this batch's counts.
  """
  num_classes, num_clusters = conf.shape
  labels = jnp.asarray(labels).astype(jnp.int32).reshape(-1)
  preds = jnp.asarray(preds).astype(jnp.int32).reshape(-1)
  if mask is not None:
    labels = jnp.where(jnp.asarray(mask, bool).reshape(-1), labels, -1)
  rows = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)   # out of range -> zeros
  cols = jax.nn.one_hot(preds, num_clusters, dtype=jnp.float32)
  counts = jnp.dot(rows.T, cols, precision=jax.lax.Precision.HIGHEST)
  return conf + jnp.round(counts).astype(jnp.int32)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int,
                     num_clusters: int) -> np.ndarray:
  """Host version of `confusion_update` from zero: int labels / preds [...] -> int64 [C, K]."""
  labels = np.asarray(labels).reshape(-1).astype(np.int64)
  preds = np.asarray(preds).reshape(-1).astype(np.int64)
  if labels.shape != preds.shape:
    raise InputError("confusion_matrix", f"{labels.size} labels but {preds.size} predictions",
                     "pass one prediction per labelled point")
  valid = (labels >= 0) & (labels < num_classes) & (preds >= 0) & (preds < num_clusters)
  counts = np.bincount(labels[valid] * num_clusters + preds[valid],
                       minlength=num_classes * num_clusters)
  return counts.reshape(num_classes, num_clusters)


def _matrix(conf: Any, where: str) -> np.ndarray:
  conf = np.asarray(conf)
  if conf.ndim != 2 or conf.shape[0] == 0 or conf.shape[1] == 0:
    raise InputError(where, f"expected a non-empty 2-D confusion matrix, got shape {conf.shape}",
                     "pass counts [num_classes, num_clusters]")
  if (conf < 0).any():
    raise InputError(where, "the confusion matrix has negative counts",
                     "pass point counts (confusion_update / confusion_matrix)")
  return conf


def hungarian_match(conf: Any) -> np.ndarray:
  """One-to-one cluster -> class assignment maximising the matched points.

  Args:
    conf: [C, K] counts, rows ground-truth classes, columns clusters.
  Returns:
    int32 [K], the class of every cluster. Hungarian matching (scipy `linear_sum_assignment`
    on -conf) pairs min(C, K) clusters with distinct classes. When K > C the K - C clusters it
    leaves unmatched take their majority class (argmax of their column; an empty cluster gets
    class 0, which changes no count). When K < C every cluster is matched and the C - K classes
    left over get no cluster (they are never predicted).
  """
  conf = _matrix(conf, "hungarian_match")
  rows, cols = linear_sum_assignment(-conf.astype(np.float64))
  mapping = np.argmax(conf, axis=0).astype(np.int32)
  mapping[cols] = rows
  return mapping


def remap_confusion(conf: Any, cluster_to_class: np.ndarray) -> np.ndarray:
  """Merges cluster columns into class columns: [C, K] and int [K] -> int64 [C, C]."""
  conf = _matrix(conf, "remap_confusion")
  mapping = np.asarray(cluster_to_class, np.int64)
  if mapping.shape != (conf.shape[1],) or mapping.min() < 0 or mapping.max() >= conf.shape[0]:
    raise InputError("remap_confusion", f"mapping of shape {mapping.shape} does not map the "
                     f"{conf.shape[1]} clusters into [0, {conf.shape[0]})",
                     "use hungarian_match(conf)")
  out = np.zeros((conf.shape[0], conf.shape[0]), np.int64)
  np.add.at(out.T, mapping, conf.T.astype(np.int64))
  return out


def segmentation_scores(conf_classes: Any) -> dict[str, Any]:
  """mIoU / oAcc / mAcc (percent) of a class confusion matrix.

  Args:
    conf_classes: [C, C] counts, rows ground truth, columns predicted class.
  Returns:
    {'miou', 'oacc', 'macc': float, 'iou', 'acc': list of C floats (None for classes absent
    from the ground truth), 'present': list of C bools}. IoU_c = tp / (tp + fp + fn) and
    acc_c = tp / (tp + fn); mIoU and mAcc average the present classes only (see the module
    docstring for how this differs from the reference when a class is absent).
  """
  conf = _matrix(conf_classes, "segmentation_scores").astype(np.float64)
  if conf.shape[0] != conf.shape[1]:
    raise InputError("segmentation_scores", f"expected a square class matrix, got {conf.shape}",
                     "map clusters to classes first (clustering_scores or remap_confusion)")
  total = conf.sum()
  if total == 0:
    raise InputError("segmentation_scores", "the confusion matrix counts no labelled point",
                     "check that the labels are not all -1 and the masks select points")
  tp = np.diag(conf)
  gt = conf.sum(axis=1)
  union = gt + conf.sum(axis=0) - tp
  present = gt > 0
  iou = np.where(present, tp / np.maximum(union, 1), np.nan) * 100
  acc = np.where(present, tp / np.maximum(gt, 1), np.nan) * 100
  as_list = lambda v: [float(x) if ok else None for x, ok in zip(v, present)]
  return {"miou": float(iou[present].mean()), "oacc": float(tp.sum() / total * 100),
          "macc": float(acc[present].mean()), "iou": as_list(iou), "acc": as_list(acc),
          "present": [bool(p) for p in present]}


def clustering_scores(conf: Any, class_names: Sequence[str]) -> dict[str, Any]:
  """Hungarian-matched scores of a cluster confusion matrix.

  Args:
    conf: [C, K] counts, rows ground-truth classes, columns clusters.
    class_names: C names, in class-id order.
  Returns:
    `segmentation_scores` of the remapped [C, C] matrix plus 'cluster_to_class' (list of K
    ints, from `hungarian_match`), 'num_clusters' and 'class_iou' {name: IoU or None}.
  """
  conf = _matrix(conf, "clustering_scores")
  if len(class_names) != conf.shape[0]:
    raise InputError("clustering_scores", f"{len(class_names)} class names for a matrix with "
                     f"{conf.shape[0]} classes", "pass one name per confusion-matrix row")
  mapping = hungarian_match(conf)
  scores = segmentation_scores(remap_confusion(conf, mapping))
  scores["cluster_to_class"] = [int(c) for c in mapping]
  scores["num_clusters"] = int(conf.shape[1])
  scores["class_iou"] = dict(zip(class_names, scores["iou"]))
  return scores


def seed_summary(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """Mean and spread of scores over runs (e.g. K-means seeds).

  Args:
    runs: score dicts with 'miou', 'oacc', 'macc' (and optionally 'class_iou').
  Returns:
    {'num_seeds': n, 'miou' / 'oacc' / 'macc': {'mean', 'std', 'values'}, 'class_iou':
    {name: mean IoU or None}} (class_iou when every run has it). std is the POPULATION
    standard deviation (numpy ddof=0) of the per-seed values; 0 for a single run.
  """
  if not runs:
    raise InputError("seed_summary", "no runs to summarise", "pass at least one score dict")
  summary: dict[str, Any] = {"num_seeds": len(runs)}
  for key in _HEADLINE:
    values = np.asarray([float(run[key]) for run in runs], np.float64)
    summary[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=0)),
                    "values": values.tolist()}
  if all("class_iou" in run for run in runs):
    summary["class_iou"] = {}
    for name in runs[0]["class_iou"]:
      values = [run["class_iou"][name] for run in runs if run["class_iou"].get(name) is not None]
      summary["class_iou"][name] = float(np.mean(values)) if values else None
  return summary
