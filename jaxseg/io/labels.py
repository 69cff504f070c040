"""Class lists and label maps: ScanNet NYU40 -> 20 benchmark classes, S3DIS 13 classes."""

from __future__ import annotations

import csv
import functools
import io

import numpy as np

from jaxseg.errors import InputError
from jaxseg.io import files
from jaxseg.logging_utils import get_logger

_LOG = get_logger("io.labels")
IGNORE_LABEL = -1
NYU40_MAX = 40
# Ignore values of exports that already hold benchmark class indices (none is an NYU40 id).
_BENCHMARK_IGNORE = (-1, 255)

# The 20 ScanNet v2 benchmark classes and their NYU40 ids.
SCANNET_CLASSES = ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door",
                   "window", "bookshelf", "picture", "counter", "desk", "curtain",
                   "refrigerator", "shower curtain", "toilet", "sink", "bathtub",
                   "otherfurniture")
SCANNET_NYU40_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)

S3DIS_CLASSES = ("ceiling", "floor", "wall", "beam", "column", "window", "door", "table",
                 "chair", "sofa", "bookcase", "board", "clutter")


def class_names(num_classes: int) -> tuple[str, ...]:
  """ScanNet-20 or S3DIS-13 names for 20 or 13 classes, else 'class_i'."""
  if num_classes == len(SCANNET_CLASSES):
    return tuple(SCANNET_CLASSES)
  if num_classes == len(S3DIS_CLASSES):
    return tuple(S3DIS_CLASSES)
  return tuple(f"class_{i}" for i in range(num_classes))


def nyu40_to_scannet20(nyu40: np.ndarray) -> np.ndarray:
  """Maps NYU40 ids (any int array) to ScanNet-20 class indices; others -> -1 (int32)."""
  lut = np.full(256, IGNORE_LABEL, np.int32)
  lut[list(SCANNET_NYU40_IDS)] = np.arange(len(SCANNET_NYU40_IDS), dtype=np.int32)
  nyu40 = np.asarray(nyu40).astype(np.int64)
  out = np.full(nyu40.shape, IGNORE_LABEL, np.int32)
  inside = (nyu40 >= 0) & (nyu40 < 256)
  out[inside] = lut[nyu40[inside]]
  return out


def nyu40_file_to_scannet20(values: np.ndarray, source: str) -> np.ndarray:
  """Checked `nyu40_to_scannet20` for per-point labels read from a file.

  Args:
    values: integer (N,) labels that should be NYU40 ids (0 = unannotated, 1..40).
    source: the label file named in errors and warnings.

  Returns:
    int32 (N,) ScanNet-20 indices, -1 = ignore.

  Raises:
    InputError: labels outside NYU40's 0..40 (other than benchmark ignore values).

  Labels that are already ScanNet-20 indices (every value in 0..19 plus the ignore value -1 or
  255, which NYU40 never uses) are taken as such with a warning. Labels that are NYU40 but
  leave no point labelled, or only a few, get a warning too.
  """
  values = np.asarray(values).astype(np.int64)
  marked = np.isin(values, _BENCHMARK_IGNORE)
  named = values[~marked]
  outside = (named < 0) | (named > NYU40_MAX)
  if outside.any():
    examples = ", ".join(str(v) for v in np.unique(named[outside])[:5])
    raise InputError(source, f"{int(outside.sum())} of {values.size} labels are outside "
                     f"NYU40's 0..{NYU40_MAX} (e.g. {examples})",
                     "export NYU40 ids (0 = unannotated), as ScanNet's labels.ply and "
                     "VoteNet's _sem_label.npy hold them; other label sets need their own "
                     "mapping to NYU40 first")
  num_classes = len(SCANNET_NYU40_IDS)
  if marked.any() and (not named.size or named.max() < num_classes):
    _LOG.warning("%s: labels are already ScanNet-20 class indices (0..%d, with %s as ignore), "
                 "not NYU40 ids; used as they are", source, num_classes - 1,
                 "/".join(str(v) for v in np.unique(values[marked])))
    return np.where(marked, IGNORE_LABEL, values).astype(np.int32)
  mapped = nyu40_to_scannet20(values)
  labelled = float((mapped >= 0).mean()) if mapped.size else 1.0
  if labelled < 0.5:
    hint = (" All of them are below 20: if they are ScanNet-20 class indices, store the "
            "unlabelled points as -1 so they are recognised"
            if values.size and values.max() < num_classes else "")
    _LOG.warning("%s: only %.0f%% of the points have one of the 20 benchmark classes after "
                 "mapping NYU40 ids.%s", source, 100 * labelled, hint)
  return mapped


@functools.lru_cache(maxsize=4)
def read_raw_category_map(tsv_path: str) -> dict[str, int]:
  """Reads `scannetv2-labels.combined.tsv`: raw_category -> nyu40id."""
  text = files.read_bytes(tsv_path, "ScanNet label map",
                          "pass data.label_map=/path/to/scannetv2-labels.combined.tsv (it "
                          "ships with ScanNet)").decode("utf-8", errors="replace")
  reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t")
  if reader.fieldnames is None or not {"raw_category", "nyu40id"} <= set(reader.fieldnames):
    raise InputError(tsv_path, "missing columns raw_category / nyu40id",
                     "use the official scannetv2-labels.combined.tsv")
  mapping = {}
  for row in reader:
    try:
      if row["nyu40id"]:
        mapping[row["raw_category"]] = int(row["nyu40id"])
    except ValueError as e:
      raise InputError(tsv_path, f"nyu40id {row['nyu40id']!r} of {row['raw_category']!r} is not "
                       "an integer", "use the official scannetv2-labels.combined.tsv") from e
  return mapping
