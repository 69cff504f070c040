"""The z-buffer rasteriser against an independent float64 ray caster (Moller-Trumbore)."""

import numpy as np

from jaxseg.synthetic import render
from jaxseg.synthetic.primitives import box_quads

WIDTH, HEIGHT = 48, 36


def _boxes_mesh():
  """Two boxes and a floor quad as two triangles per face, with random vertex colours."""
  quads = (box_quads((0.0, 0.0, 0.5), (1.0, 0.8, 1.0), yaw=0.3) +
           box_quads((0.9, 0.9, 0.3), (0.5, 0.5, 0.6), yaw=-0.5, open_bottom=True) +
           box_quads((0.0, 0.0, -0.05), (4.0, 4.0, 0.1)))
  verts, faces = [], []
  for q in quads:
    base = len(verts)
    verts += [q.origin, q.origin + q.u, q.origin + q.u + q.v, q.origin + q.v]
    faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
  colors = np.random.default_rng(0).uniform(0, 255, (len(verts), 3))
  return np.asarray(verts), np.asarray(faces), colors


def _ray_cast(verts, faces, colors, pose, k):
  """Per pixel: nearest front-facing hit along the pixel ray; z depth and colour."""
  rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
  dirs_cam = np.stack([(cols - k[0, 2]) / k[0, 0], (rows - k[1, 2]) / k[1, 1],
                       np.ones_like(cols, float)], -1).reshape(-1, 3)
  dirs = dirs_cam @ pose[:3, :3].T
  origin = pose[:3, 3]
  depth = np.zeros(len(dirs))
  color = np.zeros((len(dirs), 3))
  best = np.full(len(dirs), np.inf)
  for f in faces:
    a, b, c = verts[f]
    e1, e2 = b - a, c - a
    if np.dot(np.cross(e1, e2), a - origin) >= 0:  # back face
      continue
    p = np.cross(dirs, e2)
    det = p @ e1
    tvec = origin - a
    u = (p @ tvec) / det
    q = np.cross(tvec, e1)
    v = (dirs @ q) / det
    t = (q @ e2) / det  # ray parameter = camera z since dirs_cam has z = 1
    hit = (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0.1) & (t < best)
    best[hit] = t[hit]
    depth[hit] = t[hit]
    w = np.stack([1 - u - v, u, v], -1)[hit]
    color[hit] = w @ colors[f]
  return depth.reshape(HEIGHT, WIDTH), color.reshape(HEIGHT, WIDTH, 3)


def test_rasteriser_matches_ray_caster():
  verts, faces, colors = _boxes_mesh()
  k = render.intrinsics_for(WIDTH, HEIGHT)
  for eye in ([2.5, -1.8, 1.6], [-2.0, 1.5, 1.2], [0.3, -2.6, 2.2]):
    pose = render.look_at(np.array(eye), np.array([0.2, 0.2, 0.3]))
    rgb, depth = render.render_rgbd(verts, faces, colors, pose, k, WIDTH, HEIGHT)
    ref_depth, ref_color = _ray_cast(verts, faces, colors, pose, k)
    both = (depth > 0) & (ref_depth > 0)
    # Coverage differs at most on pixels exactly on silhouette edges.
    assert ((depth > 0) != (ref_depth > 0)).sum() <= 2
    assert both.mean() > 0.3
    close = np.abs(depth - ref_depth) < 1e-5
    # Where two surfaces meet in one pixel (a crease) either may win; elsewhere exact.
    assert close[both].mean() > 0.97
    np.testing.assert_allclose(rgb[both & close], ref_color[both & close], atol=1.0)


def test_look_at_follows_scannet_camera_convention():
  eye, target = np.array([1.0, 2.0, 1.5]), np.array([3.0, 1.0, 0.5])
  pose = render.look_at(eye, target)
  np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)
  assert np.linalg.det(pose[:3, :3]) > 0
  k = render.intrinsics_for(640, 480)
  cam = (target - eye) @ pose[:3, :3]
  np.testing.assert_allclose(cam[:2] / cam[2] * k[0, 0] + k[:2, 2], k[:2, 2], atol=1e-9)
  assert abs(pose[2, 0]) < 1e-12  # x (right) is horizontal
  assert pose[2, 1] < 0  # y points down in the world


def test_empty_view_gives_zero_depth():
  verts, faces, colors = _boxes_mesh()
  pose = render.look_at(np.array([0.0, 0.0, 10.0]), np.array([5.0, 0.0, 10.0]))
  rgb, depth = render.render_rgbd(verts, faces, colors, pose, render.intrinsics_for(32, 24),
                                  32, 24)
  assert not depth.any() and not rgb.any()
