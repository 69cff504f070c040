"""Sparse labels, reproducible: which points of each training scene keep their label.

  chosen = select_weak_labels(labels, coords, name, ratio=0.001, by="voxel", seed=0)
  save(path, {name: chosen, ...}, settings); load(path) -> ({name: indices}, settings)
  source = WeakLabelSource(records, chosen_by_record)     # the split with thinned labels

The reference (COARSE3D's gen_*_weak_label_rand_grid.py) labels round(N x ratio) 6 cm voxels,
drawn uniformly among voxels with a labelled point, and every labelled point of a chosen voxel
("voxel propagation", so more points than the nominal ratio), without a seed. Here the draw is
seeded by (seed, the scene's name), so the same seed gives the same labels whatever the
dataset's order, process count or machine; `by='point'` draws single points instead, and
`points_per_scene` fixes the count instead of the ratio. The chosen indices are saved with the
run (`weak_labels.npz`) so another method can train on exactly the same labels.
"""

from __future__ import annotations

import json
import os
import zlib
from typing import Any, Mapping, Sequence

import numpy as np

from jaxseg.errors import InputError
from jaxseg.io import atomic

BY = ("voxel", "point")
FILE_NAME = "weak_labels.npz"


def scene_generator(seed: int, name: str) -> np.random.Generator:
  """The generator of one scene's draw: seeded by (seed, crc32 of its name)."""
  return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _count(total: int, ratio: float, points_per_scene: int) -> int:
  """How many units (points or voxels) to draw: points_per_scene when set, else
  round(total x ratio), at least 1 and at most `total`."""
  want = points_per_scene if points_per_scene > 0 else int(round(total * ratio))
  return int(min(max(want, 1), total))


def select_weak_labels(labels: np.ndarray, coords: np.ndarray, name: str, *, ratio: float,
                       by: str = "voxel", voxel_size: float = 0.06, points_per_scene: int = 0,
                       seed: int = 0) -> np.ndarray:
  """int64 sorted indices of the points of one scene that keep their label.

  Args:
    labels: int (N,) ground truth, -1 = unlabelled (never chosen).
    coords: float (N, 3) metres.
    name: the scene's name (seeds its draw with `seed`).
    ratio: fraction of the scene's points (0.001 = 0.1%); ignored with points_per_scene.
    by: 'voxel': round(N x ratio) voxels of `voxel_size` among those with a labelled point,
      and every labelled point in them (the reference); 'point': that many labelled points.
    points_per_scene: draw this many units (voxels or points) instead (0: use ratio).
  """
  if by not in BY:
    raise InputError("weak.by", f"unknown selection {by!r}", f"use one of {list(BY)}")
  labelled = np.flatnonzero(np.asarray(labels) >= 0)
  if labelled.size == 0:
    return np.zeros(0, np.int64)
  rng = scene_generator(seed, name)
  if by == "point":
    count = _count(len(labels), ratio, points_per_scene)
    return np.sort(rng.choice(labelled, min(count, labelled.size), replace=False))
  cells = np.floor(np.asarray(coords, np.float64)[labelled] / voxel_size).astype(np.int64)
  _, cell_of_point = np.unique(cells, axis=0, return_inverse=True)
  cell_of_point = cell_of_point.reshape(-1)
  num_cells = int(cell_of_point.max()) + 1
  count = _count(len(labels), ratio, points_per_scene)
  chosen_cells = rng.choice(num_cells, min(count, num_cells), replace=False)
  return np.sort(labelled[np.isin(cell_of_point, chosen_cells)])


def select_for_records(source: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]
                       ) -> dict[str, np.ndarray]:
  """{scene name: chosen indices} of every record of a split (`select_weak_labels` with
  `settings`: ratio, by, voxel_size, points_per_scene, seed)."""
  from jaxseg.data.tfds_builders import record_text  # pylint: disable=g-import-not-at-top
  chosen = {}
  for index in range(len(source)):
    record = source[index]
    name = record_text(record["name"])
    if name in chosen:
      raise InputError(name, "two training scenes have this name",
                       "give every scene its own name (weak labels are keyed by name)")
    chosen[name] = select_weak_labels(
        np.asarray(record["labels"]), np.asarray(record["coords"]), name,
        ratio=float(settings["ratio"]), by=str(settings["by"]),
        voxel_size=float(settings["voxel_size"]),
        points_per_scene=int(settings["points_per_scene"]), seed=int(settings["seed"]))
  return chosen


def save(path: str, chosen: Mapping[str, np.ndarray], settings: Mapping[str, Any]) -> str:
  """Writes {scene: indices} and the settings that drew them as one .npz (atomically)."""
  arrays = {f"scene/{name}": np.asarray(idx, np.int64) for name, idx in chosen.items()}
  arrays["settings"] = np.asarray(json.dumps(dict(settings), sort_keys=True))
  return atomic.write_npz(path, arrays)


def load(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """({scene: indices}, settings) of a file written by `save`; InputError naming the file
  when it is missing or not such a file."""
  if os.path.isdir(path):
    path = os.path.join(path, FILE_NAME)
  if not os.path.isfile(path):
    raise InputError(path, "no weak-label file", f"pass a run's {FILE_NAME} or its work "
                     "directory (weak.labels_from)")
  try:
    with np.load(path, allow_pickle=False) as data:
      settings = json.loads(str(data["settings"]))
      chosen = {key[len("scene/"):]: np.asarray(data[key], np.int64) for key in data.files
                if key.startswith("scene/")}
  except (OSError, ValueError, KeyError) as e:
    raise InputError(path, f"not a weak-label file ({e})",
                     f"pass a {FILE_NAME} written by a COARSE3D run") from e
  return chosen, settings


class WeakLabelSource:
  """A split's records with every label not chosen set to -1 (random access, picklable).

  source: the split's records; chosen: {scene name: indices}; a scene missing from it keeps
  no label.
  """

  def __init__(self, source: Any, chosen: Mapping[str, np.ndarray]):
    self._source, self._chosen = source, dict(chosen)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, Any]:
    from jaxseg.data.tfds_builders import record_text  # pylint: disable=g-import-not-at-top
    record = dict(self._source[index])
    labels = np.asarray(record["labels"])
    weak = np.full_like(labels, -1)
    keep = self._chosen.get(record_text(record["name"]), np.zeros(0, np.int64))
    weak[keep] = labels[keep]
    record["labels"] = weak
    return record


def summary(chosen: Mapping[str, np.ndarray], source: Sequence[Mapping[str, Any]]) -> str:
  """'1,234 labelled points of 650,000 (0.19%) in 13 scenes'."""
  total = sum(len(np.asarray(source[i]["labels"])) for i in range(len(source)))
  picked = sum(len(v) for v in chosen.values())
  return (f"{picked:,} labelled points of {total:,} ({100 * picked / max(total, 1):.3g}%) in "
          f"{len(chosen)} scenes")

