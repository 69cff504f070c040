"""Weak-label selection: reproducible, the reference's voxel propagation, saved and reloaded."""

import numpy as np
import pytest

from jaxseg.errors import InputError
from jaxseg.methods.coarse3d import weak_labels


def _scene(n=20000, seed=0):
  rng = np.random.default_rng(seed)
  coords = rng.uniform(0, 4, (n, 3))
  labels = rng.integers(-1, 20, n)
  return coords, labels


def test_same_seed_same_labels_other_seed_other_labels():
  coords, labels = _scene()
  kwargs = {"ratio": 0.001, "by": "voxel"}
  first = weak_labels.select_weak_labels(labels, coords, "scene0000_00", seed=3, **kwargs)
  again = weak_labels.select_weak_labels(labels.copy(), coords.copy(), "scene0000_00", seed=3,
                                         **kwargs)
  np.testing.assert_array_equal(first, again)
  other_seed = weak_labels.select_weak_labels(labels, coords, "scene0000_00", seed=4, **kwargs)
  other_scene = weak_labels.select_weak_labels(labels, coords, "scene0001_00", seed=3, **kwargs)
  assert not np.array_equal(first, other_seed) and not np.array_equal(first, other_scene)


def test_voxel_selection_labels_every_labelled_point_of_the_chosen_voxels():
  coords, labels = _scene()
  coords = coords / 4.0          # a 1 m cube: about 4 points per 6 cm voxel
  chosen = weak_labels.select_weak_labels(labels, coords, "s", ratio=0.001, by="voxel",
                                          voxel_size=0.06, seed=0)
  assert np.all(labels[chosen] >= 0)
  cells = [tuple(c) for c in np.floor(coords / 0.06).astype(int)]
  chosen_cells = {cells[i] for i in chosen}
  assert len(chosen_cells) == round(len(labels) * 0.001)        # 20 voxels
  expected = [i for i in range(len(labels)) if labels[i] >= 0 and cells[i] in chosen_cells]
  np.testing.assert_array_equal(chosen, expected)
  assert len(chosen) > 2 * len(chosen_cells)              # voxel propagation: several each


def test_point_selection_and_fixed_counts():
  coords, labels = _scene()
  by_point = weak_labels.select_weak_labels(labels, coords, "s", ratio=0.001, by="point")
  assert len(by_point) == 20 and np.all(labels[by_point] >= 0)
  fixed = weak_labels.select_weak_labels(labels, coords, "s", ratio=0.5, by="point",
                                         points_per_scene=7)
  assert len(fixed) == 7
  every = weak_labels.select_weak_labels(labels, coords, "s", ratio=1.0, by="point")
  np.testing.assert_array_equal(every, np.flatnonzero(labels >= 0))
  assert weak_labels.select_weak_labels(np.full(5, -1), coords[:5], "s", ratio=1.0,
                                        by="point").size == 0
  with pytest.raises(InputError, match="unknown selection"):
    weak_labels.select_weak_labels(labels, coords, "s", ratio=0.1, by="box")


def test_saved_labels_reload_and_thin_the_records(tmp_path):
  coords, labels = _scene(200)
  records = [{"name": b"a", "labels": labels, "coords": coords},
             {"name": b"b", "labels": labels[::-1].copy(), "coords": coords}]
  settings = {"ratio": 0.05, "by": "point", "voxel_size": 0.06, "points_per_scene": 0,
              "seed": 1}
  chosen = weak_labels.select_for_records(records, settings)
  path = weak_labels.save(str(tmp_path / weak_labels.FILE_NAME), chosen, settings)
  loaded, loaded_settings = weak_labels.load(str(tmp_path))
  assert loaded_settings == settings and loaded.keys() == chosen.keys()
  for name in chosen:
    np.testing.assert_array_equal(loaded[name], chosen[name])
  source = weak_labels.WeakLabelSource(records, loaded)
  thinned = source[1]["labels"]
  keep = chosen["b"]
  np.testing.assert_array_equal(thinned[keep], records[1]["labels"][keep])
  assert np.sum(thinned >= 0) == len(keep)
  assert "20 labelled points of 400 (5%) in 2 scenes" == weak_labels.summary(chosen, records)
  (tmp_path / "bad.npz").write_bytes(b"not a zip")
  with pytest.raises(InputError, match="not a weak-label file"):
    weak_labels.load(str(tmp_path / "bad.npz"))
  with pytest.raises(InputError, match="no weak-label file"):
    weak_labels.load(str(tmp_path / "missing"))
  assert path.endswith(weak_labels.FILE_NAME)
