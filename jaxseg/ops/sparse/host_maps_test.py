"""Host kernel maps against brute-force dictionary look-ups."""

import numpy as np
import pytest

from jaxseg.ops.sparse import host_maps
from jaxseg.ops.sparse import keys as keys_lib
from tests import sparse_scenes as ss


def _brute_pairs(coords, kernel_size):
  row = {tuple(c): i for i, c in enumerate(coords.tolist())}
  displacement = keys_lib.kernel_offsets(kernel_size)
  pairs = []
  for o in range(kernel_size ** 3 // 2):
    for i, c in enumerate(coords):
      j = row.get(tuple(c + displacement[o]))
      if j is not None:
        pairs.append((o, i, j))
  return pairs


@pytest.mark.parametrize("grid,count,kernel_size", [((6, 5, 7), 120, 3), ((9, 9, 4), 250, 5),
                                                    ((3, 3, 3), 27, 5), ((4, 4, 4), 1, 3)])
def test_pairs_match_dictionary_lookup(grid, count, kernel_size):
  coords = ss.random_voxels(np.random.default_rng(count), grid, count)
  pairs = host_maps.neighbour_pairs(host_maps.host_keys(coords), kernel_size)
  got = list(zip(pairs.offset.tolist(), pairs.outputs.tolist(), pairs.inputs.tolist()))
  assert got == _brute_pairs(coords, kernel_size)   # grouped by offset, outputs ascending
  assert pairs.counts.sum() == len(got) and len(pairs.counts) == kernel_size ** 3 // 2


def test_levels_parents_and_corners_match_numpy():
  rng = np.random.default_rng(3)
  coords = ss.surface_voxels(rng, 24, 500)
  g = host_maps.build_scene_geometry(coords, ((5,), (3,), (3,), (3,)))
  np.testing.assert_array_equal(g.coords[0], coords)
  for level in range(1, 4):
    expected = np.unique(coords >> level, axis=0)       # lexicographic = key order
    np.testing.assert_array_equal(g.coords[level], expected)
    fine = g.coords[level - 1]
    np.testing.assert_array_equal(g.coords[level][g.parent[level - 1]], fine >> 1)
    np.testing.assert_array_equal(g.child_offset[level - 1],
                                  (fine[:, 0] & 1) * 4 + (fine[:, 1] & 1) * 2 + (fine[:, 2] & 1))
    row = {tuple(c): i for i, c in enumerate(expected.tolist())}
    for i, c in enumerate(expected):
      for j in range(8):
        d = np.array([(j >> 2) & 1, (j >> 1) & 1, j & 1])
        assert g.corners[level][i, j] == row.get(tuple(c + d), -1)
    assert set(g.pairs) == {(0, 5), (1, 3), (2, 3), (3, 3)}
  assert g.corners[0] is None and g.counts == [len(c) for c in g.coords]


def test_unsorted_or_duplicate_voxels_are_rejected():
  with pytest.raises(ValueError, match="sorted"):
    host_maps.build_scene_geometry(np.array([[1, 0, 0], [0, 0, 0]]), ((3,),))
  with pytest.raises(ValueError, match="unique"):
    host_maps.build_scene_geometry(np.array([[0, 0, 0], [0, 0, 0]]), ((3,),))
