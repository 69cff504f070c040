"""Capacity buckets: pad scenes and batches to a handful of static shapes.

Bucket i holds at most `point_caps[i]` points and `voxel_caps[i]` voxels. A scene goes to the
smallest bucket that fits it; a batch is padded to the bucket of its largest member, so jit
compiles one program per bucket.

Padding conventions (P = point capacity, C = voxel capacity):
  padded points:  point_mask False, point_to_voxel C (sentinel), point_labels -1,
                  point_segments -1, point_index -1, point_coords / point_colors /
                  point_normals 0;
  padded voxels:  voxel_mask False, voxel_coords 0, voxel_feats 0, voxel_labels -1,
                  voxel_to_point P (sentinel);
  padded scenes (a short last batch filled up to the batch size): every mask False,
                  scene_index -1, transform identity.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from jaxseg.errors import InputError
from jaxseg.ops.sparse import kernel_map

# Per-point and per-voxel arrays of an unpadded element and their padding values.
POINT_FIELDS = {"point_coords": 0, "point_colors": 0, "point_normals": 0, "point_labels": -1,
                "point_segments": -1, "point_index": -1}
VOXEL_FIELDS = {"voxel_coords": 0, "voxel_feats": 0, "voxel_labels": -1}


@dataclasses.dataclass(frozen=True)
class Buckets:
  """Point and voxel capacities, ascending, one pair per bucket.

  level_fractions: static capacities of the encoders' coarse levels 1..L (voxel grids 2^l
  times coarser) as fractions of the bucket's voxel capacity. The defaults (halving) suit
  dense surface scans, where a 2x coarser grid holds ~4x fewer voxels; randomly subsampled
  clouds (e.g. 50k-point VoteNet exports at 2 cm) keep most voxels at level 1 and need larger
  fractions such as (1.0, 0.5, 0.25, 0.125). A scene is placed in the smallest bucket whose
  every level fits, so a coarse level can never overflow inside the network.
  """

  point_caps: tuple[int, ...] = (65536, 131072, 262144)
  voxel_caps: tuple[int, ...] = (65536, 131072, 262144)
  level_fractions: tuple[float, ...] = (0.5, 0.25, 0.125, 0.0625)

  def __post_init__(self):
    caps = (self.point_caps, self.voxel_caps)
    if (len(self.point_caps) != len(self.voxel_caps) or not self.point_caps or
        any(list(c) != sorted(c) or min(c) <= 0 for c in caps)):
      raise InputError("data.buckets", f"point caps {list(self.point_caps)} and voxel caps "
                       f"{list(self.voxel_caps)} must be non-empty, positive, ascending and of "
                       "equal length", "e.g. point_caps: [65536, 131072], voxel_caps: "
                       "[32768, 65536]")
    if any(not 0 < f <= 1 for f in self.level_fractions):
      raise InputError("data.buckets.level_fractions", f"fractions {list(self.level_fractions)} "
                       "must lie in (0, 1]", "e.g. level_fractions: [0.5, 0.25, 0.125, 0.0625]")

  @classmethod
  def from_dict(cls, config: Mapping[str, Any]) -> "Buckets":
    """{'point_caps': [...], 'voxel_caps': [...], 'level_fractions': [...]}; voxel caps default
    to the point caps, level fractions to halving."""
    unknown = sorted(set(config) - {"point_caps", "voxel_caps", "level_fractions"})
    if unknown:
      raise InputError("data.buckets", f"unknown option(s) {unknown}",
                       "use only point_caps, voxel_caps and level_fractions")
    points = tuple(int(c) for c in config["point_caps"])
    fractions = tuple(float(f) for f in config.get("level_fractions", cls.level_fractions))
    return cls(points, tuple(int(c) for c in config.get("voxel_caps", points)), fractions)

  def __len__(self) -> int:
    return len(self.point_caps)

  def level_caps(self, bucket: int) -> tuple[int, ...]:
    """Static capacities of coarse levels 1..L of `bucket` (multiples of 8)."""
    cap = self.voxel_caps[bucket]
    return tuple(kernel_map.round_capacity(np.ceil(cap * f)) for f in self.level_fractions)

  def index_of(self, voxel_cap: int) -> int:
    """The bucket whose voxel capacity is `voxel_cap` (the padded shape of a batch)."""
    if voxel_cap not in self.voxel_caps:
      raise ValueError(f"{voxel_cap} is not a voxel capacity of {list(self.voxel_caps)}")
    return self.voxel_caps.index(voxel_cap)

  def select(self, num_points: int, num_voxels: int, name: str = "scene",
             level_counts: Sequence[int] = ()) -> int:
    """Index of the smallest bucket holding the scene; InputError when none does.

    level_counts: voxels of the scene at coarse levels 1..L (see `voxelize.coarse_level_counts`).
    """
    for i, (p, c) in enumerate(zip(self.point_caps, self.voxel_caps)):
      if (num_points <= p and num_voxels <= c and
          all(n <= cap for n, cap in zip(level_counts, self.level_caps(i)))):
        return i
    if num_points <= self.point_caps[-1] and num_voxels <= self.voxel_caps[-1]:
      raise InputError(name, f"the scene's coarse levels 1..{len(level_counts)} have "
                       f"{list(level_counts)} voxels, more than the largest bucket allows "
                       f"({list(self.level_caps(len(self) - 1))})",
                       "raise data.buckets.level_fractions (sparse, subsampled clouds need "
                       "e.g. [1.0, 0.5, 0.25, 0.125]) or use a larger voxel size")
    raise InputError(name, f"the scene has {num_points} points and {num_voxels} voxels, more "
                     f"than the largest bucket ({self.point_caps[-1]} points, "
                     f"{self.voxel_caps[-1]} voxels)",
                     "raise data.buckets, use a larger voxel size, or crop scenes with "
                     "data.max_points")


def _pad_rows(array: np.ndarray, rows: int, value: float) -> np.ndarray:
  out = np.full((rows,) + array.shape[1:], value, array.dtype)
  out[:array.shape[0]] = array
  return out


def pad_element(element: Mapping[str, np.ndarray], point_cap: int,
                voxel_cap: int) -> dict[str, np.ndarray]:
  """Pads one unpadded element to (point_cap, voxel_cap) and adds the masks.

  element holds the POINT_FIELDS (P rows), the VOXEL_FIELDS (V rows; voxel_labels optional),
  point_to_voxel int32 (P,), voxel_to_point int32 (V,), scene_index and transform.
  """
  num_points = element["point_to_voxel"].shape[0]
  num_voxels = element["voxel_coords"].shape[0]
  out = {k: _pad_rows(element[k], point_cap, v) for k, v in POINT_FIELDS.items()}
  out.update({k: _pad_rows(element[k], voxel_cap, v) for k, v in VOXEL_FIELDS.items()
              if k in element})
  out["point_to_voxel"] = _pad_rows(element["point_to_voxel"], point_cap, voxel_cap)
  out["voxel_to_point"] = _pad_rows(element["voxel_to_point"], voxel_cap, point_cap)
  out["point_mask"] = np.arange(point_cap) < num_points
  out["voxel_mask"] = np.arange(voxel_cap) < num_voxels
  out["scene_index"] = np.int32(element["scene_index"])
  out["transform"] = np.asarray(element["transform"], np.float32)
  return out


def _empty_like(padded: Mapping[str, np.ndarray], point_cap: int,
                voxel_cap: int) -> dict[str, np.ndarray]:
  out = {k: np.full_like(v, POINT_FIELDS.get(k, VOXEL_FIELDS.get(k, 0)))
         for k, v in padded.items()}
  out["point_to_voxel"][:] = voxel_cap
  out["voxel_to_point"][:] = point_cap
  out["scene_index"] = np.int32(-1)
  out["transform"] = np.eye(4, dtype=np.float32)
  return out


def pad_batch(elements: Sequence[Mapping[str, np.ndarray]], buckets: Buckets,
              batch_size: int | None = None) -> dict[str, np.ndarray]:
  """Stacks unpadded elements into one batch padded to the bucket of its largest member.

  Each element carries its own `bucket` index (from `Buckets.select`). When `batch_size` is
  given and there are fewer elements, empty scenes fill the batch (see module docstring).
  Returns arrays with a leading batch axis: voxel_coords int32 [B, C, 3], voxel_feats f32
  [B, C, F], voxel_mask bool [B, C], voxel_to_point int32 [B, C], voxel_labels int32 [B, C]
  (when present), point_to_voxel / point_labels / point_segments / point_index int32 [B, P],
  point_mask bool [B, P], point_coords / point_colors f32 [B, P, 3], point_normals f32
  [B, P, 3] (unit normals, or zeros for scenes without normals and padding rows), scene_index
  int32 [B], transform f32 [B, 4, 4].
  """
  bucket = max(int(e["bucket"]) for e in elements)
  point_cap, voxel_cap = buckets.point_caps[bucket], buckets.voxel_caps[bucket]
  rows = [pad_element(e, point_cap, voxel_cap) for e in elements]
  if batch_size is not None and len(rows) < batch_size:
    rows += [_empty_like(rows[0], point_cap, voxel_cap)] * (batch_size - len(rows))
  return {k: np.stack([r[k] for r in rows]) for k in rows[0]}
