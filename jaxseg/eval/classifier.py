"""The classifier a run's final evaluation leaves behind for inference: `<workdir>/classifier.npz`.

It holds the first evaluation seed's class centroids (unit rows, the super-voxel K-means or the
merged primitives) and the Hungarian match of its point-wise clusters to the classes, so a new
scan is labelled exactly as evaluation labelled the evaluation split: each point takes its
nearest centroid (cosine), whose matched class it gets.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np

from jaxseg.errors import InputError

FILE = "classifier.npz"
VERSION = 1


@dataclasses.dataclass(frozen=True)
class Classifier:
  """centroids f32 [K, D] unit rows; cluster_to_class int32 [K] (None: the labels are cluster
  ids, not classes); class_names of the classes."""
  centroids: np.ndarray
  cluster_to_class: np.ndarray | None
  class_names: tuple[str, ...]

  def labels(self, unit_features: np.ndarray) -> np.ndarray:
    """int32 (N,) the class (or cluster) of each unit feature row (N, D)."""
    clusters = np.argmax(np.asarray(unit_features) @ self.centroids.T, axis=1)
    if self.cluster_to_class is None:
      return clusters.astype(np.int32)
    return self.cluster_to_class[clusters].astype(np.int32)


def save(workdir: str, centroids: np.ndarray, cluster_to_class: np.ndarray,
         class_names: Sequence[str]) -> str:
  """Writes `<workdir>/classifier.npz` atomically; returns its path."""
  path = os.path.join(workdir, FILE)
  tmp = path + ".tmp.npz"
  np.savez(tmp, version=np.int32(VERSION), centroids=np.asarray(centroids, np.float32),
           cluster_to_class=np.asarray(cluster_to_class, np.int32),
           class_names=np.asarray(list(class_names)))
  os.replace(tmp, path)
  return path


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
      return Classifier(data["centroids"].astype(np.float32),
                        data["cluster_to_class"].astype(np.int32),
                        tuple(str(n) for n in data["class_names"]))
  except (OSError, ValueError, KeyError) as error:
    raise InputError(path, f"cannot be read ({error})",
                     "evaluate the run again (--config.mode=eval)") from error
