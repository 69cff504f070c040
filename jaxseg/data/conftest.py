"""Fixtures of the data layer's tests."""

import numpy as np
import pytest


def _random_rooms(sizes, seed=0, normals=()):
  """Scene records (the fields of the tfds datasets) of random rooms with `sizes` points each;
  rooms whose index is in `normals` carry random unit normals (the others carry zeros and
  has_normals False, like the records of scenes without normals)."""
  rng = np.random.default_rng(seed)
  records = []
  for i, n in enumerate(sizes):
    unit = rng.normal(size=(n, 3))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    records.append({
        "name": f"room{i}".encode(),
        "coords": (rng.random((n, 3)) * [3.0, 2.0, 1.0]).astype(np.float32),
        "colors": rng.integers(0, 256, (n, 3)).astype(np.uint8),
        "normals": (unit if i in normals else np.zeros((n, 3))).astype(np.float32),
        "has_normals": np.bool_(i in normals),
        "labels": rng.integers(-1, 5, n).astype(np.int32),
        "segments": rng.integers(-1, 6, n).astype(np.int32)})
  return records


@pytest.fixture
def random_rooms():
  """random_rooms(sizes, seed=0, normals=()) -> a list of scene records (`_random_rooms`)."""
  return _random_rooms
