"""Packing a batch's scenes into G buffers ("packs", one per device shard) and padding them.

A pack is one point cloud made of several scenes: their voxels are laid side by side in x-y
(offsets multiples of 16 voxels, at least 32 voxels apart, so no kernel, pooling or
interpolation window at any of the 5 levels reaches across scenes), their rows are concatenated,
and per-scene operations use segment ids: `point_scene` (slot of the scene in the pack) and
pack-wide super-voxel ids (`point_segments`, a scene's ids shifted by `scene_segment_offset`).

`pack_batch` (in the input workers) builds ragged packs and their needs: the row counts of
every padded quantity. `pad_packs` (in the main process, once the capacity policy has chosen
the signature) pads them to those capacities and stacks them: every array gets a leading pack
axis G.

Padded batch (P points, S super-voxels, C_l voxels at level l, Z scene slots per pack):
  point_coords / point_colors / point_normals f32 [G, P, 3], point_labels / point_index i32,
  point_segments i32 [G, P] (pack-wide id, -1 none), point_to_voxel i32 [G, P] (C_0 on
  padding), point_scene i32 [G, P] (-1 on padding), point_mask bool [G, P];
  voxel_feats f32 [G, C_0, 6], voxel_coords i32 [G, C_0, 3] (placed), level{l}_mask;
  the geometry fields of `jaxseg.ops.sparse.geometry.batch_keys`;
  scene_index i32 [G, Z] (-1 for empty slots), scene_segment_offset / scene_num_segments,
  scene_transform f32 [G, Z, 4, 4] (the augmentation; identity for empty slots);
  segment_scene i32 [G, S] (slot of each super-voxel's scene, -1 on padding), segment_*
  extras [G, S, ...] (e.g. distillation targets), zero on padding rows;
  with posed views (`jaxseg.methods.clurender.views`): view_images u8 [G, Z, N_r, H, W, 3],
  view_world_to_camera f32 [G, Z, N_r, 4, 4], view_intrinsics f32 [G, Z, N_r, 3, 3],
  view_valid bool [G, Z, N_r] (False for empty slots) and view_rows i32 [G, Z, N_r, M] (pack
  voxel rows each view can see, C_0 on padding; M the capacity of the need 'view_points');
  with `spec.scene_rows`: scene_rows i32 [G, Z, L] (each slot's voxel rows, C_0 on padding; L
  the capacity of the need 'scene_voxels').
Points of a pack are ordered by pack-wide super-voxel id (points without one, then padding,
last), so pooling can treat the ids as sorted.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from jaxseg.data.voxelize import NUM_FEATURES
from jaxseg.errors import InputError
from jaxseg.ops.sparse import geometry as geo
from jaxseg.ops.sparse import keys as keys_lib

ALIGN = 16    # 2^4: placement offsets keep q mod 2^l at every level l <= 4.
GAP = 32      # Empty voxels between scenes: 2 cells at level 4 (kernel radius 1, +1 corner).
SHELF_WIDTH = keys_lib.COORD_LIMITS[0]

POINT_FIELDS = {"point_coords": 0.0, "point_colors": 0.0, "point_normals": 0.0,
                "point_labels": -1, "point_segments": -1, "point_index": -1}


@dataclasses.dataclass
class Pack:
  """One ragged pack: arrays (host numpy, unpadded) and needs {quantity: rows}."""
  arrays: dict[str, Any]
  needs: dict[str, int]


def place(extents: Sequence[Sequence[int]]) -> np.ndarray:
  """x-y offsets of scenes with voxel extents (ex, ey) laid out in shelves of SHELF_WIDTH:
  int32 (n, 3) offsets (z = 0), multiples of ALIGN, at least GAP apart."""
  def up(v):
    return -(-int(v) // ALIGN) * ALIGN
  offsets, x, y, shelf = [], 0, 0, 0
  for ex, ey in extents:
    if x and x + ex > SHELF_WIDTH:
      x, y, shelf = 0, up(y + shelf + GAP), 0
    offsets.append((x, y, 0))
    x, shelf = up(x + ex + GAP), max(shelf, ey)
  return np.asarray(offsets, np.int32).reshape(-1, 3)


def _bands(inputs, outputs, offset, num_offsets, num_bands):
  """Rows grouped by offset -> bands: offsets sorted by their row count (largest first) and
  split into `num_bands` groups of fixed sizes; per band (inputs [n_b, M_b], outputs
  [n_b, M_b] with -1 in unused slots, offsets [n_b]), M_b the band's largest count."""
  counts = np.bincount(offset, minlength=num_offsets)
  first = np.concatenate([[0], np.cumsum(counts)[:-1]])
  order = np.argsort(-counts, kind="stable")
  bands = []
  for members in np.array_split(order, num_bands):
    width = int(counts[members].max(initial=0))
    band_in = np.full((len(members), width), -1, np.int32)
    band_out = np.full((len(members), width), -1, np.int32)
    for row, o in enumerate(members):
      rows = slice(first[o], first[o] + counts[o])
      band_in[row, :counts[o]], band_out[row, :counts[o]] = inputs[rows], outputs[rows]
    bands.append((band_in, band_out, members.astype(np.int32)))
  return bands


def _stable_by(key: np.ndarray, *arrays):
  order = np.argsort(key, kind="stable")
  return [a[order] for a in arrays]


def _pack_geometry(elements, spec: geo.GeometrySpec, row_offsets: np.ndarray) -> dict:
  """Pair-list bands, child bands, parents and corners of the stitched scenes.

  row_offsets: int (scenes, L + 1) first pack row of each scene at each level.
  """
  out = {}
  num_levels = spec.num_levels
  for level, kernels in enumerate(spec.level_kernels):
    for k in kernels:
      lists = [e["geometry"].pairs[(level, k)] for e in elements]
      shift = [row_offsets[i, level] for i in range(len(elements))]
      offset = np.concatenate([p.offset for p in lists])
      inputs = np.concatenate([p.inputs + s for p, s in zip(lists, shift)])
      outputs = np.concatenate([p.outputs + s for p, s in zip(lists, shift)])
      inputs, outputs, offset = _stable_by(offset, inputs, outputs, offset)
      for b, band in enumerate(_bands(inputs, outputs, offset, k ** 3 // 2,
                                      spec.num_bands(k))):
        for part, value in zip(("inputs", "outputs", "offset"), band):
          out[geo.pair_key(level, k, b, part)] = value
  for level in range(num_levels - 1):
    child_offset = np.concatenate([e["geometry"].child_offset[level] for e in elements])
    parent = np.concatenate([e["geometry"].parent[level] + row_offsets[i, level + 1]
                             for i, e in enumerate(elements)])
    children = np.arange(child_offset.size, dtype=np.int32)
    children, parents, offset = _stable_by(child_offset, children, parent, child_offset)
    for b, band in enumerate(_bands(children, parents, offset, 8, spec.child_bands)):
      for part, value in zip(("children", "parents", "offset"), band):
        out[geo.link_key(level, part, b)] = value
    out[geo.link_key(level, "parent")] = parent.astype(np.int32)
    corners = [np.where(e["geometry"].corners[level + 1] >= 0,
                        e["geometry"].corners[level + 1] + row_offsets[i, level + 1], -1)
               for i, e in enumerate(elements)]
    out[geo.corners_key(level + 1)] = np.concatenate(corners).astype(np.int32)
  return out


def _pack_points(elements, voxel_offsets, segment_offsets) -> dict:
  fields = {k: np.concatenate([e[k] for e in elements]) for k in POINT_FIELDS}
  fields["point_to_voxel"] = np.concatenate(
      [e["point_to_voxel"] + o for e, o in zip(elements, voxel_offsets)]).astype(np.int32)
  fields["point_scene"] = np.concatenate(
      [np.full(len(e["point_to_voxel"]), i, np.int32) for i, e in enumerate(elements)])
  fields["point_segments"] = np.concatenate(
      [np.where(e["point_segments"] >= 0, e["point_segments"] + o, -1)
       for e, o in zip(elements, segment_offsets)]).astype(np.int32)
  total = int(sum(e["num_segments"] for e in elements))
  key = np.where(fields["point_segments"] >= 0, fields["point_segments"], total)
  order = np.argsort(key, kind="stable")
  return {k: v[order] for k, v in fields.items()}


def _empty_pack(slots: int, spec: geo.GeometrySpec) -> Pack:
  """A pack without scenes (the filler of a short evaluation batch)."""
  arrays = {k: np.zeros((0, 3) if isinstance(v, float) else (0,),
                        np.float32 if isinstance(v, float) else np.int32)
            for k, v in POINT_FIELDS.items()}
  arrays.update({"point_to_voxel": np.zeros(0, np.int32), "point_scene": np.zeros(0, np.int32),
                 "voxel_feats": np.zeros((0, NUM_FEATURES), np.float32),
                 "voxel_coords": np.zeros((0, 3), np.int32),
                 "level_counts": np.zeros(spec.num_levels, np.int64),
                 "scene_index": np.full(slots, -1, np.int32),
                 "scene_segment_offset": np.zeros(slots, np.int32),
                 "scene_num_segments": np.zeros(slots, np.int32),
                 "scene_transform": np.tile(np.eye(4, dtype=np.float32), (slots, 1, 1))})
  needs = {"points": 0, "segments": 0}
  needs.update({f"voxels{l}": 0 for l in range(spec.num_levels)})
  if spec.scene_rows:
    arrays[geo.SCENE_ROWS] = np.full((slots, 0), -1, np.int32)
    needs["scene_voxels"] = 0
  if spec.engine == "pairs":
    needs.update({key: 0 for key in band_needs(spec)})
  return Pack(arrays, needs)


def pack_scenes(elements: Sequence[Mapping[str, Any]], slots: int,
                spec: geo.GeometrySpec) -> Pack:
  """One ragged pack of up to `slots` processed scenes (`pipeline.process_scene` outputs)."""
  if len(elements) > slots:
    raise ValueError(f"{len(elements)} scenes for {slots} slots")
  if not elements:
    return _empty_pack(slots, spec)
  num_levels = spec.num_levels
  level_counts = np.array([e["level_counts"] for e in elements], np.int64).reshape(
      len(elements), num_levels)
  row_offsets = np.concatenate([np.zeros((1, num_levels), np.int64),
                                np.cumsum(level_counts, axis=0)[:-1]])
  num_segments = np.array([int(e["num_segments"]) for e in elements], np.int64)
  segment_offsets = np.concatenate([[0], np.cumsum(num_segments)[:-1]]).astype(np.int64)
  offsets = place([np.ptp(e["voxel_coords"], axis=0)[:2] + 1 if len(e["voxel_coords"])
                   else (1, 1) for e in elements])
  coords = np.concatenate([e["voxel_coords"] + o for e, o in zip(elements, offsets)]
                          ).astype(np.int32).reshape(-1, 3)
  if spec.engine == "dense" and coords.size and np.any(
      coords.max(axis=0) >= np.asarray(keys_lib.COORD_LIMITS)):
    raise InputError("model.engine", f"the {len(elements)} scenes of a pack span "
                     f"{(coords.max(axis=0) + 1).tolist()} voxels, more than the dense engine's "
                     f"int32 key range {list(keys_lib.COORD_LIMITS)}",
                     "use model.engine=pairs (no size limit), a smaller batch per device or a "
                     "larger voxel size")
  arrays = _pack_points(elements, row_offsets[:, 0], segment_offsets)
  arrays["voxel_feats"] = np.concatenate([e["voxel_feats"] for e in elements]).astype(
      np.float32)
  arrays["voxel_coords"] = coords
  arrays["level_counts"] = level_counts.sum(axis=0)
  scene_index = np.full(slots, -1, np.int32)
  scene_index[:len(elements)] = [int(e["scene_index"]) for e in elements]
  arrays["scene_index"] = scene_index
  arrays["scene_segment_offset"] = np.zeros(slots, np.int32)
  arrays["scene_segment_offset"][:len(elements)] = segment_offsets
  arrays["scene_num_segments"] = np.zeros(slots, np.int32)
  arrays["scene_num_segments"][:len(elements)] = num_segments
  arrays["scene_transform"] = np.tile(np.eye(4, dtype=np.float32), (slots, 1, 1))
  arrays["scene_transform"][:len(elements)] = [e["transform"] for e in elements]
  for key in sorted(k for k in elements[0] if k.startswith("segment_")):
    arrays[key] = np.concatenate([e[key] for e in elements])
  needs = {"points": len(arrays["point_to_voxel"]), "segments": int(num_segments.sum())}
  if "view_rows" in elements[0]:
    arrays.update(_pack_views(elements, slots, row_offsets[:, 0]))
    needs["view_points"] = arrays["view_rows"].shape[-1]
  needs.update({f"voxels{l}": int(n) for l, n in enumerate(arrays["level_counts"])})
  if spec.scene_rows:
    arrays[geo.SCENE_ROWS] = _scene_rows(level_counts[:, 0], row_offsets[:, 0], slots)
    needs["scene_voxels"] = arrays[geo.SCENE_ROWS].shape[1]
  if spec.engine == "pairs":
    arrays.update(_pack_geometry(elements, spec, row_offsets))
    for key in band_needs(spec):
      arrays_key = _band_array(key)
      needs[key] = arrays[arrays_key].shape[1]
  return Pack(arrays, needs)


def _scene_rows(counts: np.ndarray, offsets: np.ndarray, slots: int) -> np.ndarray:
  """int32 [slots, max count]: the pack rows of each scene's voxels (offset + 0..count-1),
  -1 beyond a scene's count and in empty slots."""
  rows = np.full((slots, int(counts.max())), -1, np.int32)
  for slot, (count, offset) in enumerate(zip(counts, offsets)):
    rows[slot, :count] = offset + np.arange(count)
  return rows


def _pack_views(elements, slots: int, voxel_offsets: np.ndarray) -> dict[str, np.ndarray]:
  """The scenes' view_* arrays per slot (empty slots: zeros, no valid view); view_rows
  shifted to pack rows, [slots, N_r, M] with M the widest scene's, -1 padded."""
  first = elements[0]
  out = {k: np.zeros((slots,) + first[k].shape, first[k].dtype)
         for k in first if k.startswith("view_") and k != "view_rows"}
  width = max(e["view_rows"].shape[1] for e in elements)
  out["view_rows"] = np.full((slots, first["view_rows"].shape[0], width), -1, np.int32)
  for slot, (e, offset) in enumerate(zip(elements, voxel_offsets)):
    for key in out:
      if key != "view_rows":
        out[key][slot] = e[key]
    rows = e["view_rows"]
    out["view_rows"][slot, :, :rows.shape[1]] = np.where(rows >= 0, rows + offset, -1)
  return out


def need_weights(spec: geo.GeometrySpec) -> dict[str, float]:
  """Rows each unit of a band need stands for (`capacity.work`): 2 x the band's offsets for
  pair lists (each list serves its offset and the mirrored one), the band's offsets for child
  lists; other needs count 1."""
  weights = {}
  for level, kernels in enumerate(spec.level_kernels):
    for k in kernels:
      for b, size in enumerate(_band_sizes(k ** 3 // 2, spec.num_bands(k))):
        weights[f"pairs{level}_k{k}_b{b}"] = 2.0 * size
  for level in range(spec.num_levels - 1):
    for b, size in enumerate(_band_sizes(8, spec.child_bands)):
      weights[f"children{level}_b{b}"] = float(size)
  return weights


def band_needs(spec: geo.GeometrySpec) -> list[str]:
  """The need names of the pair-list bands: pairs{l}_k{k}_b{b} and children{l}_b{b}."""
  names = [f"pairs{level}_k{k}_b{b}" for level, kernels in enumerate(spec.level_kernels)
           for k in kernels for b in range(spec.num_bands(k))]
  return names + [f"children{level}_b{b}" for level in range(spec.num_levels - 1)
                  for b in range(spec.child_bands)]


def _band_array(need: str) -> str:
  """The batch field whose width a band need measures."""
  if need.startswith("pairs"):
    level, kernel, band = need[len("pairs"):].split("_")
    return geo.pair_key(int(level), int(kernel[1:]), int(band[1:]), "inputs")
  level, band = need[len("children"):].split("_")
  return geo.link_key(int(level), "children", int(band[1:]))


def split_scenes(elements: Sequence[Mapping[str, Any]], num_packs: int,
                 slots: int) -> list[list[int]]:
  """Indices of the elements of each pack: scenes of similar total size per pack (largest
  first to the pack with the fewest voxels so far), at most `slots` each."""
  packs, load = [[] for _ in range(num_packs)], np.zeros(num_packs)
  sizes = [len(e["voxel_coords"]) for e in elements]
  for i in sorted(range(len(elements)), key=lambda i: (-sizes[i], i)):
    open_packs = [p for p in range(num_packs) if len(packs[p]) < slots]
    target = min(open_packs, key=lambda p: (load[p], p))
    packs[target].append(i)
    load[target] += sizes[i]
  return [sorted(p) for p in packs]


def pack_batch(elements: Sequence[Mapping[str, Any]], num_packs: int, slots: int,
               spec: geo.GeometrySpec) -> list[Pack]:
  """A batch's processed scenes -> `num_packs` ragged packs of `slots` scene slots each."""
  if len(elements) > num_packs * slots:
    raise ValueError(f"{len(elements)} scenes do not fit {num_packs} packs of {slots}")
  return [pack_scenes([elements[i] for i in rows], slots, spec)
          for rows in split_scenes(elements, num_packs, slots)]


def batch_needs(packs: Sequence[Pack]) -> dict[str, int]:
  """The element-wise maximum of the packs' needs (they share one signature)."""
  names = set().union(*(p.needs for p in packs))
  return {q: max(p.needs.get(q, 0) for p in packs) for q in sorted(names)}


def _pad_rows(array: np.ndarray, rows: int, value) -> np.ndarray:
  out = np.full((rows,) + array.shape[1:], value, array.dtype)
  out[:array.shape[0]] = array
  return out


def _sentinel(array: np.ndarray, value: int) -> np.ndarray:
  return np.where(array < 0, value, array).astype(np.int32)


def pad_pack(pack: Pack, signature: Mapping[str, int], spec: geo.GeometrySpec) -> dict:
  """One pack padded to `signature` (fixed shapes, sentinels as in the module docstring)."""
  a = pack.arrays
  num_points, num_segments = signature["points"], signature["segments"]
  caps = [signature[f"voxels{l}"] for l in range(spec.num_levels)]
  out = {k: _pad_rows(a[k], num_points, v) for k, v in POINT_FIELDS.items()}
  out["point_to_voxel"] = _pad_rows(a["point_to_voxel"], num_points, caps[0])
  out["point_scene"] = _pad_rows(a["point_scene"], num_points, -1)
  out["point_mask"] = np.arange(num_points) < len(a["point_to_voxel"])
  out["voxel_feats"] = _pad_rows(a["voxel_feats"], caps[0], 0.0)
  out["voxel_coords"] = _pad_rows(a["voxel_coords"], caps[0], 0)
  for level, cap in enumerate(caps):
    out[geo.mask_key(level)] = np.arange(cap) < a["level_counts"][level]
  for key in ("scene_index", "scene_segment_offset", "scene_num_segments", "scene_transform"):
    out[key] = a[key]
  segment_scene = np.repeat(np.arange(len(a["scene_num_segments"]), dtype=np.int32),
                            a["scene_num_segments"])
  out["segment_scene"] = _pad_rows(segment_scene, num_segments, -1)
  for key in (k for k in a if k.startswith("segment_")):
    out[key] = _pad_rows(a[key], num_segments, 0)
  for key in (k for k in a if k.startswith("view_")):
    out[key] = a[key]
  if geo.SCENE_ROWS in a:
    rows = np.full((len(a["scene_index"]), signature["scene_voxels"]), -1, np.int32)
    rows[:, :a[geo.SCENE_ROWS].shape[1]] = a[geo.SCENE_ROWS]
    out[geo.SCENE_ROWS] = _sentinel(rows, caps[0])
  if "view_rows" in a:
    rows = np.full(a["view_rows"].shape[:2] + (signature["view_points"],), -1, np.int32)
    rows[..., :a["view_rows"].shape[-1]] = a["view_rows"]
    out["view_rows"] = _sentinel(rows, caps[0])
  if spec.engine != "pairs":
    return out
  for level, kernels in enumerate(spec.level_kernels):
    for k in kernels:
      for b, size in enumerate(_band_sizes(k ** 3 // 2, spec.num_bands(k))):
        width = signature[f"pairs{level}_k{k}_b{b}"]
        for part in ("inputs", "outputs"):
          key = geo.pair_key(level, k, b, part)
          out[key] = _sentinel(_pad_band(a.get(key), size, width), caps[level])
        key = geo.pair_key(level, k, b, "offset")
        out[key] = a.get(key, np.arange(size, dtype=np.int32))
  for level in range(spec.num_levels - 1):
    for b, size in enumerate(_band_sizes(8, spec.child_bands)):
      width = signature[f"children{level}_b{b}"]
      for part, cap in (("children", caps[level]), ("parents", caps[level + 1])):
        key = geo.link_key(level, part, b)
        out[key] = _sentinel(_pad_band(a.get(key), size, width), cap)
      key = geo.link_key(level, "offset", b)
      out[key] = a.get(key, np.arange(size, dtype=np.int32))
    out[geo.link_key(level, "parent")] = _pad_rows(
        a.get(geo.link_key(level, "parent"), np.zeros(0, np.int32)), caps[level], caps[level + 1])
    out[geo.corners_key(level + 1)] = _sentinel(
        _pad_rows(a.get(geo.corners_key(level + 1), np.zeros((0, 8), np.int32)),
                  caps[level + 1], -1), caps[level + 1])
  return out


def _band_sizes(num_offsets: int, num_bands: int) -> list[int]:
  return [len(m) for m in np.array_split(np.arange(num_offsets), num_bands)]


def _pad_band(band: np.ndarray | None, size: int, width: int) -> np.ndarray:
  """A band [size, <= width] padded to [size, width] with -1 (None: an empty band)."""
  out = np.full((size, width), -1, np.int32)
  if band is not None:
    out[:, :band.shape[1]] = band
  return out


def pad_packs(packs: Sequence[Pack], signature: Mapping[str, int],
              spec: geo.GeometrySpec) -> dict[str, np.ndarray]:
  """Packs padded to `signature` and stacked: every field gets a leading pack axis. Packs
  without scenes get zero `segment_*` and `view_*` extras shaped like the other packs' (no
  valid view; view_rows all C_0)."""
  padded = [pad_pack(p, signature, spec) for p in packs]
  extras = {k: v for p in padded for k, v in p.items() if k.startswith(("segment_", "view_"))}
  for p in padded:
    for key, value in extras.items():
      filler = signature["voxels0"] if key == "view_rows" else 0
      p.setdefault(key, np.full_like(value, filler))
  return {k: np.stack([p[k] for p in padded]) for k in padded[0]}
