"""Procedural room layouts: walls with doors and windows, floor, ceiling and furniture.

`generate_room(rng, scene_type)` returns a `Room` in the axis-aligned frame (metres, z up, floor
at z = 0, walls along x = 0, x = size_x, y = 0, y = size_y). Furniture stands on the floor, never
overlaps other furniture, walls or the space in front of the door; pieces meant for walls (beds,
cabinets, shelves, sofas, counters, desks) stand with their back against one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxseg.synthetic import furniture
from jaxseg.synthetic.furniture import Piece
from jaxseg.synthetic.primitives import Primitive, Quad, box_quads

# Raw ScanNet categories the generator uses -> NYU40 id (as in scannetv2-labels.combined.tsv).
RAW_CATEGORY_NYU40 = {
    "wall": 1, "floor": 2, "cabinet": 3, "kitchen cabinets": 3, "bed": 4, "chair": 5,
    "sofa": 6, "table": 7, "door": 8, "window": 9, "bookshelf": 10, "picture": 11,
    "counter": 12, "desk": 14, "pillow": 18, "ceiling": 22, "books": 23, "refrigerator": 24,
    "toilet": 33, "sink": 34,
}
# NYU40 class names of those ids (column nyu40class of the ScanNet tsv).
NYU40_CLASS_NAMES = {
    1: "wall", 2: "floor", 3: "cabinet", 4: "bed", 5: "chair", 6: "sofa", 7: "table",
    8: "door", 9: "window", 10: "bookshelf", 11: "picture", 12: "counter", 14: "desk",
    18: "pillow", 22: "ceiling", 23: "books", 24: "refridgerator", 33: "toilet", 34: "sink",
}
SCENE_TYPES = ("Bedroom / Hotel", "Living room / Lounge", "Office", "Kitchen", "Bathroom")

_WALL_COLORS = ((236, 233, 226), (226, 220, 204), (208, 218, 228), (231, 214, 198),
                (204, 214, 192), (240, 240, 236))
_WOOD_COLORS = ((152, 102, 62), (122, 82, 52), (182, 142, 98), (92, 62, 42), (202, 172, 132))
_FABRIC_COLORS = ((122, 62, 60), (62, 82, 122), (92, 92, 96), (152, 132, 102), (62, 102, 72),
                  (182, 172, 160), (40, 40, 46))
_PAINT_COLORS = ((235, 235, 232), (60, 60, 64), (150, 152, 156), (200, 190, 170))


@dataclasses.dataclass
class SceneObject:
  """One annotated object: raw ScanNet category, surfaces, material name and base RGB."""
  category: str
  parts: list[Primitive]
  material: str
  color: np.ndarray
  # Floor contact rectangles (centre xy (2,), half sizes (2,), yaw): floor unobserved there.
  floor_contacts: list[tuple[np.ndarray, np.ndarray, float]] = dataclasses.field(
      default_factory=list)

  @property
  def nyu40(self) -> int:
    return RAW_CATEGORY_NYU40[self.category]


@dataclasses.dataclass
class Room:
  """An axis-aligned room: size (x, y), ceiling height, scene type and its objects."""
  size: tuple[float, float]
  height: float
  scene_type: str
  objects: list[SceneObject]


@dataclasses.dataclass(frozen=True)
class _Wall:
  start: np.ndarray  # (2,)
  direction: np.ndarray  # (2,) unit
  length: float

  @property
  def inward(self) -> np.ndarray:
    return np.array([-self.direction[1], self.direction[0]])

  def point(self, s: float, offset: float = 0.0) -> np.ndarray:
    """(2,) point `s` metres along the wall, `offset` metres into the room."""
    return self.start + s * self.direction + offset * self.inward

  def yaw(self) -> float:
    """Yaw that turns a piece's front (+y) to face into the room."""
    n = self.inward
    return float(np.arctan2(-n[0], n[1]))


class _FloorPlan:
  """Occupancy grid (5 cm cells) used to place furniture without overlaps."""

  def __init__(self, size_x: float, size_y: float, cell: float = 0.05):
    self.size = (size_x, size_y)
    self.cell = cell
    xs = (np.arange(int(np.ceil(size_x / cell))) + 0.5) * cell
    ys = (np.arange(int(np.ceil(size_y / cell))) + 0.5) * cell
    self.centers = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1)
    self.occupied = np.zeros(self.centers.shape[:2], bool)

  def _cells(self, center, half, yaw) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    d = self.centers - np.asarray(center)
    local_x = d[..., 0] * c + d[..., 1] * s
    local_y = -d[..., 0] * s + d[..., 1] * c
    return (np.abs(local_x) <= half[0]) & (np.abs(local_y) <= half[1])

  def fits(self, center, half, yaw) -> bool:
    c, s = abs(np.cos(yaw)), abs(np.sin(yaw))
    ex, ey = c * half[0] + s * half[1], s * half[0] + c * half[1]
    if (center[0] - ex < -1e-6 or center[1] - ey < -1e-6 or
        center[0] + ex > self.size[0] + 1e-6 or center[1] + ey > self.size[1] + 1e-6):
      return False
    return not (self._cells(center, half, yaw) & self.occupied).any()

  def mark(self, center, half, yaw) -> None:
    self.occupied |= self._cells(center, half, yaw)


class _RoomBuilder:
  """Places walls, openings and furniture for one room."""

  def __init__(self, rng: np.random.Generator, scene_type: str):
    self.rng = rng
    self.scene_type = scene_type
    small = scene_type == "Bathroom"
    self.size_x = float(rng.uniform(2.2, 3.4) if small else rng.uniform(3.5, 6.5))
    self.size_y = float(rng.uniform(1.9, 3.0) if small else rng.uniform(3.2, 5.5))
    self.height = float(rng.uniform(2.5, 3.0))
    sx, sy = self.size_x, self.size_y
    corners = [np.array(c, float) for c in ((0, 0), (sx, 0), (sx, sy), (0, sy))]
    self.walls = []
    for k in range(4):
      a, b = corners[k], corners[(k + 1) % 4]
      length = float(np.linalg.norm(b - a))
      self.walls.append(_Wall(a, (b - a) / length, length))
    self.plan = _FloorPlan(sx, sy)
    # Per wall: (s0, s1, z0, z1, kind) openings.
    self.openings: list[list[tuple[float, float, float, float, str]]] = [[] for _ in range(4)]
    self.objects: list[SceneObject] = []

  # -- structure ---------------------------------------------------------------------------

  def add_openings(self) -> None:
    rng = self.rng
    door_wall = int(rng.integers(4))
    wall = self.walls[door_wall]
    width = float(rng.uniform(0.8, 0.95))
    s0 = float(rng.uniform(0.15, wall.length - width - 0.15))
    self.openings[door_wall].append((s0, s0 + width, 0.0, float(rng.uniform(2.0, 2.15)), "door"))
    center = wall.point(s0 + width / 2, 0.5)
    self.plan.mark(center, (width / 2 + 0.1, 0.5), wall.yaw())
    n_windows = 0 if self.scene_type == "Bathroom" and rng.random() < 0.5 else int(
        rng.integers(1, 4))
    for _ in range(n_windows):
      k = int(rng.integers(4))
      wall = self.walls[k]
      width = float(rng.uniform(0.7, min(2.0, wall.length - 0.6)))
      s0 = float(rng.uniform(0.3, wall.length - width - 0.3))
      z0 = float(rng.uniform(0.85, 1.0))
      z1 = float(min(self.height - 0.25, rng.uniform(1.9, 2.2)))
      if all(s0 > b + 0.2 or s0 + width < a - 0.2 for a, b, *_ in self.openings[k]):
        self.openings[k].append((s0, s0 + width, z0, z1, "window"))

  def add_shell(self) -> None:
    rng = self.rng
    sx, sy, h = self.size_x, self.size_y, self.height
    floor_kind = rng.choice(["planks", "tiles", "carpet"])
    floor_color = {"planks": _WOOD_COLORS, "tiles": ((190, 186, 176), (150, 150, 150),
                                                     (210, 200, 180)),
                   "carpet": _FABRIC_COLORS}[floor_kind]
    self._add("floor", [Quad(np.zeros(3), np.array([sx, 0, 0.0]), np.array([0, sy, 0.0]))],
              str(floor_kind), floor_color)
    self._add("ceiling", [Quad(np.array([0, sy, h]), np.array([sx, 0, 0.0]),
                               np.array([0, -sy, 0.0]))], "paint", ((242, 242, 240),))
    wall_color = _WALL_COLORS[int(rng.integers(len(_WALL_COLORS)))]
    for k, wall in enumerate(self.walls):
      end = wall.point(wall.length)
      u = np.array([*(wall.start - end), 0.0])
      holes = tuple((wall.length - s1, wall.length - s0, z0, z1)
                    for s0, s1, z0, z1, _ in self.openings[k])
      self._add("wall", [Quad(np.array([*end, 0.0]), u, np.array([0, 0, h]), holes)], "paint",
                (wall_color,))
      for s0, s1, z0, z1, kind in self.openings[k]:
        self._add_opening(wall, s0, s1, z0, z1, kind)

  def _add_opening(self, wall: _Wall, s0, s1, z0, z1, kind) -> None:
    """A door or window panel recessed behind the wall plane, with jambs around the hole."""
    rng = self.rng
    recess = 0.04 if kind == "door" else 0.08
    d3 = np.array([*wall.direction, 0.0])
    n3 = np.array([*wall.inward, 0.0])
    ez = np.array([0.0, 0.0, 1.0])
    pa = np.array([*wall.point(s0), 0.0])
    pb = np.array([*wall.point(s1), 0.0])
    width, tall = s1 - s0, (z1 - z0) * ez
    parts: list[Primitive] = [
        Quad(pb - recess * n3 + z0 * ez, -width * d3, tall),        # the panel, facing in
        Quad(pa - recess * n3 + z0 * ez, recess * n3, tall),        # jamb at s0
        Quad(pb + z0 * ez, -recess * n3, tall),                     # jamb at s1
        Quad(pa - recess * n3 + z1 * ez, recess * n3, width * d3),  # head, facing down
    ]
    if kind == "door":
      handle_at = pa + (width - 0.1) * d3 - 0.01 * n3 + 1.0 * ez
      parts += box_quads(handle_at, (0.12, 0.05, 0.02), wall.yaw())
      colors = _WOOD_COLORS + ((235, 235, 232),)
      self._add("door", parts, "wood" if rng.random() < 0.6 else "paint", colors)
    else:
      parts.append(Quad(pa - recess * n3 + z0 * ez, width * d3, recess * n3))  # sill
      sill = pa + 0.5 * width * d3 + 0.03 * n3 + (z0 - 0.015) * ez
      parts += box_quads(sill, (width + 0.1, 0.06, 0.03), wall.yaw())
      self._add("window", parts, "glass", ((172, 198, 218), (190, 205, 212)))

  # -- furniture ---------------------------------------------------------------------------

  def _add(self, category, parts, material, palette, contacts=()) -> SceneObject:
    color = np.asarray(palette[int(self.rng.integers(len(palette)))], np.float64)
    obj = SceneObject(category, list(parts), material, color, list(contacts))
    self.objects.append(obj)
    return obj

  def _put(self, category, piece: Piece, x, y, yaw, material, palette) -> bool:
    """Stands `piece` on the floor if its footprint is free; returns whether it was placed."""
    half = (piece.width / 2 + 0.01, piece.depth / 2 + 0.01)
    if not self.plan.fits((x, y), half, yaw):
      return False
    self.plan.mark((x, y), half, yaw)
    parts, contacts = furniture.place(piece, x, y, yaw)
    self._add(category, parts, material, palette, contacts)
    return True

  def _wall_spot(self, piece: Piece, avoid_windows: bool):
    """Random free position with the piece's back against a wall: (x, y, yaw, wall) or None."""
    for _ in range(40):
      k = int(self.rng.integers(4))
      wall = self.walls[k]
      if wall.length < piece.width + 0.1:
        continue
      s = float(self.rng.uniform(piece.width / 2 + 0.02, wall.length - piece.width / 2 - 0.02))
      if avoid_windows and any(s + piece.width / 2 > a and s - piece.width / 2 < b
                               for a, b, *_ in self.openings[k]):
        continue
      x, y = wall.point(s, piece.depth / 2 + 0.012)
      half = (piece.width / 2 + 0.01, piece.depth / 2 + 0.01)
      if self.plan.fits((x, y), half, wall.yaw()):
        return x, y, wall.yaw(), wall
    return None

  def against_wall(self, category, piece, material, palette) -> tuple | None:
    spot = self._wall_spot(piece, avoid_windows=piece.height > 0.8)
    if spot is None:
      return None
    x, y, yaw, wall = spot
    self._put(category, piece, x, y, yaw, material, palette)
    return spot

  def free_spot(self, piece: Piece, margin: float):
    for _ in range(40):
      yaw = float(self.rng.choice([0.0, np.pi / 2]) + self.rng.normal(0.0, 0.15))
      x = float(self.rng.uniform(0.3, self.size_x - 0.3))
      y = float(self.rng.uniform(0.3, self.size_y - 0.3))
      if self.plan.fits((x, y), (piece.width / 2 + margin, piece.depth / 2 + margin), yaw):
        return x, y, yaw
    return None

  def chairs_around(self, x, y, yaw, width, depth, count) -> None:
    """Up to `count` chairs facing the table at (x, y, yaw) of the given footprint."""
    rng = self.rng
    sides = [(0.0, 1.0, depth), (0.0, -1.0, depth), (1.0, 0.0, width), (-1.0, 0.0, width)]
    palette, material = self._chair_style()
    placed = 0
    for i in rng.permutation(4):
      if placed >= count:
        return
      ax, ay, extent = sides[i]
      along = rng.uniform(-0.15, 0.15) * (width if ax == 0 else depth)
      c = furniture.chair(rng)
      dist = extent / 2 + c.depth / 2 + rng.uniform(0.03, 0.2)
      lx, ly = ax * dist + (along if ax == 0 else 0.0), ay * dist + (along if ay == 0 else 0.0)
      cos, sin = np.cos(yaw), np.sin(yaw)
      cx, cy = x + cos * lx - sin * ly, y + sin * lx + cos * ly
      # The chair's front (+y) must point at the table: towards -(ax, ay) in table frame.
      chair_yaw = yaw + np.arctan2(ax, -ay) + rng.normal(0.0, 0.1)
      placed += self._put("chair", c, cx, cy, chair_yaw, material, palette)

  def _chair_style(self):
    kind = self.rng.choice(["wood", "fabric", "paint"])
    return {"wood": _WOOD_COLORS, "fabric": _FABRIC_COLORS, "paint": _PAINT_COLORS}[kind], kind

  def table_group(self, low=False, chairs=(2, 5)) -> None:
    piece = furniture.table(self.rng, low=low)
    spot = self.free_spot(piece, margin=0.0 if low else 0.6)
    if spot is None:
      return
    x, y, yaw = spot
    self._put("table", piece, x, y, yaw, "wood", _WOOD_COLORS + _PAINT_COLORS[:2])
    if not low:
      self.chairs_around(x, y, yaw, piece.width, piece.depth,
                         int(self.rng.integers(chairs[0], chairs[1])))

  def desk_with_chair(self) -> None:
    piece = furniture.desk(self.rng)
    spot = self.against_wall("desk", piece, "wood", _WOOD_COLORS + _PAINT_COLORS)
    if spot is None:
      return
    x, y, yaw, wall = spot
    c = furniture.chair(self.rng)
    dist = piece.depth / 2 + c.depth / 2 + self.rng.uniform(0.05, 0.25)
    cx, cy = np.array([x, y]) + dist * wall.inward
    palette, material = self._chair_style()
    self._put("chair", c, cx, cy, yaw + np.pi + self.rng.normal(0.0, 0.2), material, palette)

  def bed(self) -> None:
    piece, pillows = furniture.bed(self.rng)
    spot = self.against_wall("bed", piece, "fabric", _WOOD_COLORS + _FABRIC_COLORS)
    if spot is not None:
      x, y, yaw, _ = spot
      for pillow in pillows:
        self._add("pillow", furniture.place(pillow, x, y, yaw)[0], "fabric",
                  ((236, 236, 232), (200, 210, 225), (230, 210, 190)))

  def bookshelf(self) -> None:
    piece, books = furniture.bookshelf(self.rng)
    spot = self.against_wall("bookshelf", piece, "wood", _WOOD_COLORS + _PAINT_COLORS[:2])
    if spot is not None:
      x, y, yaw, _ = spot
      for row in books:
        self._add("books", furniture.place(row, x, y, yaw)[0], "spines", _FABRIC_COLORS)

  def cabinet(self, tall=None) -> None:
    self.against_wall("cabinet", furniture.cabinet(self.rng, tall), "wood",
                      _WOOD_COLORS + _PAINT_COLORS)

  def sofa(self) -> None:
    self.against_wall("sofa", furniture.sofa(self.rng), "fabric", _FABRIC_COLORS)

  def counter_with_sink(self) -> None:
    rng = self.rng
    wall = max(self.walls, key=lambda w: w.length)
    width = float(rng.uniform(1.2, min(2.8, wall.length - 0.3)))
    top, base = furniture.counter(rng, width)
    spot = self._wall_spot(base, avoid_windows=False)
    if spot is None:
      return
    x, y, yaw, _ = spot
    self._put("kitchen cabinets", base, x, y, yaw, "paint", _PAINT_COLORS + _WOOD_COLORS)
    self._add("counter", furniture.place(top, x, y, yaw)[0], "stone",
              ((90, 90, 92), (200, 196, 188), (150, 140, 130)))
    sink = furniture.sink_on_counter(rng, top.height)
    along = rng.uniform(-0.3, 0.3) * (width - sink.width)
    self._add("sink", furniture.place(sink, x + along * np.cos(yaw), y + along * np.sin(yaw),
                                      yaw)[0], "metal", ((196, 198, 202),))

  def toilet(self) -> None:
    self.against_wall("toilet", furniture.toilet(self.rng), "ceramic", ((240, 240, 240),))

  def pedestal_sink(self) -> None:
    self.against_wall("sink", furniture.pedestal_sink(self.rng), "ceramic", ((240, 240, 240),))

  def refrigerator(self) -> None:
    self.against_wall("refrigerator", furniture.refrigerator(self.rng), "metal",
                      ((226, 226, 226), (190, 192, 196), (60, 60, 62)))

  def pictures(self, count: int) -> None:
    rng = self.rng
    for _ in range(count):
      piece = furniture.picture(rng)
      k = int(rng.integers(4))
      wall = self.walls[k]
      if wall.length < piece.width + 0.4:
        continue
      s = float(rng.uniform(piece.width / 2 + 0.2, wall.length - piece.width / 2 - 0.2))
      z = float(rng.uniform(1.1, 1.5))
      if z + piece.height > self.height - 0.15:
        continue
      if any(s + piece.width / 2 > a - 0.1 and s - piece.width / 2 < b + 0.1
             for a, b, *_ in self.openings[k]):
        continue
      x, y = wall.point(s, piece.depth / 2 + 0.003)
      self._add("picture", furniture.place(piece, x, y, wall.yaw(), z)[0], "picture",
                _FABRIC_COLORS + _WOOD_COLORS)

  def furnish(self) -> None:
    rng = self.rng

    def chance(p: float) -> bool:
      return rng.random() < p

    if self.scene_type == "Bedroom / Hotel":
      self.bed()
      for _ in range(rng.integers(1, 3)):
        self.cabinet()
      if chance(0.7):
        self.desk_with_chair()
      if chance(0.6):
        self.bookshelf()
      if chance(0.3):
        self.sofa()
      self.pictures(int(rng.integers(1, 3)))
    elif self.scene_type == "Living room / Lounge":
      self.sofa()
      if chance(0.5):
        self.sofa()
      self.table_group(low=True)
      if chance(0.6):
        self.table_group()
      for _ in range(rng.integers(1, 3)):
        self.bookshelf()
      self.cabinet()
      self.pictures(int(rng.integers(1, 4)))
    elif self.scene_type == "Office":
      for _ in range(rng.integers(2, 5)):
        self.desk_with_chair()
      if chance(0.6):
        self.table_group()
      for _ in range(rng.integers(1, 3)):
        self.bookshelf()
      for _ in range(rng.integers(1, 3)):
        self.cabinet()
      if chance(0.3):
        self.sofa()
      self.pictures(int(rng.integers(0, 3)))
    elif self.scene_type == "Kitchen":
      self.counter_with_sink()
      self.refrigerator()
      if chance(0.6):
        self.cabinet(tall=True)
      self.table_group()
      if chance(0.3):
        self.bookshelf()
      self.pictures(int(rng.integers(0, 2)))
    else:
      self.toilet()
      if chance(0.5):
        self.pedestal_sink()
      else:
        self.counter_with_sink()
      if chance(0.5):
        self.cabinet(tall=False)


def generate_room(rng: np.random.Generator, scene_type: str) -> Room:
  """A furnished room of the given type (one of SCENE_TYPES)."""
  if scene_type not in SCENE_TYPES:
    raise ValueError(f"unknown scene type {scene_type!r}; choose one of {SCENE_TYPES}")
  builder = _RoomBuilder(rng, scene_type)
  builder.add_openings()
  builder.add_shell()
  builder.furnish()
  return Room((builder.size_x, builder.size_y), builder.height, scene_type, builder.objects)
