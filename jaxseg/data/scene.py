"""The in-memory record every reader produces and every dataset builder consumes.

All readers (ScanNet raw, VoteNet .npy, mmdetection3d, S3DIS, custom clouds, the synthetic
generator) return a `Scene`; `Scene.validate()` turns bad content into an `InputError` that
names the source file.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from jaxseg.errors import InputError


@dataclasses.dataclass
class Frames:
  """Posed RGB-D frames of one scan (V views).

  color_paths:       V paths to colour images (jpg/png), may be empty strings when absent.
  depth_paths:       V paths to uint16 depth images, "" when absent.
  poses:             float32 (V, 4, 4) camera-to-world transforms (world = the scene's coords).
  color_intrinsics:  float32 (3, 3) pinhole intrinsics of the colour images.
  depth_intrinsics:  float32 (3, 3) pinhole intrinsics of the depth images.
  color_size:        (width, height) of colour images.
  depth_size:        (width, height) of depth images.
  depth_scale:       depth units per metre (ScanNet: 1000, i.e. millimetres).
  """

  color_paths: list[str]
  depth_paths: list[str]
  poses: np.ndarray
  color_intrinsics: np.ndarray
  depth_intrinsics: np.ndarray
  color_size: tuple[int, int]
  depth_size: tuple[int, int]
  depth_scale: float = 1000.0

  def __len__(self) -> int:
    return int(self.poses.shape[0])


@dataclasses.dataclass
class Scene:
  """One scan.

  name:        scene id, e.g. "scene0000_00" or "Area_1/office_1".
  coords:      float32 (N, 3) metres.
  colors:      uint8 (N, 3) RGB 0..255.
  normals:     float32 (N, 3) unit normals or None.
  labels:      int32 (N,) semantic class in [0, num_classes), -1 = ignore; None if unlabelled.
  instances:   int32 (N,) instance id, 0 = none; None if unknown.
  segments:    int32 (N,) super-voxel id in [0, S), -1 = not in any super-voxel; None if not
               computed yet.
  faces:       int32 (F, 3) triangle vertex indices when the scan is a mesh, else None.
  frames:      posed RGB-D frames or None.
  axis_alignment: float32 (4, 4) raw -> aligned transform or None (coords are NOT transformed
               by readers unless the reader says so).
  origin:      float64 (3,) offset subtracted from the source coordinates before the float32
               cast (georeferenced clouds, see jaxseg.io.coords): source = coords + origin;
               None when the coordinates are the source's own.
  source:      the file or directory the scene was read from (used in error messages).
  """

  name: str
  coords: np.ndarray
  colors: np.ndarray
  normals: Optional[np.ndarray] = None
  labels: Optional[np.ndarray] = None
  instances: Optional[np.ndarray] = None
  segments: Optional[np.ndarray] = None
  faces: Optional[np.ndarray] = None
  frames: Optional[Frames] = None
  axis_alignment: Optional[np.ndarray] = None
  origin: Optional[np.ndarray] = None
  source: str = ""

  @property
  def num_points(self) -> int:
    return int(self.coords.shape[0])

  def source_coords(self) -> np.ndarray:
    """float64 (N, 3) coordinates in the source's own frame (coords + origin)."""
    coords = np.asarray(self.coords, np.float64)
    return coords if self.origin is None else coords + np.asarray(self.origin, np.float64)

  @property
  def has_mesh(self) -> bool:
    """Whether the scan comes with triangle faces."""
    return self.faces is not None and len(self.faces) > 0

  def validate(self) -> "Scene":
    """Checks shapes, dtypes and finiteness; returns self or raises InputError."""
    src = self.source or self.name
    if self.coords.ndim != 2 or self.coords.shape[1] != 3:
      raise InputError(src, f"coordinates have shape {self.coords.shape}, expected (N, 3)",
                       "export x, y, z per point")
    n = self.num_points
    if n == 0:
      raise InputError(src, "the scene has no points",
                       "check the export, or drop this scene from the split")
    bad = ~np.isfinite(self.coords).all(axis=1)
    if bad.any():
      first = int(np.flatnonzero(bad)[0])
      raise InputError(
          src, f"{int(bad.sum())} of {n} points have NaN or inf coordinates (first at index "
          f"{first})", "remove or repair those points before export")
    for field in ("colors", "normals", "labels", "instances", "segments"):
      value = getattr(self, field)
      if value is not None and value.shape[0] != n:
        raise InputError(src, f"{field} has {value.shape[0]} rows but the scene has {n} points",
                         f"export {field} for exactly the same points (same vertex order)")
    if self.colors.shape != (n, 3):
      raise InputError(src, f"colours have shape {self.colors.shape}, expected ({n}, 3)",
                       "export r, g, b per point")
    if self.normals is not None and not np.isfinite(self.normals).all():
      raise InputError(src, "normals contain NaN or inf", "recompute normals")
    if self.origin is not None and (np.shape(self.origin) != (3,)
                                    or not np.isfinite(self.origin).all()):
      raise InputError(src, f"origin {self.origin!r} is not 3 finite numbers",
                       "pass the offset as float64 (3,)")
    if self.faces is not None and self.faces.size and (
        self.faces.min() < 0 or self.faces.max() >= n):
      raise InputError(src, "mesh faces index vertices that do not exist",
                       "re-export the mesh; faces must index [0, num_vertices)")
    return self
