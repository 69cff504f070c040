"""GrowSP's super-point side, on the host: fixed per-super-voxel statistics of the training set,
per-scene growing of super-voxels into M super-points, and the normal histogram ("PFH").

  stats = SupervoxelStats.from_source(source, num_classes)        # once per run
  groups = grow_scene(features, num_grown)                        # per scene, each round
  hist = normal_histogram(normals)                                # per grown super-point

Super-voxels of record i are rows stats.offsets[i]:stats.offsets[i + 1], in the order of the
record's segment ids, the same flat layout as `jaxseg.eval.passes.SceneTable`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from jaxseg.logging_utils import progress

HISTOGRAM_BINS = 10


@dataclasses.dataclass
class SupervoxelStats:
  """Fixed statistics of every super-voxel of a split (they do not depend on the network).

  offsets int64 [N + 1]; counts f32 [M] points; rgb f32 [M, 3] mean colour - 0.5 (the network
  input's colour); xyz f32 [M, 3] mean position minus the scene's mean (metres); normal f32
  [M, 3] mean normal (zeros without normals); class_counts int64 [M, C] ground-truth points
  per class (for the pseudo-label purity GrowSP logs).
  """
  offsets: np.ndarray
  counts: np.ndarray
  rgb: np.ndarray
  xyz: np.ndarray
  normal: np.ndarray
  class_counts: np.ndarray

  @classmethod
  def from_source(cls, source: Any, num_classes: int) -> "SupervoxelStats":
    parts = []
    for index in progress(range(len(source)), desc="super-voxel statistics"):
      parts.append(_record_stats(source[index], num_classes))
    sizes = [p[0].shape[0] for p in parts]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    arrays = [np.concatenate([p[k] for p in parts]) for k in range(5)]
    return cls(offsets, *arrays)


def _record_stats(record, num_classes: int):
  """(counts, rgb, xyz, normal, class_counts) of one record's super-voxels."""
  segments = np.asarray(record["segments"], np.int64)
  num_segments = int(record.get("num_segments", segments.max(initial=-1) + 1))
  coords = np.asarray(record["coords"], np.float64)
  colors = np.asarray(record["colors"], np.float64) / 255.0 - 0.5
  has_normals = bool(record.get("has_normals", "normals" in record))
  normals = (np.asarray(record["normals"], np.float64) if has_normals
             else np.zeros_like(coords))
  labels = np.asarray(record["labels"], np.int64)
  valid = segments >= 0
  ids = segments[valid]
  counts = np.bincount(ids, minlength=num_segments).astype(np.float64)
  centred = coords - (coords.mean(0) if len(coords) else 0.0)

  def mean(values):
    sums = np.stack([np.bincount(ids, values[valid][:, d], minlength=num_segments)
                     for d in range(values.shape[1])], 1)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)

  labelled = valid & (labels >= 0) & (labels < num_classes)
  class_counts = np.zeros((num_segments, num_classes), np.int64)
  np.add.at(class_counts, (segments[labelled], labels[labelled]), 1)
  return (counts.astype(np.float32), mean(colors), mean(centred), mean(normals), class_counts)


def grow_scene(features: np.ndarray, num_grown: int) -> np.ndarray:
  """GrowSP's growing of one scene: its super-voxels grouped into min(num_grown, S) super-points
  by scikit-learn K-means (n_init=5, random_state=0, as the reference).

  Args:
    features: f32 [S, D] per super-voxel: the unit neural feature and the weighted colour,
      position and normal means.
    num_grown: M, the super-points wanted.
  Returns:
    int32 [S] super-point of each super-voxel, in [0, min(M, S)).
  """
  rows = features.shape[0]
  if rows <= num_grown:
    return np.arange(rows, dtype=np.int32)
  kmeans = KMeans(n_clusters=num_grown, n_init=5, random_state=0)
  return kmeans.fit_predict(np.asarray(features, np.float64)).astype(np.int32)


def normal_histogram(normals: np.ndarray, bins: int = HISTOGRAM_BINS) -> np.ndarray:
  """The reference's shape descriptor of a super-point: a `bins`-bin histogram over [-1, 1]
  of the upper triangle (diagonal included) of the n x n matrix of normal dot products, the
  zeroed lower triangle counted too (torch.histc of torch.triu, as the reference computes it),
  normalised to sum 1.

  Args:
    normals: f32 [n, 3] (normalised here; zero rows stay zero).
  Returns:
    f32 [bins].
  """
  n = normals.shape[0]
  if n == 0:
    return np.zeros(bins, np.float32)
  norms = np.linalg.norm(normals, axis=1, keepdims=True)
  unit = np.asarray(normals, np.float64) / np.maximum(norms, 1e-12)
  # Clipped: a unit vector's dot with itself may round just above 1 (torch.histc would drop it).
  upper = np.clip((unit @ unit.T)[np.triu_indices(n)], -1.0, 1.0)
  hist, _ = np.histogram(upper, bins=bins, range=(-1.0, 1.0))
  # torch.histc puts a value on an inner edge into the upper bin, as np.histogram does; the
  # n(n-1)/2 zeros of the lower triangle land in the bin holding 0.
  zero_bin = min(int(np.floor((0.0 + 1.0) / (2.0 / bins))), bins - 1)
  hist = hist.astype(np.float64)
  hist[zero_bin] += n * (n - 1) / 2
  return (hist / hist.sum()).astype(np.float32)
