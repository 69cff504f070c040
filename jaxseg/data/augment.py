"""Point-cloud augmentations (numpy, one `np.random.Generator` per element).

The geometric part is one affine map x -> s * F @ R @ x + t, returned as a 4x4 matrix:
  R  rotation: z angle uniform in [-pi, pi), x and y tilts uniform in [-tilt, tilt], the three
     axis rotations multiplied in a random order (as PointDC's reference does);
  F  mirror of x and/or of y, each with probability 1/2;
  s  isotropic scale uniform in `scale`;
  t  translation uniform in [0, translate) metres per axis.
Per-point gaussian coordinate noise is added after the affine map and is NOT part of the
matrix. Colours get a per-scene, per-channel shift (`color_jitter`, std in 0..255 units) and
per-point noise (`color_noise`), then are clipped to [0, 255].

Normals follow the linear part A = s * F @ R: a surface normal maps to the inverse transpose
A^-T n (this keeps it perpendicular to every transformed tangent t -> A t), renormalised to
unit length (`transform_normals`). For this A, A^-T n = F @ R @ n / s, so the unit normal is
the rotated and mirrored one; the general formula is used so any affine matrix works.

Points are never reordered or reassigned, so labels and segments keep following their points;
`random_crop` returns the kept point indices for the caller to gather every per-point array.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

import numpy as np

from jaxseg.errors import InputError


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Which augmentations run and how strong they are; a value of 0 / False / None disables."""

  rotate_z: bool = True
  tilt: float = math.pi / 32
  flip: bool = True
  scale: Optional[tuple[float, float]] = (0.9, 1.1)
  translate: float = 0.0
  color_jitter: float = 0.0
  coord_noise: float = 0.0
  color_noise: float = 0.0

  @classmethod
  def none(cls) -> "AugmentConfig":
    """The identity: every augmentation off (evaluation)."""
    return cls(rotate_z=False, tilt=0.0, flip=False, scale=None)

  @classmethod
  def from_dict(cls, config: Mapping[str, Any], where: str = "data.augment") -> "AugmentConfig":
    """Builds the config from a mapping of field name -> value; unknown keys are an error."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - fields)
    if unknown:
      raise InputError(where, f"unknown augmentation option(s) {unknown}",
                       f"use only {sorted(fields)}")
    values = dict(config)
    if values.get("scale") is not None:
      lo_hi = tuple(float(v) for v in values["scale"])
      if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
        raise InputError(where, f"scale must be [low, high] with 0 < low <= high, got "
                         f"{values['scale']}", "e.g. scale: [0.9, 1.1], or null to disable")
      values["scale"] = lo_hi
    for name in ("tilt", "translate", "color_jitter", "coord_noise", "color_noise"):
      if name in values and float(values[name]) < 0:
        raise InputError(where, f"{name} must be >= 0, got {values[name]}",
                         f"set {name} to 0 to disable it")
    return cls(**values)


def _axis_rotation(axis: int, angle: float) -> np.ndarray:
  c, s = math.cos(angle), math.sin(angle)
  i, j = [k for k in range(3) if k != axis]
  rot = np.eye(3)
  rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
  return rot


def random_transform(rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
  """Samples the affine part as a float64 (4, 4) matrix acting on column vectors."""
  angles = [rng.uniform(-config.tilt, config.tilt) if config.tilt else 0.0,
            rng.uniform(-config.tilt, config.tilt) if config.tilt else 0.0,
            rng.uniform(-math.pi, math.pi) if config.rotate_z else 0.0]
  linear = np.eye(3)
  for axis in rng.permutation(3):
    linear = _axis_rotation(int(axis), angles[axis]) @ linear
  if config.flip:
    mirror = np.where(rng.random(2) < 0.5, -1.0, 1.0)
    linear = np.diag([mirror[0], mirror[1], 1.0]) @ linear
  if config.scale is not None:
    linear = rng.uniform(*config.scale) * linear
  transform = np.eye(4)
  transform[:3, :3] = linear
  if config.translate:
    transform[:3, 3] = rng.uniform(0.0, config.translate, size=3)
  return transform


def augment(coords: np.ndarray, colors: np.ndarray, rng: np.random.Generator,
            config: AugmentConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Augments one scene.

  Args:
    coords: float32 (N, 3) metres.
    colors: (N, 3) RGB in 0..255 (uint8 or float).
  Returns:
    coords float32 (N, 3), colors float32 (N, 3) in [0, 255], transform float32 (4, 4) with
    coords_out = transform[:3, :3] @ coords + transform[:3, 3] (+ coord noise when enabled).
  """
  transform = random_transform(rng, config)
  out = coords.astype(np.float64) @ transform[:3, :3].T + transform[:3, 3]
  if config.coord_noise:
    out += rng.normal(0.0, config.coord_noise, size=out.shape)
  rgb = colors.astype(np.float32)
  if config.color_jitter:
    rgb = rgb + rng.normal(0.0, config.color_jitter, size=(1, 3)).astype(np.float32)
  if config.color_noise:
    rgb = rgb + rng.normal(0.0, config.color_noise, size=rgb.shape).astype(np.float32)
  if config.color_jitter or config.color_noise:
    rgb = np.clip(rgb, 0.0, 255.0)
  return out.astype(np.float32), rgb, transform.astype(np.float32)


def transform_normals(normals: np.ndarray, transform: np.ndarray) -> np.ndarray:
  """Maps surface normals through the linear part of an affine transform.

  Args:
    normals: float (N, 3); zero rows mean "no normal" and stay zero.
    transform: (4, 4) affine matrix acting on column vectors (as returned by `augment`).
  Returns:
    float32 (N, 3): normalise(A^-T n) with A = transform[:3, :3] (row-vector form n @ A^-1),
    zero rows unchanged.
  """
  linear = np.asarray(transform, np.float64)[:3, :3]
  out = np.asarray(normals, np.float64) @ np.linalg.inv(linear)
  norm = np.linalg.norm(out, axis=1, keepdims=True)
  return np.where(norm > 0, out / np.where(norm > 0, norm, 1.0), 0.0).astype(np.float32)


def clip_to_box(coords: np.ndarray, half_width: float) -> np.ndarray:
  """Indices (int32, ascending) of the points within `half_width` metres in x and y of the
  centre of the scene's x-y bounding box (all heights kept), as the reference's clip_bound.

  coords: float (N, 3).
  """
  if coords.shape[0] == 0:
    return np.zeros(0, np.int32)
  centre = (coords[:, :2].min(0) + coords[:, :2].max(0)) / 2
  inside = np.all(np.abs(coords[:, :2] - centre) <= half_width, axis=1)
  return np.flatnonzero(inside).astype(np.int32)


def random_crop(coords: np.ndarray, max_points: int, rng: np.random.Generator) -> np.ndarray:
  """Indices (int32, ascending) of at most `max_points` points inside an axis-aligned square
  (in x, y; all heights kept) around a random point, like the reference's clip box.

  coords: float (N, 3). Returns arange(N) when N <= max_points.
  """
  n = coords.shape[0]
  if n <= max_points:
    return np.arange(n, dtype=np.int32)
  centre = coords[rng.integers(n), :2]
  box_distance = np.abs(coords[:, :2] - centre).max(axis=1)
  keep = np.argpartition(box_distance, max_points - 1)[:max_points]
  return np.sort(keep).astype(np.int32)
