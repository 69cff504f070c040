"""Class lists and label maps: ScanNet NYU40 -> 20 benchmark classes, S3DIS 13 classes."""

from __future__ import annotations

import csv
import functools
import os

import numpy as np

from jaxseg.errors import InputError

IGNORE_LABEL = -1

# The 20 ScanNet v2 benchmark classes and their NYU40 ids.
SCANNET_CLASSES = ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door",
                   "window", "bookshelf", "picture", "counter", "desk", "curtain",
                   "refrigerator", "shower curtain", "toilet", "sink", "bathtub",
                   "otherfurniture")
SCANNET_NYU40_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)

S3DIS_CLASSES = ("ceiling", "floor", "wall", "beam", "column", "window", "door", "table",
                 "chair", "sofa", "bookcase", "board", "clutter")


def nyu40_to_scannet20(nyu40: np.ndarray) -> np.ndarray:
  """Maps NYU40 ids (any int array) to ScanNet-20 class indices; others -> -1 (int32)."""
  lut = np.full(256, IGNORE_LABEL, np.int32)
  lut[list(SCANNET_NYU40_IDS)] = np.arange(len(SCANNET_NYU40_IDS), dtype=np.int32)
  nyu40 = np.asarray(nyu40).astype(np.int64)
  out = np.full(nyu40.shape, IGNORE_LABEL, np.int32)
  inside = (nyu40 >= 0) & (nyu40 < 256)
  out[inside] = lut[nyu40[inside]]
  return out


@functools.lru_cache(maxsize=4)
def read_raw_category_map(tsv_path: str) -> dict[str, int]:
  """Reads `scannetv2-labels.combined.tsv`: raw_category -> nyu40id."""
  if not os.path.isfile(tsv_path):
    raise InputError(tsv_path, "ScanNet label map not found",
                     "pass data.label_map=/path/to/scannetv2-labels.combined.tsv (it ships "
                     "with ScanNet)")
  mapping = {}
  with open(tsv_path, newline="") as f:
    reader = csv.DictReader(f, delimiter="\t")
    if reader.fieldnames is None or not {"raw_category", "nyu40id"} <= set(reader.fieldnames):
      raise InputError(tsv_path, "missing columns raw_category / nyu40id",
                       "use the official scannetv2-labels.combined.tsv")
    for row in reader:
      if row["nyu40id"]:
        mapping[row["raw_category"]] = int(row["nyu40id"])
  return mapping
