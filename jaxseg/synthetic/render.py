"""Posed RGB-D rendering of a triangle mesh with a vectorised numpy z-buffer rasteriser.

Camera convention (ScanNet / OpenCV): x right, y down, z forward; poses are camera-to-world
4x4 matrices; pixel (col, row) centres sit at integer coordinates, so a camera point (x, y, z)
projects to col = fx * x / z + cx, row = fy * y / z + cy. Depth is the z distance in metres.
"""

from __future__ import annotations

import numpy as np

from jaxseg.synthetic.primitives import Quad
from jaxseg.synthetic.rooms import Room


def intrinsics_for(width: int, height: int) -> np.ndarray:
  """float64 (3, 3) pinhole intrinsics with a ScanNet-like ~58 degree horizontal field of view."""
  f = 0.9 * width
  return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
  """float64 (4, 4) camera-to-world pose at `eye` (3,) looking at `target` (3,), z up."""
  forward = target - eye
  forward = forward / np.linalg.norm(forward)
  right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
  if np.linalg.norm(right) < 1e-6:
    raise ValueError("look_at: viewing direction is vertical, the camera roll is undefined")
  right = right / np.linalg.norm(right)
  down = np.cross(forward, right)
  pose = np.eye(4)
  pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
  return pose


def _furniture_boxes(room: Room) -> list[tuple[np.ndarray, np.ndarray]]:
  """Axis-aligned boxes (lo (3,), hi (3,)) of all furniture in the room."""
  boxes = []
  for obj in room.objects:
    if obj.category in ("wall", "floor", "ceiling", "door", "window", "picture"):
      continue
    pts = []
    for p in obj.parts:
      if isinstance(p, Quad):
        pts += [p.origin, p.origin + p.u, p.origin + p.v, p.origin + p.u + p.v]
      else:
        pts += [p.bottom - [p.radius, p.radius, 0.0], p.bottom + [p.radius, p.radius, p.height]]
    pts = np.asarray(pts)
    boxes.append((pts.min(0), pts.max(0)))
  return boxes


def camera_path(room: Room, rng: np.random.Generator, num_frames: int) -> np.ndarray:
  """float64 (V, 4, 4) camera-to-world poses (room frame) of a walk around the room at ~1.5 m,
  staying >= 0.4 m from walls and furniture and looking across the room at the furniture."""
  sx, sy = room.size
  xs, ys = np.meshgrid(np.arange(0.4, sx - 0.4 + 1e-9, 0.1), np.arange(0.4, sy - 0.4 + 1e-9, 0.1),
                       indexing="ij")
  free_xy = np.stack([xs.ravel(), ys.ravel()], -1)
  if len(free_xy) == 0:
    free_xy = np.array([[sx / 2, sy / 2]])
  free = np.ones(len(free_xy), bool)
  boxes = _furniture_boxes(room)
  for lo, hi in boxes:
    free &= ~((free_xy > lo[:2] - 0.4) & (free_xy < hi[:2] + 0.4)).all(1)
  furniture_centers = np.array([(lo + hi) / 2 for lo, hi in boxes]).reshape(-1, 3)
  if free.any():
    free_xy = free_xy[free]
  center = np.array([sx / 2, sy / 2])
  start = rng.uniform(0, 2 * np.pi)
  wobble_phase = rng.uniform(0, 2 * np.pi)
  poses = []
  for i in range(num_frames):
    angle = start + 2 * np.pi * i / max(num_frames, 1)
    want = center + 0.32 * np.array([sx, sy]) * np.array([np.cos(angle), np.sin(angle)])
    xy = free_xy[np.argmin(np.linalg.norm(free_xy - want, axis=1))]
    eye = np.array([*xy, 1.5 + 0.08 * np.sin(3 * angle + wobble_phase)])
    look = center - xy
    if np.linalg.norm(look) < 1e-3:
      look = np.array([np.cos(angle), np.sin(angle)])
    turn = 0.6 * np.sin(2 * angle + wobble_phase) + rng.normal(0.0, 0.1)
    c, s = np.cos(turn), np.sin(turn)
    look = np.array([c * look[0] - s * look[1], s * look[0] + c * look[1]])
    look = look / np.linalg.norm(look)
    target = np.array([*(xy + 2.0 * look), rng.uniform(0.5, 0.9)])
    # Aim at the piece of furniture closest to that direction (within 50 degrees), if any.
    offsets = furniture_centers[:, :2] - xy
    dist = np.linalg.norm(offsets, axis=1)
    cosine = offsets @ look / np.maximum(dist, 1e-9)
    ok = (cosine > np.cos(np.radians(50))) & (dist > 0.8)
    if ok.any():
      best = np.argmax(np.where(ok, cosine, -2.0))
      target = furniture_centers[best] + rng.normal(0.0, 0.15, 3)
    poses.append(look_at(eye, target))
  return np.stack(poses)


def render_rgbd(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, pose: np.ndarray,
                intrinsics: np.ndarray, width: int, height: int, near: float = 0.1
                ) -> tuple[np.ndarray, np.ndarray]:
  """Rasterises the visible surface of a mesh.

  Args:
    vertices: float (N, 3) world coordinates; faces: int (F, 3), counter-clockwise seen from
      the visible side (back faces are culled); colors: uint8/float (N, 3).
    pose: (4, 4) camera-to-world; intrinsics: (3, 3); width, height: image size in pixels.
    near: triangles with a vertex closer than this (m) are skipped.
  Returns:
    rgb uint8 (height, width, 3) (black where empty) and depth float32 (height, width) in
    metres (0 where no surface), colours interpolated perspective-correctly.
  """
  rot, eye = pose[:3, :3], pose[:3, 3]
  cam = (np.asarray(vertices, np.float64) - eye) @ rot
  z = cam[:, 2]
  fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
  safe_z = np.where(z > near, z, 1.0)
  u, v = fx * cam[:, 0] / safe_z + cx, fy * cam[:, 1] / safe_z + cy
  zf = z[faces]
  tri = faces[(zf[:, 0] > near) & (zf[:, 1] > near) & (zf[:, 2] > near)]
  tu, tv = u[tri], v[tri]
  x0 = np.maximum(np.ceil(np.minimum(np.minimum(tu[:, 0], tu[:, 1]), tu[:, 2])), 0)
  x1 = np.minimum(np.floor(np.maximum(np.maximum(tu[:, 0], tu[:, 1]), tu[:, 2])), width - 1)
  y0 = np.maximum(np.ceil(np.minimum(np.minimum(tv[:, 0], tv[:, 1]), tv[:, 2])), 0)
  y1 = np.minimum(np.floor(np.maximum(np.maximum(tv[:, 0], tv[:, 1]), tv[:, 2])), height - 1)
  # Twice the signed image-space area; for points in front of the camera it is negative
  # exactly when the triangle faces the camera (n . p0 < 0), so back faces are culled here.
  denom = (tv[:, 1] - tv[:, 2]) * (tu[:, 0] - tu[:, 2]) + (tu[:, 2] - tu[:, 1]) * (
      tv[:, 0] - tv[:, 2])
  keep = (x1 >= x0) & (y1 >= y0) & (denom < -1e-12)
  tri, tu, tv, denom = tri[keep], tu[keep], tv[keep], denom[keep]
  x0, x1, y0, y1 = (a[keep].astype(np.int64) for a in (x0, x1, y0, y1))
  span = np.maximum(x1 - x0, y1 - y0) + 1
  pix_all, tri_all, bary_all = [], [], []
  size = 1
  while len(span) and size < 2 * span.max():
    sel = np.nonzero((span <= size) & (span > size // 2))[0]
    size *= 2
    if not len(sel):
      continue
    k = size // 2
    oy, ox = np.divmod(np.arange(k * k), k)
    px = x0[sel, None] + ox
    py = y0[sel, None] + oy
    su, sv, d = tu[sel], tv[sel], denom[sel, None]
    du, dv = px - su[:, 2:3], py - sv[:, 2:3]
    l0 = ((sv[:, 1:2] - sv[:, 2:3]) * du + (su[:, 2:3] - su[:, 1:2]) * dv) / d
    l1 = ((sv[:, 2:3] - sv[:, 0:1]) * du + (su[:, 0:1] - su[:, 2:3]) * dv) / d
    l2 = 1.0 - l0 - l1
    inside = ((px <= x1[sel, None]) & (py <= y1[sel, None]) &
              (l0 >= -1e-7) & (l1 >= -1e-7) & (l2 >= -1e-7))
    rows, cols = np.nonzero(inside)
    pix_all.append(py[rows, cols] * width + px[rows, cols])
    tri_all.append(sel[rows])
    bary_all.append(np.stack([l0[rows, cols], l1[rows, cols], l2[rows, cols]], -1))
  rgb = np.zeros((height * width, 3), np.uint8)
  depth = np.zeros(height * width, np.float32)
  if not pix_all or not sum(len(p) for p in pix_all):
    return rgb.reshape(height, width, 3), depth.reshape(height, width)
  pix = np.concatenate(pix_all)
  frag_tri = tri[np.concatenate(tri_all)]
  bary = np.concatenate(bary_all)
  inv_z = bary / z[frag_tri]
  frag_depth = 1.0 / inv_z.sum(1)
  zbuf = np.full(height * width, np.inf)
  np.minimum.at(zbuf, pix, frag_depth)
  win = frag_depth <= zbuf[pix]
  weights = inv_z[win] * frag_depth[win, None]
  frag_color = np.einsum("fk,fkc->fc", weights, np.asarray(colors, np.float64)[frag_tri[win]])
  rgb[pix[win]] = np.clip(np.round(frag_color), 0, 255).astype(np.uint8)
  depth[pix[win]] = frag_depth[win]
  return rgb.reshape(height, width, 3), depth.reshape(height, width)
