"""Kernel maps and downsampling against brute-force numpy look-ups."""

import jax
import numpy as np
import pytest

from jaxseg.ops.sparse import keys as keys_lib
from jaxseg.ops.sparse import kernel_map
from tests.sparse_scenes import random_batch


@pytest.mark.parametrize("capacity,counts,kernel_size", [(64, (40, 17), 3), (100, (99, 5), 5)])
def test_neighbours_match_dictionary_lookup(capacity, counts, kernel_size):
  rng = np.random.default_rng(capacity)
  coords, _, mask = random_batch(rng, (6, 5, 7), counts, capacity, 1)
  level = kernel_map.build_level(coords, mask, (kernel_size,))
  nbr = np.asarray(level.neighbours[kernel_size])
  r = kernel_size // 2
  offsets = [(a, b, c) for a in range(-r, r + 1) for b in range(-r, r + 1)
             for c in range(-r, r + 1)]
  for b in range(len(counts)):
    row_of = {tuple(coords[b, i]): i for i in range(capacity) if mask[b, i]}
    expected = np.full((len(offsets), capacity), capacity)
    for i in range(capacity):
      if mask[b, i]:
        for o, d in enumerate(offsets):
          expected[o, i] = row_of.get(tuple(coords[b, i] + np.asarray(d)), capacity)
    np.testing.assert_array_equal(nbr[b], expected)


def test_downsample_matches_numpy_unique():
  rng = np.random.default_rng(0)
  coords, _, mask = random_batch(rng, (8, 9, 6), (120, 30), 128, 1)
  level = kernel_map.build_level(coords, mask, ())
  coarse_coords, coarse_mask, link = kernel_map.downsample(level, 96)
  for b in range(2):
    parents = np.unique(coords[b][mask[b]] >> 1, axis=0)     # lexicographic = key order
    n = len(parents)
    assert coarse_mask[b].sum() == n and bool(np.all(coarse_mask[b, :n]))
    np.testing.assert_array_equal(np.asarray(coarse_coords)[b, :n], parents)
    for i in range(128):
      p = int(link.parent[b, i])
      if not mask[b, i]:
        assert p == 96
        continue
      np.testing.assert_array_equal(np.asarray(coarse_coords)[b, p], coords[b, i] >> 1)
      o = int(link.child_offset[b, i])
      assert o == (coords[b, i, 0] % 2) * 4 + (coords[b, i, 1] % 2) * 2 + coords[b, i, 2] % 2
      assert int(link.children[b, p, o]) == i
    assert int((np.asarray(link.children[b]) < 128).sum()) == mask[b].sum()
  assert not np.any(np.asarray(link.overflow))


def test_downsample_overflow_is_flagged_and_drops_cleanly():
  rng = np.random.default_rng(1)
  coords, _, mask = random_batch(rng, (8, 8, 8), (60,), 64, 1)
  num_parents = len(np.unique(coords[0][mask[0]] >> 1, axis=0))
  _, coarse_mask, link = kernel_map.downsample(kernel_map.build_level(coords, mask, ()), 8)
  assert num_parents > 8 and bool(link.overflow[0]) and int(coarse_mask[0].sum()) == 8
  assert int(np.max(link.parent)) == 8


def test_pyramid_levels_and_corners_match_numpy():
  rng = np.random.default_rng(2)
  coords, _, mask = random_batch(rng, (16, 16, 4), (200,), 256, 1)
  levels, links = jax.jit(lambda c, m: kernel_map.build_pyramid(
      c, m, [(5,), (3,), (3,)], (256, 160, 64)))(coords, mask)
  assert [lvl.capacity for lvl in levels] == [256, 160, 64]
  assert len(links) == 2 and set(levels[0].neighbours) == {5} and levels[0].corners is None
  expected = np.unique(coords[0][mask[0]] >> 2, axis=0)
  got = np.asarray(levels[2].coords[0])[np.asarray(levels[2].mask[0])]
  np.testing.assert_array_equal(got, expected)
  row = {tuple(c): i for i, c in enumerate(got.tolist())}
  corners = np.asarray(levels[2].corners[0])
  for i, c in enumerate(got):
    for j, d in enumerate(kernel_map.CORNER_OFFSETS):
      assert corners[i, j] == row.get(tuple(c + d), 64)


def test_keys_are_ordered_like_coordinates():
  rng = np.random.default_rng(3)
  coords = np.stack([rng.integers(0, lim, 500) for lim in keys_lib.COORD_LIMITS], -1)
  coords[0] = np.asarray(keys_lib.COORD_LIMITS) - 1
  keys = np.asarray(keys_lib.encode_keys(coords))
  assert keys.dtype == np.int32 and np.all(keys >= 0)
  np.testing.assert_array_equal(np.argsort(keys, kind="stable"),
                                np.lexsort(coords.T[::-1]))
