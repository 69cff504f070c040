"""The classifier a run's final evaluation leaves behind for inference: `<workdir>/classifier.npz`.

It holds the first evaluation seed's class centroids (unit rows, the super-voxel K-means or the
merged primitives) and the Hungarian match of its clusters to the classes, one for each of the
evaluation's variants (point-wise, super-voxel pooled: each is matched on its own confusion),
so a new scan is labelled exactly as evaluation labelled the evaluation split: each point (or
super-voxel) takes its nearest centroid (cosine), whose class in that variant's match it gets.
Files written before the pooled match was kept have only the point-wise one, which pooled
labels then use.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np

from jaxseg.errors import InputError
from jaxseg.io import atomic

FILE = "classifier.npz"
VERSION = 1


@dataclasses.dataclass(frozen=True)
class Classifier:
  """centroids f32 [K, D] unit rows; cluster_to_class int32 [K] (None: the labels are cluster
  ids, not classes); class_names of the classes; pooled_cluster_to_class int32 [K], the match
  of the super-voxel pooled variant (None: the point-wise one serves both)."""
  centroids: np.ndarray
  cluster_to_class: np.ndarray | None
  class_names: tuple[str, ...]
  pooled_cluster_to_class: np.ndarray | None = None

  def labels(self, unit_features: np.ndarray, pooled: bool = False) -> np.ndarray:
    """int32 (N,) the class (or cluster) of each unit feature row (N, D), by the point-wise
    match or, with `pooled`, by the pooled variant's."""
    clusters = np.argmax(np.asarray(unit_features) @ self.centroids.T, axis=1)
    mapping = self.cluster_to_class
    if pooled and self.pooled_cluster_to_class is not None:
      mapping = self.pooled_cluster_to_class
    if mapping is None:
      return clusters.astype(np.int32)
    return mapping[clusters].astype(np.int32)


def save(workdir: str, centroids: np.ndarray, cluster_to_class: np.ndarray,
         class_names: Sequence[str], pooled_cluster_to_class: np.ndarray) -> str:
  """Writes `<workdir>/classifier.npz` atomically; returns its path."""
  path = os.path.join(workdir, FILE)
  return atomic.write_npz(path, {
      "version": np.int32(VERSION), "centroids": np.asarray(centroids, np.float32),
      "cluster_to_class": np.asarray(cluster_to_class, np.int32),
      "pooled_cluster_to_class": np.asarray(pooled_cluster_to_class, np.int32),
      "class_names": np.asarray(list(class_names))})


def load(workdir: str) -> Classifier | None:
  """The classifier of a run (None when it was never evaluated); InputError for a file of
  another version or a damaged one."""
  path = os.path.join(workdir, FILE)
  if not os.path.isfile(path):
    return None
  try:
    with np.load(path) as data:
      version = int(data["version"])
      if version != VERSION:
        raise InputError(path, f"classifier version {version}; this jaxseg reads version "
                         f"{VERSION}", "evaluate the run again with this version "
                         "(--config.mode=eval)")
      pooled = (data["pooled_cluster_to_class"].astype(np.int32)
                if "pooled_cluster_to_class" in data else None)
      return Classifier(data["centroids"].astype(np.float32),
                        data["cluster_to_class"].astype(np.int32),
                        tuple(str(n) for n in data["class_names"]), pooled)
  except (OSError, ValueError, KeyError) as error:
    raise InputError(path, f"cannot be read ({error})",
                     "evaluate the run again (--config.mode=eval)") from error
