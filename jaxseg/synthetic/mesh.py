"""Triangulates a `Room` into a scan-like mesh with colours, NYU40 labels and segments.

Surfaces are gridded at a roughly uniform vertex spacing (like ScanNet `_vh_clean_2`), coloured
per object material with texture patterns (wood grain, planks, tiles, book spines, pictures) and
per-vertex noise, then degraded like a real reconstruction: floor under furniture and faces
against walls are unobserved, the ceiling is partly missing, random holes are punched and
vertices jitter by a few millimetres.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import spatial

from jaxseg.synthetic.primitives import Cylinder, Quad
from jaxseg.synthetic.rooms import Room

_LIGHT = np.array([0.3, 0.4, 0.87]) / np.linalg.norm([0.3, 0.4, 0.87])
_SHELL = ("wall", "floor", "ceiling", "door", "window")


@dataclasses.dataclass
class MeshConfig:
  """spacing: target vertex spacing (m); segment_size: over-segmentation patch size (m);
  position_noise: std of vertex jitter (m); holes_per_m2: random holes per m^2 of surface;
  ceiling_holes: number of large missing ceiling discs."""
  spacing: float = 0.035
  segment_size: float = 0.3
  position_noise: float = 0.005
  holes_per_m2: float = 0.08
  ceiling_holes: tuple[int, int] = (2, 6)


@dataclasses.dataclass
class Mesh:
  """vertices float32 (N, 3); faces int32 (F, 3); colors uint8 (N, 3); nyu40 uint16 (N,);
  objects int32 (N,) index into room.objects; segments int32 (N,) patch id (never spans two
  objects or two faces of a primitive)."""
  vertices: np.ndarray
  faces: np.ndarray
  colors: np.ndarray
  nyu40: np.ndarray
  objects: np.ndarray
  segments: np.ndarray


@dataclasses.dataclass
class _Surface:
  """One gridded primitive face: vertices (n, 3), metric coords st (n, 2), normals (n, 3),
  faces (f, 3) local, patch (n,) local patch ids, extent (2,) metres."""
  vertices: np.ndarray
  st: np.ndarray
  normals: np.ndarray
  faces: np.ndarray
  patch: np.ndarray
  extent: np.ndarray


def _grid_faces(nu: int, nv: int, wrap_u: bool = False) -> np.ndarray:
  """Two triangles per cell of an (nu, nv) vertex grid (index i * nv + j), wound so the normal
  is d/du x d/dv; with wrap_u the last column connects to the first."""
  iu = np.arange(nu if wrap_u else nu - 1)
  jv = np.arange(nv - 1)
  i, j = np.meshgrid(iu, jv, indexing="ij")
  i2 = (i + 1) % nu
  a, b, c, d = i * nv + j, i2 * nv + j, i2 * nv + j + 1, i * nv + j + 1
  return np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                         np.stack([a, c, d], -1).reshape(-1, 3)]).astype(np.int32)


def _patches(st: np.ndarray, extent: np.ndarray, size: float) -> np.ndarray:
  counts = np.maximum(1, np.round(extent / size)).astype(np.int64)
  idx = np.minimum((st / np.maximum(extent, 1e-9) * counts).astype(np.int64), counts - 1)
  return (idx[:, 0] * counts[1] + idx[:, 1]).astype(np.int32)


def _quad_surface(q: Quad, spacing: float, segment_size: float) -> _Surface:
  lu, lv = float(np.linalg.norm(q.u)), float(np.linalg.norm(q.v))
  nu, nv = max(2, int(np.ceil(lu / spacing)) + 1), max(2, int(np.ceil(lv / spacing)) + 1)
  s, t = np.meshgrid(np.linspace(0, 1, nu), np.linspace(0, 1, nv), indexing="ij")
  s, t = s.reshape(-1), t.reshape(-1)
  verts = q.origin + s[:, None] * q.u + t[:, None] * q.v
  st = np.stack([s * lu, t * lv], -1)
  faces = _grid_faces(nu, nv)
  if q.holes:
    centroid = st[faces].mean(1)
    inside = np.zeros(len(faces), bool)
    for s0, s1, t0, t1 in q.holes:
      inside |= ((centroid[:, 0] > s0) & (centroid[:, 0] < s1) &
                 (centroid[:, 1] > t0) & (centroid[:, 1] < t1))
    faces = faces[~inside]
  extent = np.array([lu, lv])
  return _Surface(verts, st, np.broadcast_to(q.normal, verts.shape), faces,
                  _patches(st, extent, segment_size), extent)


def _cylinder_surfaces(c: Cylinder, spacing: float, segment_size: float) -> list[_Surface]:
  n_theta = max(8, int(np.ceil(2 * np.pi * c.radius / spacing)))
  theta = 2 * np.pi * np.arange(n_theta) / n_theta
  ring = np.stack([np.cos(theta), np.sin(theta), np.zeros_like(theta)], -1)
  nz = max(2, int(np.ceil(c.height / spacing)) + 1)
  z = np.linspace(0, c.height, nz)
  th, zz = np.meshgrid(np.arange(n_theta), z, indexing="ij")
  th, zz = th.reshape(-1), zz.reshape(-1)
  verts = c.bottom + c.radius * ring[th] + zz[:, None] * np.array([0, 0, 1.0])
  st = np.stack([theta[th] * c.radius, zz], -1)
  extent = np.array([2 * np.pi * c.radius, c.height])
  out = [_Surface(verts, st, ring[th], _grid_faces(n_theta, nz, wrap_u=True),
                  _patches(st, extent, segment_size), extent)]
  n_rings = max(1, int(np.ceil(c.radius / spacing)))
  radii = c.radius * np.arange(1, n_rings + 1) / n_rings
  ring_pts = (radii[:, None, None] * ring[None]).reshape(-1, 3)
  cap_xy = np.concatenate([np.zeros((1, 3)), ring_pts])
  fan = np.stack([np.zeros(n_theta, np.int64), 1 + np.arange(n_theta),
                  1 + (np.arange(n_theta) + 1) % n_theta], -1)
  # Between rings: grid with u = ring index (outwards), v = angle (counter-clockwise).
  rings = _grid_faces(n_rings, n_theta + 1)
  col = rings % (n_theta + 1)
  rings = 1 + (rings // (n_theta + 1)) * n_theta + col % n_theta
  up_faces = np.concatenate([fan, rings]).astype(np.int32)
  sectors = max(1, int(np.round(np.pi * c.radius / segment_size)))
  angle = np.arctan2(cap_xy[:, 1], cap_xy[:, 0]) % (2 * np.pi)
  patch = np.minimum((angle / (2 * np.pi) * sectors).astype(np.int32), sectors - 1)
  for closed, height, sign in ((c.top_cap, c.height, 1.0), (c.bottom_cap, 0.0, -1.0)):
    if closed:
      faces = up_faces if sign > 0 else up_faces[:, ::-1].copy()
      normal = np.broadcast_to(np.array([0, 0, sign]), cap_xy.shape)
      out.append(_Surface(c.bottom + cap_xy + np.array([0, 0, height]), cap_xy[:, :2] + c.radius,
                          normal, faces, patch, np.array([2 * c.radius] * 2)))
  return out


def _texture(material: str, base: np.ndarray, st: np.ndarray, extent: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
  """float (n, 3) RGB of one surface from its material pattern at metric coords st (n, 2)."""
  s, t = st[:, 0], st[:, 1]
  if extent[1] > extent[0]:  # grain and stripes run along the longer side
    s, t = t, s
  n = len(st)
  color = np.broadcast_to(base, (n, 3)).astype(np.float64)
  noise = {"paint": 3.0, "fabric": 9.0, "carpet": 10.0, "stone": 14.0, "glass": 5.0,
           "metal": 4.0, "ceramic": 3.0}.get(material, 5.0)
  if material in ("wood", "planks"):
    period, wobble = rng.uniform(0.015, 0.04), rng.uniform(0.3, 0.8)
    grain = np.sin(2 * np.pi * t / period + 0.6 * np.sin(2 * np.pi * s / wobble + rng.uniform(
        0, 6.3)))
    color = color * (1.0 + 0.07 * grain)[:, None]
    if material == "planks":
      width = rng.uniform(0.12, 0.2)
      plank = np.floor(t / width).astype(np.int64)
      shade = 1.0 + 0.08 * rng.standard_normal(plank.max() + 1)
      seam = np.where((t / width) % 1.0 < 0.06, 0.72, 1.0)
      color = color * (shade[plank] * seam)[:, None]
  elif material == "tiles":
    size = rng.uniform(0.3, 0.6)
    grout = ((s / size) % 1.0 < 0.04) | ((t / size) % 1.0 < 0.04)
    color = np.where(grout[:, None], color * 0.78, color)
  elif material == "spines":
    widths = rng.uniform(0.015, 0.05, 200)
    edges = np.cumsum(widths)
    spine = np.minimum(np.searchsorted(edges, s), 199)
    palette = rng.uniform(30, 230, (200, 3))
    color = 0.3 * color + 0.7 * palette[spine]
  elif material == "picture":
    freq = rng.uniform(4, 18, (3, 2))
    phase = rng.uniform(0, 6.3, 3)
    for k in range(3):
      wave = np.sin(freq[k, 0] * s + freq[k, 1] * t + phase[k])
      color = color + rng.uniform(-70, 70, 3) * wave[:, None]
    frame = ((s < 0.03) | (t < 0.03) | (s > max(extent) - 0.03) | (t > min(extent) - 0.03))
    color = np.where(frame[:, None], rng.uniform(20, 200), color)
  elif material in ("fabric", "carpet"):
    mottle = np.sin(s * rng.uniform(3, 8) + rng.uniform(0, 6.3)) * np.sin(
        t * rng.uniform(3, 8) + rng.uniform(0, 6.3))
    color = color * (1.0 + 0.05 * mottle)[:, None]
  elif material == "metal":
    color = color * (0.93 + 0.1 * t / max(min(extent), 1e-6))[:, None]
  # Mostly brightness noise, a little per-channel colour noise.
  return color + noise * (0.8 * rng.standard_normal((n, 1)) + 0.4 * rng.standard_normal((n, 3)))


def _in_rectangles(xy: np.ndarray, rects) -> np.ndarray:
  inside = np.zeros(len(xy), bool)
  for center, half, yaw in rects:
    c, s = np.cos(yaw), np.sin(yaw)
    d = xy - center
    inside |= ((np.abs(d[:, 0] * c + d[:, 1] * s) < half[0]) &
               (np.abs(-d[:, 0] * s + d[:, 1] * c) < half[1]))
  return inside


def mesh_room(room: Room, rng: np.random.Generator, config: MeshConfig = MeshConfig()) -> Mesh:
  """Triangulates, colours, labels and degrades `room` (axis-aligned frame, metres)."""
  verts, faces, colors, objects, segments, normals = [], [], [], [], [], []
  n_verts, n_patches = 0, 0
  for index, obj in enumerate(room.objects):
    for prim in obj.parts:
      surfaces = ([_quad_surface(prim, config.spacing, config.segment_size)]
                  if isinstance(prim, Quad) else
                  _cylinder_surfaces(prim, config.spacing, config.segment_size))
      for surf in surfaces:
        verts.append(surf.vertices)
        normals.append(surf.normals)
        faces.append(surf.faces + n_verts)
        shade = 0.78 + 0.22 * (surf.normals @ _LIGHT)
        colors.append(_texture(obj.material, obj.color, surf.st, surf.extent, rng) *
                      shade[:, None])
        objects.append(np.full(len(surf.vertices), index, np.int32))
        segments.append(surf.patch + n_patches)
        n_verts += len(surf.vertices)
        n_patches += int(surf.patch.max()) + 1
  vertices = np.concatenate(verts)
  normals = np.concatenate(normals)
  faces = np.concatenate(faces)
  objects = np.concatenate(objects)
  color = np.clip(np.concatenate(colors), 0, 255).round().astype(np.uint8)
  segments = np.concatenate(segments)
  category = np.array([o.category for o in room.objects])
  nyu40 = np.array([o.nyu40 for o in room.objects], np.uint16)[objects]

  face_obj = objects[faces[:, 0]]
  face_cat = category[face_obj]
  centroid = vertices[faces].mean(1)
  face_normal = normals[faces[:, 0]]
  # Floor under furniture is never seen by the scanner.
  contacts = [c for o in room.objects for c in o.floor_contacts]
  drop = (face_cat == "floor") & _in_rectangles(centroid[:, :2], contacts)
  # Faces touching a wall from the inside (furniture backs) are never seen either.
  sx, sy = room.size
  shell = np.isin(face_cat, _SHELL)
  for axis, plane, outward in ((0, 0.0, -1), (0, sx, 1), (1, 0.0, -1), (1, sy, 1)):
    near = np.abs(centroid[:, axis] - plane) < 0.03
    drop |= ~shell & near & (face_normal[:, axis] * outward > 0.9)
  # Large parts of the ceiling are missing, as in most ScanNet scans.
  lo, hi = config.ceiling_holes
  for _ in range(int(rng.integers(lo, hi + 1))):
    center = rng.uniform([0, 0], [sx, sy])
    radius = rng.uniform(0.6, 0.45 * max(sx, sy))
    drop |= (face_cat == "ceiling") & (np.linalg.norm(centroid[:, :2] - center, axis=1) < radius)
  # Random small holes everywhere.
  area = 0.5 * np.linalg.norm(np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]],
                                       vertices[faces[:, 2]] - vertices[faces[:, 0]]), axis=1)
  n_holes = int(rng.poisson(config.holes_per_m2 * area.sum()))
  if n_holes:
    centers = centroid[rng.choice(len(faces), n_holes, p=area / area.sum())]
    radii = rng.uniform(0.04, 0.2, n_holes)
    tree = spatial.cKDTree(centroid)
    for center, radius in zip(centers, radii):
      drop[tree.query_ball_point(center, radius)] = True
  faces = faces[~drop]

  used = np.zeros(len(vertices), bool)
  used[faces.reshape(-1)] = True
  remap = np.cumsum(used) - 1
  faces = remap[faces].astype(np.int32)
  vertices = vertices[used] + config.position_noise * rng.standard_normal((int(used.sum()), 3))
  _, segments = np.unique(segments[used], return_inverse=True)
  return Mesh(vertices.astype(np.float32), faces, color[used], nyu40[used], objects[used],
              segments.astype(np.int32))
