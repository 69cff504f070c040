"""Room layouts and meshing against independent geometric references."""

import numpy as np
import pytest
from scipy import spatial

from jaxseg.synthetic import mesh, rooms
from jaxseg.synthetic.primitives import Cylinder, Quad, box_quads


def _triangle_normals(verts, faces):
  n = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
  return n / np.linalg.norm(n, axis=1, keepdims=True)


def test_box_faces_point_outwards():
  center = np.array([0.3, -0.2, 0.5])
  for q in box_quads(center, (0.4, 0.7, 1.0), yaw=0.7):
    face_center = q.origin + 0.5 * q.u + 0.5 * q.v
    assert np.dot(q.normal, face_center - center) > 0
    assert abs(np.dot(q.u, q.v)) < 1e-12


def test_quad_grid_spacing_winding_and_holes():
  q = Quad(np.array([0.0, 0.0, 0.0]), np.array([2.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.5]),
           holes=((0.5, 1.2, 0.0, 1.0),))
  surf = mesh._quad_surface(q, spacing=0.05, segment_size=0.3)  # pylint: disable=protected-access
  normals = _triangle_normals(surf.vertices, surf.faces)
  np.testing.assert_allclose(normals, np.broadcast_to(q.normal, normals.shape), atol=1e-9)
  nn_dist = spatial.cKDTree(surf.vertices).query(surf.vertices, k=2)[0][:, 1]
  assert nn_dist.max() <= 0.05 + 1e-9 and nn_dist.min() > 0.03
  centroid = surf.vertices[surf.faces].mean(1)
  in_hole = ((centroid[:, 0] > 0.5) & (centroid[:, 0] < 1.2) & (centroid[:, 2] < 1.0))
  assert not in_hole.any()
  # Area covered by triangles = quad area - hole area.
  area = 0.5 * np.linalg.norm(np.cross(surf.vertices[surf.faces[:, 1]] - surf.vertices[
      surf.faces[:, 0]], surf.vertices[surf.faces[:, 2]] - surf.vertices[surf.faces[:, 0]]),
                              axis=1).sum()
  assert abs(area - (3.0 - 0.7)) < 0.1


def test_cylinder_surfaces_are_outward_and_on_the_cylinder():
  c = Cylinder(np.array([1.0, 2.0, 0.5]), 0.3, 0.4, top_cap=True, bottom_cap=True)
  side, top, bottom = mesh._cylinder_surfaces(c, 0.03, 0.3)  # pylint: disable=protected-access
  radial = side.vertices[:, :2] - c.bottom[:2]
  np.testing.assert_allclose(np.linalg.norm(radial, axis=1), 0.3, atol=1e-9)
  centroid = side.vertices[side.faces].mean(1)
  normals = _triangle_normals(side.vertices, side.faces)
  assert (np.einsum("ij,ij->i", normals[:, :2], centroid[:, :2] - c.bottom[:2]) > 0).all()
  for cap, sign, z in ((top, 1, 0.9), (bottom, -1, 0.5)):
    np.testing.assert_allclose(cap.vertices[:, 2], z)
    assert (np.sign(_triangle_normals(cap.vertices, cap.faces)[:, 2]) == sign).all()
    area = 0.5 * np.abs(np.cross(cap.vertices[cap.faces[:, 1]] - cap.vertices[cap.faces[:, 0]],
                                 cap.vertices[cap.faces[:, 2]] - cap.vertices[cap.faces[:, 0]])
                        [:, 2]).sum()
    assert abs(area - np.pi * 0.09) < 0.01


@pytest.mark.parametrize("scene_type", rooms.SCENE_TYPES)
def test_room_layout_is_physical(scene_type):
  room = rooms.generate_room(np.random.default_rng(7), scene_type)
  sx, sy = room.size
  cats = [o.category for o in room.objects]
  assert cats.count("wall") == 4 and cats.count("floor") == 1 and "door" in cats
  assert len(set(cats) - {"wall", "floor", "ceiling", "door", "window"}) >= 2
  # Floor contacts of different objects never overlap and stay in the room.
  grid = np.stack(np.meshgrid(np.arange(0.005, sx, 0.01), np.arange(0.005, sy, 0.01),
                              indexing="ij"), -1).reshape(-1, 2)
  owner = np.full(len(grid), -1)
  for index, obj in enumerate(room.objects):
    if obj.floor_contacts:
      inside = mesh._in_rectangles(grid, obj.floor_contacts)  # pylint: disable=protected-access
      assert not (inside & (owner >= 0) & (owner != index)).any(), obj.category
      owner[inside] = index
  for obj in room.objects:
    for p in obj.parts:
      pts = ([p.origin, p.origin + p.u, p.origin + p.v, p.origin + p.u + p.v]
             if isinstance(p, Quad) else [p.bottom + [dx, dy, 0] for dx in (-p.radius, p.radius)
                                          for dy in (-p.radius, p.radius)])
      pts = np.asarray(pts)
      assert (pts[:, 2] >= -1e-9).all() and (pts[:, 2] <= room.height + 1e-9).all()
      assert (pts[:, 0] > -0.1).all() and (pts[:, 0] < sx + 0.1).all(), obj.category
      assert (pts[:, 1] > -0.1).all() and (pts[:, 1] < sy + 0.1).all(), obj.category


def _quad_area(q):
  area = np.linalg.norm(np.cross(q.u, q.v))
  return area - sum((s1 - s0) * (t1 - t0) for s0, s1, t0, t1 in q.holes)


def test_mesh_density_labels_segments_and_artefacts():
  rng = np.random.default_rng(1)
  room = rooms.generate_room(rng, "Bedroom / Hotel")
  spacing = 0.05
  m = mesh.mesh_room(room, rng, mesh.MeshConfig(spacing=spacing))
  area = sum(_quad_area(p) if isinstance(p, Quad) else
             2 * np.pi * p.radius * p.height + np.pi * p.radius ** 2 * (p.top_cap + p.bottom_cap)
             for o in room.objects for p in o.parts)
  # A grid at this spacing has ~area / spacing^2 vertices; artefacts remove some.
  ratio = len(m.vertices) * spacing ** 2 / area
  assert 0.5 < ratio < 1.3, ratio
  expected_nyu40 = np.array([o.nyu40 for o in room.objects])[m.objects]
  np.testing.assert_array_equal(m.nyu40, expected_nyu40)
  # A segment never spans two objects and is a compact patch.
  for seg in np.unique(m.segments):
    members = m.segments == seg
    assert len(np.unique(m.objects[members])) == 1
    extent = m.vertices[members].max(0) - m.vertices[members].min(0)
    assert np.linalg.norm(extent) < 1.0
  # Floor under the bed (its footprint minus a margin) is unobserved.
  bed = next(o for o in room.objects if o.category == "bed")
  floor = m.vertices[m.nyu40 == 2][:, :2].astype(np.float64)
  shrunk = [(c, h - 0.08, yaw) for c, h, yaw in bed.floor_contacts]
  assert not mesh._in_rectangles(floor, shrunk).any()  # pylint: disable=protected-access
  # The ceiling is partly missing; vertices jitter by ~5 mm around the floor plane.
  ceiling_area = room.size[0] * room.size[1]
  assert (m.nyu40 == 22).sum() * spacing ** 2 < 0.9 * ceiling_area
  assert 0.003 < np.std(m.vertices[m.nyu40 == 2][:, 2]) < 0.008
  assert m.faces.max() < len(m.vertices) and len(np.unique(m.faces)) == len(m.vertices)
