"""GrowSP's super-point pieces against direct float64 computations of the reference's
definitions."""

import ml_collections
import numpy as np

from jaxseg.methods.growsp import method, superpoints


def test_normal_histogram_is_torch_histc_of_the_triu_matrix():
  """compute_hist: F.normalize, normal @ normal.T, torch.triu (lower triangle set to 0, still
  counted), histc over [-1, 1] in 10 bins, divided by the total."""
  rng = np.random.default_rng(0)
  normals = rng.normal(size=(37, 3)) * rng.uniform(0.5, 2.0, size=(37, 1))
  unit = normals / np.linalg.norm(normals, axis=1, keepdims=True)
  relation = np.triu(unit @ unit.T)            # the full n x n matrix, zeros below
  edges = np.linspace(-1, 1, 11)
  want = np.zeros(10)
  for value in np.clip(relation.ravel(), -1, 1):
    want[min(int(np.searchsorted(edges, value, side="right")) - 1, 9)] += 1
  np.testing.assert_allclose(superpoints.normal_histogram(normals), want / want.sum(),
                             atol=1e-6)
  assert superpoints.normal_histogram(np.zeros((0, 3))).sum() == 0


def test_growing_count_follows_the_reference_schedule():
  """M = int(80 - (epoch - start) / max_epoch * (80 - end)), floored at end."""
  g = ml_collections.ConfigDict({"grow_start": 80, "grow_end": 30, "growing_epochs": 600})
  assert [method.num_grown(g, e) for e in (0, 10, 300, 590, 600, 700)] == [
      80, int(80 - 10 / 600 * 50), 55, int(80 - 590 / 600 * 50), 30, 30]


def test_grow_scene_groups_into_at_most_m_super_points():
  rng = np.random.default_rng(1)
  centres = rng.normal(size=(4, 5)) * 10
  feats = np.repeat(centres, 6, axis=0) + rng.normal(size=(24, 5)) * 0.01
  groups = superpoints.grow_scene(feats, 4)
  assert len(np.unique(groups)) == 4
  for block in range(4):               # the four well separated blobs are recovered
    assert len(np.unique(groups[block * 6:(block + 1) * 6])) == 1
  np.testing.assert_array_equal(superpoints.grow_scene(feats[:3], 4), [0, 1, 2])


def test_supervoxel_stats_match_a_per_segment_loop():
  rng = np.random.default_rng(2)
  records = []
  for n, s in ((50, 6), (30, 4)):
    records.append({"coords": rng.uniform(0, 4, (n, 3)).astype(np.float32),
                    "colors": rng.integers(0, 256, (n, 3)).astype(np.uint8),
                    "normals": rng.normal(size=(n, 3)).astype(np.float32),
                    "has_normals": True, "segments": rng.integers(-1, s, n).astype(np.int32),
                    "num_segments": s, "labels": rng.integers(-1, 3, n).astype(np.int32)})
  stats = superpoints.SupervoxelStats.from_source(records, num_classes=3)
  np.testing.assert_array_equal(stats.offsets, [0, 6, 10])
  for i, record in enumerate(records):
    centre = record["coords"].astype(np.float64).mean(0)
    for k in range(record["num_segments"]):
      row = stats.offsets[i] + k
      members = record["segments"] == k
      assert stats.counts[row] == members.sum()
      if members.any():
        np.testing.assert_allclose(stats.rgb[row],
                                   record["colors"][members].mean(0) / 255 - 0.5, atol=1e-6)
        np.testing.assert_allclose(stats.xyz[row],
                                   (record["coords"][members] - centre).mean(0), atol=1e-5)
        np.testing.assert_allclose(stats.normal[row], record["normals"][members].mean(0),
                                   atol=1e-6)
      labels = record["labels"][members]
      np.testing.assert_array_equal(stats.class_counts[row],
                                    [np.sum(labels == c) for c in range(3)])
