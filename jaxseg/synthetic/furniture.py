"""Furniture built from a few boxes and cylinders so each class has a recognisable shape.

Every builder takes a random generator and returns a `Piece`: its footprint size (width along
local x, depth along local y), height and primitives in the LOCAL frame: origin at the centre of
the footprint on the floor, front facing +y, back (against a wall) at -y. `place()` moves a piece
into the room.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxseg.synthetic.primitives import Cylinder, Primitive, Quad, box_quads, rotation_z


@dataclasses.dataclass
class Piece:
  """A furniture item in its local frame: width (x), depth (y), height (z) in metres."""
  width: float
  depth: float
  height: float
  parts: list[Primitive]
  # Rectangles (cx, cy, half_x, half_y) in the local frame where it touches the floor.
  floor_contacts: list[tuple[float, float, float, float]]


def _box(parts, contacts, cx, cy, z0, sx, sy, sz):
  """Adds an axis-aligned local box with its bottom at z0; floor contact when z0 == 0."""
  on_floor = z0 <= 1e-6
  parts.extend(box_quads((cx, cy, z0 + sz / 2), (sx, sy, sz), open_bottom=on_floor))
  if on_floor:
    contacts.append((cx, cy, sx / 2, sy / 2))


def _legs(parts, contacts, w, d, h, leg, inset):
  for sx in (-1, 1):
    for sy in (-1, 1):
      _box(parts, contacts, sx * (w / 2 - inset - leg / 2), sy * (d / 2 - inset - leg / 2), 0.0,
           leg, leg, h)


def table(rng: np.random.Generator, low: bool = False) -> Piece:
  """Dining/coffee table: a top on four legs, or a round top on a central post."""
  h = rng.uniform(0.38, 0.48) if low else rng.uniform(0.70, 0.78)
  top = rng.uniform(0.03, 0.05)
  parts, contacts = [], []
  if rng.random() < 0.3:
    r = rng.uniform(0.35, 0.6)
    parts.append(Cylinder(np.array([0.0, 0.0, h - top]), r, top, True, True))
    parts.append(Cylinder(np.array([0.0, 0.0, 0.03]), 0.04, h - top - 0.03, False, False))
    parts.append(Cylinder(np.array([0.0, 0.0, 0.0]), 0.25 * r + 0.1, 0.03, True, False))
    contacts.append((0.0, 0.0, 0.2 * r + 0.08, 0.2 * r + 0.08))
    return Piece(2 * r, 2 * r, h, parts, contacts)
  w = rng.uniform(0.8, 1.8) if not low else rng.uniform(0.8, 1.3)
  d = rng.uniform(0.6, min(1.0, w))
  _box(parts, contacts, 0.0, 0.0, h - top, w, d, top)
  _legs(parts, contacts, w, d, h - top, rng.uniform(0.04, 0.07), rng.uniform(0.02, 0.08))
  return Piece(w, d, h, parts, contacts)


def desk(rng: np.random.Generator) -> Piece:
  """A desk: top on two side panels, sometimes with a drawer block."""
  w, d, h = rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.8), rng.uniform(0.72, 0.76)
  top, panel = 0.03, 0.03
  parts, contacts = [], []
  _box(parts, contacts, 0.0, 0.0, h - top, w, d, top)
  for sx in (-1, 1):
    _box(parts, contacts, sx * (w / 2 - panel / 2), 0.0, 0.0, panel, d - 0.02, h - top)
  if rng.random() < 0.5:
    dw = rng.uniform(0.35, 0.45)
    _box(parts, contacts, w / 2 - panel - dw / 2, -0.02, 0.0, dw, d - 0.06, h - top - 0.05)
  _box(parts, contacts, 0.0, -d / 2 + 0.02, h - top - 0.35, w - 2 * panel, 0.015, 0.3)
  return Piece(w, d, h, parts, contacts)


def chair(rng: np.random.Generator) -> Piece:
  """A chair facing +y: four legs, a seat and a back rest."""
  w, d = rng.uniform(0.42, 0.52), rng.uniform(0.42, 0.5)
  seat_h, back_h = rng.uniform(0.42, 0.48), rng.uniform(0.80, 0.95)
  leg, seat = rng.uniform(0.03, 0.045), 0.05
  parts, contacts = [], []
  _legs(parts, contacts, w, d, seat_h - seat, leg, 0.01)
  _box(parts, contacts, 0.0, 0.0, seat_h - seat, w, d, seat)
  _box(parts, contacts, 0.0, -d / 2 + 0.025, seat_h, w, 0.05, back_h - seat_h)
  return Piece(w, d, back_h, parts, contacts)


def bed(rng: np.random.Generator) -> tuple[Piece, list[Piece]]:
  """A bed (frame, mattress, headboard at -y) and its pillows as separate pieces."""
  w, d = rng.uniform(1.0, 1.8), rng.uniform(1.95, 2.1)
  frame_h, mattress_h = rng.uniform(0.25, 0.35), rng.uniform(0.18, 0.25)
  head_h = rng.uniform(0.85, 1.1)
  parts, contacts = [], []
  _box(parts, contacts, 0.0, 0.0, 0.0, w, d, frame_h)
  _box(parts, contacts, 0.0, 0.03, frame_h, w - 0.06, d - 0.1, mattress_h)
  _box(parts, contacts, 0.0, -d / 2 + 0.03, 0.0, w, 0.06, head_h)
  top = frame_h + mattress_h
  n = 1 if w < 1.3 else 2
  pillows = []
  for i in range(n):
    pw = (w - 0.2) / n - 0.05
    cx = -w / 2 + 0.1 + (i + 0.5) * (w - 0.2) / n
    p_parts: list[Primitive] = []
    _box(p_parts, [], cx, -d / 2 + 0.3, top, pw, 0.4, 0.12)
    pillows.append(Piece(pw, 0.4, 0.12, p_parts, []))
  return Piece(w, d, head_h, parts, contacts), pillows


def sofa(rng: np.random.Generator) -> Piece:
  """A sofa facing +y: base, back, two arms and seat cushions."""
  w, d, h = rng.uniform(1.5, 2.4), rng.uniform(0.8, 0.95), rng.uniform(0.75, 0.9)
  seat_h, arm_w, back_d = rng.uniform(0.38, 0.45), rng.uniform(0.12, 0.2), rng.uniform(0.15, 0.22)
  arm_h = rng.uniform(0.55, 0.65)
  parts, contacts = [], []
  _box(parts, contacts, 0.0, 0.0, 0.0, w - 2 * arm_w, d, seat_h - 0.1)
  _box(parts, contacts, 0.0, -d / 2 + back_d / 2, 0.0, w - 2 * arm_w, back_d, h)
  for sx in (-1, 1):
    _box(parts, contacts, sx * (w / 2 - arm_w / 2), 0.0, 0.0, arm_w, d, arm_h)
  n = int(np.clip(round((w - 2 * arm_w) / 0.6), 1, 3))
  cw = (w - 2 * arm_w) / n
  for i in range(n):
    _box(parts, contacts, -w / 2 + arm_w + (i + 0.5) * cw, back_d / 2, seat_h - 0.1,
         cw - 0.01, d - back_d, 0.1)
  return Piece(w, d, h, parts, contacts)


def cabinet(rng: np.random.Generator, tall: bool | None = None) -> Piece:
  """A cabinet: a body with a plinth and door handles on the front."""
  tall = rng.random() < 0.4 if tall is None else tall
  w, d = rng.uniform(0.5, 1.2), rng.uniform(0.4, 0.6)
  h = rng.uniform(1.6, 2.0) if tall else rng.uniform(0.7, 1.0)
  parts, contacts = [], []
  _box(parts, contacts, 0.0, -0.01, 0.0, w - 0.02, d - 0.02, 0.08)
  _box(parts, contacts, 0.0, 0.0, 0.08, w, d, h - 0.08)
  handles = (-0.06, 0.06) if w > 0.7 else (w / 2 - 0.08,)
  for x in handles:
    _box(parts, contacts, x, d / 2 + 0.01, 0.5 * h + 0.1, 0.02, 0.02, 0.12)
  return Piece(w, d, h, parts, contacts)


def bookshelf(rng: np.random.Generator) -> tuple[Piece, list[Piece]]:
  """An open bookshelf (sides, back, shelves) and rows of books as separate pieces."""
  w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.4), rng.uniform(1.2, 2.0)
  t = 0.025
  parts, contacts = [], []
  for sx in (-1, 1):
    _box(parts, contacts, sx * (w / 2 - t / 2), 0.0, 0.0, t, d, h)
  _box(parts, contacts, 0.0, -d / 2 + 0.005, 0.0, w - 2 * t, 0.01, h)
  n = int(rng.integers(3, 6))
  levels = np.linspace(0.05, h - t, n + 1)
  books = []
  for k, z in enumerate(levels):
    _box(parts, contacts, 0.0, 0.005, 0.0 if k == 0 else z, w - 2 * t, d - 0.01,
         z + t if k == 0 else t)
    if k < n and rng.random() < 0.75:
      room = levels[k + 1] - z - t
      bw = rng.uniform(0.3, 0.9) * (w - 2 * t)
      bh = min(room - 0.02, rng.uniform(0.18, 0.3))
      if bh > 0.08:
        x0 = -w / 2 + t + rng.uniform(0, w - 2 * t - bw)
        b_parts: list[Primitive] = []
        _box(b_parts, [], x0 + bw / 2, 0.0, z + t, bw, d - 0.06, bh)
        books.append(Piece(bw, d - 0.06, bh, b_parts, []))
  return Piece(w, d, h, parts, contacts), books


def counter(rng: np.random.Generator, width: float) -> tuple[Piece, Piece]:
  """A kitchen counter top and the base cabinet under it (separate objects, as in ScanNet)."""
  d, h = rng.uniform(0.58, 0.65), rng.uniform(0.88, 0.92)
  top_parts, base_parts, contacts = [], [], []
  _box(top_parts, [], 0.0, 0.01, h - 0.04, width, d + 0.02, 0.04)
  _box(base_parts, contacts, 0.0, -0.02, 0.0, width, d - 0.04, h - 0.04)
  for x in np.arange(-width / 2 + 0.3, width / 2 - 0.1, 0.6):
    _box(base_parts, [], x, d / 2 - 0.01, h - 0.2, 0.12, 0.02, 0.02)
  return Piece(width, d, h, top_parts, []), Piece(width, d, h - 0.04, base_parts, contacts)


def sink_on_counter(rng: np.random.Generator, counter_height: float) -> Piece:
  """A basin standing on a counter top (local origin on the floor below it)."""
  w, d = rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.45)
  parts: list[Primitive] = []
  _box(parts, [], 0.0, 0.0, counter_height, w, d, 0.06)
  parts.append(Cylinder(np.array([0.0, -d / 2 + 0.05, counter_height]), 0.015, 0.25))
  return Piece(w, d, counter_height + 0.06, parts, [])


def pedestal_sink(rng: np.random.Generator) -> Piece:
  """A bathroom sink: a basin on a round pedestal."""
  w, d, h = rng.uniform(0.45, 0.6), rng.uniform(0.35, 0.45), rng.uniform(0.8, 0.88)
  parts, contacts = [], []
  parts.append(Cylinder(np.array([0.0, -0.03, 0.0]), 0.09, h - 0.15))
  contacts.append((0.0, -0.03, 0.08, 0.08))
  _box(parts, contacts, 0.0, 0.0, h - 0.15, w, d, 0.15)
  return Piece(w, d, h, parts, contacts)


def toilet(rng: np.random.Generator) -> Piece:
  """A toilet facing +y: pedestal, round bowl, cistern at the back."""
  parts, contacts = [], []
  r = rng.uniform(0.17, 0.2)
  _box(parts, contacts, 0.0, 0.02, 0.0, 0.24, 0.35, 0.3)
  parts.append(Cylinder(np.array([0.0, 0.08, 0.3]), r, 0.12))
  _box(parts, contacts, 0.0, -0.25, 0.0, 0.38, 0.18, rng.uniform(0.75, 0.85))
  return Piece(0.4, 0.7, 0.85, parts, contacts)


def refrigerator(rng: np.random.Generator) -> Piece:
  """A tall box with a handle."""
  w, d, h = rng.uniform(0.6, 0.9), rng.uniform(0.62, 0.75), rng.uniform(1.6, 1.95)
  parts, contacts = [], []
  _box(parts, contacts, 0.0, 0.0, 0.0, w, d, h)
  _box(parts, contacts, w / 2 - 0.08, d / 2 + 0.02, h * 0.45, 0.03, 0.04, 0.4)
  return Piece(w, d, h, parts, contacts)


def picture(rng: np.random.Generator) -> Piece:
  """A framed picture hung on a wall: local origin at the wall, bottom edge at z = 0."""
  w, h = rng.uniform(0.3, 1.0), rng.uniform(0.3, 0.8)
  parts: list[Primitive] = []
  _box(parts, [], 0.0, 0.0, 0.0, w, 0.025, h)
  return Piece(w, 0.025, h, parts, [])


def place(piece: Piece, x: float, y: float, yaw: float, z: float = 0.0
          ) -> tuple[list[Primitive], list[tuple[np.ndarray, np.ndarray, float]]]:
  """Moves a piece: rotate its local frame by `yaw` about z, then translate to (x, y, z).

  Returns the room-frame primitives and floor contacts as (centre xy (2,), half sizes (2,),
  yaw) rectangles.
  """
  rot = rotation_z(yaw)
  shift = np.array([x, y, z])
  out: list[Primitive] = []
  for p in piece.parts:
    if isinstance(p, Quad):
      out.append(Quad(rot @ p.origin + shift, rot @ p.u, rot @ p.v, p.holes))
    else:
      out.append(dataclasses.replace(p, bottom=rot @ p.bottom + shift))
  contacts = [((rot @ np.array([cx, cy, 0.0]) + shift)[:2], np.array([hx, hy]), yaw)
              for cx, cy, hx, hy in piece.floor_contacts]
  return out, contacts
