"""Geometric primitives the procedural rooms are built from.

Everything is in the axis-aligned room frame: metres, z up, floor at z = 0. A `Quad` is a
one-sided planar rectangle `origin + s * u + t * v` (s, t in [0, 1]) whose visible side is
`cross(u, v)`; a `Cylinder` is an upright cylinder. Boxes are expanded into six quads.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Rectangles (s0, s1, t0, t1) in metres along u and v that are cut out of a quad.
Hole = tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True)
class Quad:
  """Planar rectangle: origin (3,), edge vectors u, v (3,) in metres, holes cut out of it."""
  origin: np.ndarray
  u: np.ndarray
  v: np.ndarray
  holes: tuple[Hole, ...] = ()

  @property
  def normal(self) -> np.ndarray:
    n = np.cross(self.u, self.v)
    return n / np.linalg.norm(n)


@dataclasses.dataclass(frozen=True)
class Cylinder:
  """Upright cylinder: bottom centre (3,), radius, height; which caps are closed."""
  bottom: np.ndarray
  radius: float
  height: float
  top_cap: bool = True
  bottom_cap: bool = False


Primitive = Quad | Cylinder


def rotation_z(yaw: float) -> np.ndarray:
  """float64 (3, 3) rotation about +z by `yaw` radians."""
  c, s = np.cos(yaw), np.sin(yaw)
  return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def box_quads(center, size, yaw: float = 0.0, open_bottom: bool = False) -> list[Quad]:
  """The outward-facing faces of a box: centre (3,), full size (3,) along its local x, y, z
  (local axes = room axes rotated by `yaw` about z). The bottom face is left out when
  `open_bottom` (boxes standing on the floor or on another surface)."""
  center = np.asarray(center, np.float64)
  rot = rotation_z(yaw)
  hx, hy, hz = (0.5 * rot[:, i] * size[i] for i in range(3))
  ex, ey, ez = 2 * hx, 2 * hy, 2 * hz
  c = center
  quads = [
      Quad(c + hx - hy - hz, ey, ez),    # +x
      Quad(c - hx + hy - hz, -ey, ez),   # -x
      Quad(c + hx + hy - hz, -ex, ez),   # +y
      Quad(c - hx - hy - hz, ex, ez),    # -y
      Quad(c - hx - hy + hz, ex, ey),    # +z
  ]
  if not open_bottom:
    quads.append(Quad(c - hx + hy - hz, ex, -ey))  # -z
  return quads
