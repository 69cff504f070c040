"""Packing against kernel maps built on the whole placed pack, and padding conventions."""

import numpy as np

from jaxseg.data import capacity
from jaxseg.data import packing
from jaxseg.ops.sparse import geometry as geo
from jaxseg.ops.sparse import host_maps
from tests import sparse_scenes as ss

SPEC = geo.GeometrySpec(((3, 5), (3,), (3,), (3,), (3,)), bands=((3, 3), (5, 4)),
                        child_bands=3)


def _pairs_by_coords(coords, inputs, outputs, offset):
  return sorted(zip(offset.tolist(), map(tuple, coords[outputs].tolist()),
                    map(tuple, coords[inputs].tolist())))


def test_stitched_maps_equal_maps_of_the_placed_pack():
  rng = np.random.default_rng(0)
  scenes = [ss.surface_voxels(rng, 40, n) for n in (400, 30, 250)]
  elements = [ss.scene_element(v, SPEC, np.zeros((len(v), 6)), i) for i, v in enumerate(scenes)]
  pack = packing.pack_scenes(elements, 3, SPEC)
  coords = pack.arrays["voxel_coords"]
  assert len(np.unique(coords, axis=0)) == len(coords)
  whole = host_maps.build_scene_geometry(coords[np.lexsort(coords.T[::-1])],
                                         SPEC.level_kernels)
  order = np.lexsort(coords.T[::-1])          # pack row -> row of the sorted whole cloud
  for level, kernels in enumerate(SPEC.level_kernels):
    level_coords = whole.coords[level]
    assert pack.arrays["level_counts"][level] == len(level_coords)
    for k in kernels:
      bands = range(SPEC.num_bands(k))
      inputs, outputs, offset = (
          [pack.arrays[geo.pair_key(level, k, b, part)] for b in bands]
          for part in ("inputs", "outputs", "offset"))
      assert sorted(np.concatenate(offset).tolist()) == list(range(k ** 3 // 2))
      counts = [(i >= 0).sum(axis=1) for i in inputs]      # pairs per offset, per band
      for band_counts, band_inputs in zip(counts, inputs):
        assert band_inputs.shape[1] == band_counts.max(initial=0)   # the band's widest
      flat = np.concatenate(counts)
      assert np.all(np.diff(flat) <= 0)                    # offsets by count, largest first
      np.testing.assert_array_equal(
          flat, whole.pairs[(level, k)].counts[np.concatenate(offset)])
      if level == 0:      # Pack rows are scene-major; compare through coordinates.
        rows = [(i[i >= 0], o[i >= 0], np.broadcast_to(f[:, None], i.shape)[i >= 0])
                for i, o, f in zip(inputs, outputs, offset)]
        got = _pairs_by_coords(coords, *(np.concatenate(part) for part in zip(*rows)))
        ref = whole.pairs[(0, k)]
        assert got == _pairs_by_coords(coords[order], ref.inputs, ref.outputs, ref.offset)
  # Child bands cover every voxel of a level once, each with its parent and child offset.
  for level in range(4):
    children = np.concatenate([pack.arrays[geo.link_key(level, "children", b)].reshape(-1)
                               for b in range(SPEC.child_bands)])
    assert sorted(children[children >= 0].tolist()) == list(
        range(pack.arrays["level_counts"][level]))


def test_placement_separates_scenes_at_every_level():
  offsets = packing.place([(300, 200), (1800, 50), (40, 40), (2000, 10)])
  assert np.all(offsets % packing.ALIGN == 0)
  assert offsets[1, 1] > offsets[0, 1] and offsets[3, 1] > offsets[1, 1]   # new shelves
  boxes = [(o, o + np.array([e[0], e[1], 1])) for o, e in
           zip(offsets, [(300, 200), (1800, 50), (40, 40), (2000, 10)])]
  for i, (lo_a, hi_a) in enumerate(boxes):
    for lo_b, hi_b in boxes[i + 1:]:
      gap = np.maximum(lo_b - hi_a, lo_a - hi_b)[:2].max()
      assert gap >= packing.GAP


def test_scenes_split_into_balanced_packs_and_pad_with_sentinels():
  rng = np.random.default_rng(1)
  scenes = [ss.random_voxels(rng, (9, 9, 9), n) for n in (300, 20, 200, 150, 40)]
  elements = [ss.scene_element(v, SPEC, np.ones((len(v), 6)), i) for i, v in enumerate(scenes)]
  packs = packing.pack_batch(elements, 2, 3, SPEC)
  sizes = [int(p.arrays["level_counts"][0]) for p in packs]
  assert sorted(sizes) == [350, 360]
  signature = capacity.tight(packing.batch_needs(packs))
  batch = packing.pad_packs(packs, signature, SPEC)
  assert batch["voxel_feats"].shape == (2, signature["voxels0"], 6)
  for g in range(2):
    n = sizes[g]
    assert batch["level0_mask"][g].sum() == n and np.all(batch["voxel_feats"][g, n:] == 0)
    assert np.all(batch["point_to_voxel"][g][~batch["point_mask"][g]] == signature["voxels0"])
    for level in range(5):
      cap = signature[f"voxels{level}"]
      for b in range(SPEC.num_bands(3)):
        band = batch[geo.pair_key(level, 3, b, "inputs")][g]
        assert band.shape[1] == signature[f"pairs{level}_k3_b{b}"]
        assert band.min() >= 0 and band.max() <= cap
    corners = batch[geo.corners_key(1)][g]
    assert corners.min() >= 0 and corners.max() <= signature["voxels1"]
    assert set(batch["scene_index"][g][batch["scene_index"][g] >= 0]) <= set(range(5))


def _with_views(element, num_views, rows_per_view, valid):
  """The element with view_* arrays as `ViewSampler` makes them (rows -1 padded)."""
  width = max([len(r) for r in rows_per_view], default=0)
  rows = np.full((num_views, width), -1, np.int32)
  for v, r in enumerate(rows_per_view):
    rows[v, :len(r)] = r
  return dict(element, view_images=np.full((num_views, 2, 3, 3), 7, np.uint8),
              view_world_to_camera=np.tile(np.eye(4, dtype=np.float32), (num_views, 1, 1)),
              view_intrinsics=np.tile(np.eye(3, dtype=np.float32), (num_views, 1, 1)),
              view_valid=np.asarray(valid, bool), view_seed=np.arange(num_views, dtype=np.int32),
              view_rows=rows)


def test_view_rows_follow_their_scene_into_the_pack():
  """Views of packed scenes: rows shifted by the scene's level-0 offset, -1 padding and empty
  slots become the C_0 sentinel, and an empty pack gets invalid views."""
  rng = np.random.default_rng(2)
  scenes = [ss.random_voxels(rng, (9, 9, 9), n) for n in (120, 80, 60)]
  base = [ss.scene_element(v, SPEC, np.ones((len(v), 6)), i) for i, v in enumerate(scenes)]
  elements = [_with_views(base[0], 2, [[0, 5, 119], [3]], [True, True]),
              _with_views(base[1], 2, [[79, 1]], [True, False]),
              _with_views(base[2], 2, [], [False, False])]          # a scene without frames
  packs = packing.pack_batch(elements, 2, 2, SPEC)                  # 1 + 2 scenes
  signature = capacity.tight(packing.batch_needs(packs))
  assert signature["view_points"] >= 3
  batch = packing.pad_packs(packs, signature, SPEC)
  cap = signature["voxels0"]
  assert batch["view_rows"].shape == (2, 2, 2, signature["view_points"])
  assert batch["view_images"].shape == (2, 2, 2, 2, 3, 3)
  for g, pack in enumerate(packs):
    indices = [int(i) for i in pack.arrays["scene_index"] if i >= 0]
    offset = 0
    for slot, index in enumerate(indices):
      element = elements[index]
      want = np.where(element["view_rows"] >= 0, element["view_rows"] + offset, cap)
      got = batch["view_rows"][g, slot, :, :want.shape[1]]
      np.testing.assert_array_equal(got, want)
      assert np.all(batch["view_rows"][g, slot, :, want.shape[1]:] == cap)
      np.testing.assert_array_equal(batch["view_valid"][g, slot], element["view_valid"])
      # The rows point at this scene's voxels: their coordinates are the scene's, placed.
      coords = batch["voxel_coords"][g][got[got < cap]]
      placed = element["voxel_coords"][want[want < cap] - offset]
      assert np.all(coords - placed == (coords - placed)[:1])
      offset += len(element["voxel_coords"])
    for slot in range(len(indices), 2):                            # empty slots
      assert not batch["view_valid"][g, slot].any()
      assert np.all(batch["view_rows"][g, slot] == cap)
  assert sorted(len([i for i in p.arrays["scene_index"] if i >= 0]) for p in packs) == [1, 2]
  # A pack without scenes (the filler of a short batch): invalid views, sentinel rows.
  packs = packing.pack_batch(elements[:1], 2, 2, SPEC)
  signature = capacity.tight(packing.batch_needs(packs))
  batch = packing.pad_packs(packs, signature, SPEC)
  empty = [g for g, p in enumerate(packs) if (p.arrays["scene_index"] < 0).all()]
  assert len(empty) == 1
  assert not batch["view_valid"][empty[0]].any()
  assert np.all(batch["view_rows"][empty[0]] == signature["voxels0"])


def test_scene_rows_list_each_slots_voxels():
  """A spec with scene_rows: each slot lists its scene's pack rows (they hold the scene's
  voxels, placed), C_0 pads them and fills empty slots; the need is the largest scene."""
  spec = geo.GeometrySpec(((),), scene_rows=True)
  rng = np.random.default_rng(3)
  scenes = [ss.random_voxels(rng, (9, 9, 9), n) for n in (120, 80, 60)]
  elements = [ss.scene_element(v, spec, np.ones((len(v), 6)), i) for i, v in enumerate(scenes)]
  packs = packing.pack_batch(elements, 2, 3, spec)                  # 1 + 2 scenes, a slot empty
  needs = packing.batch_needs(packs)
  assert needs["scene_voxels"] == 120
  signature = capacity.tight(needs)
  batch = packing.pad_packs(packs, signature, spec)
  cap = signature["voxels0"]
  assert batch[geo.SCENE_ROWS].shape == (2, 3, signature["scene_voxels"])
  for g, pack in enumerate(packs):
    listed = []
    for slot, index in enumerate(pack.arrays["scene_index"]):
      rows = batch[geo.SCENE_ROWS][g, slot]
      if index < 0:
        assert np.all(rows == cap)
        continue
      own = rows[rows < cap]
      voxels = elements[index]["voxel_coords"]
      assert len(own) == len(voxels) and np.all(rows[len(own):] == cap)
      placed = batch["voxel_coords"][g][own]
      assert np.all(placed - voxels == (placed - voxels)[:1])
      listed += own.tolist()
    assert sorted(listed) == list(range(int(batch["level0_mask"][g].sum())))
