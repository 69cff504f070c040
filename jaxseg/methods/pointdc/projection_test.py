"""jaxseg.methods.pointdc.projection against a float64 numpy brute-force reference and constructed scenes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import testing
from jaxseg.methods.pointdc import projection
from jaxseg.errors import InputError

SIZE = (64, 48)  # (W, H)
K = np.array([[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]])



def _reference(points, valid, poses, k, size, tol, stride, depth=None, depth_k=None,
               depth_tol=None, min_depth=1e-3):
  """Brute force in float64: loops over views and points. Also returns `ambiguous`: points
  within 1e-4 of a decision boundary, where float32 may legitimately decide otherwise."""
  width, height = size
  num_views, num_points = len(poses), len(points)
  pixels = np.zeros((num_views, num_points, 2))
  zs = np.zeros((num_views, num_points))
  visible = np.zeros((num_views, num_points), bool)
  ambiguous = np.zeros((num_views, num_points), bool)
  near_half = lambda x: abs((x + 0.5) - np.round(x + 0.5)) < 1e-4
  for v in range(num_views):
    if not np.isfinite(poses[v]).all():
      continue
    w2c = np.linalg.inv(poses[v])
    cells = {}
    for j in range(num_points):
      if not valid[j]:
        continue
      cam = w2c[:3, :3] @ points[j] + w2c[:3, 3]
      zs[v, j] = cam[2]
      if cam[2] <= min_depth:
        continue
      u, w = (k @ cam)[:2] / cam[2]
      pixels[v, j] = u, w
      ambiguous[v, j] |= near_half(u) or near_half(w)
      if not (-0.5 <= u < width - 0.5 and -0.5 <= w < height - 0.5):
        continue
      cell = (int(np.floor(w + 0.5)) // stride, int(np.floor(u + 0.5)) // stride)
      cells.setdefault(cell, []).append(j)
    for members in cells.values():
      nearest = min(zs[v, j] for j in members)
      for j in members:
        visible[v, j] = zs[v, j] <= nearest + tol
        ambiguous[v, j] |= abs(zs[v, j] - nearest - tol) < 1e-4
    if depth is None:
      continue
    depth_h, depth_w = depth.shape[1:]
    for j in np.flatnonzero(visible[v]):
      cam = w2c[:3, :3] @ points[j] + w2c[:3, 3]
      du, dv = (depth_k @ cam)[:2] / cam[2]
      if not (-0.5 <= du < depth_w - 0.5 and -0.5 <= dv < depth_h - 0.5):
        continue
      ambiguous[v, j] |= near_half(du) or near_half(dv)
      reading = depth[v, int(np.floor(dv + 0.5)), int(np.floor(du + 0.5))]
      if reading > 0:
        visible[v, j] = abs(reading - cam[2]) < depth_tol
        ambiguous[v, j] |= abs(abs(reading - cam[2]) - depth_tol) < 1e-4
  return pixels, zs, visible, ambiguous


def _random_scene(rng, num_points=400):
  """Points in a 4 m box, three cameras looking in (one from below the box's far side, so
  some points are behind it), plus padded NaN rows."""
  points = rng.uniform([-2, -2, 0], [2, 2, 2.5], (num_points, 3))
  valid = np.ones(num_points, bool)
  valid[-7:] = False
  points[-7:-3] = np.nan
  poses = np.stack([testing.look_at(np.array([4.0, -3.0, 1.6]), [0, 0, 1]),
                    testing.look_at(np.array([-3.5, 1.0, 2.0]), [0.3, 0, 0.8]),
                    testing.look_at(np.array([0.2, 0.3, 1.2]), [3, 0.5, 1.0])])
  return points, valid, poses


def _assert_matches(out, ref):
  pixels, zs, visible, ambiguous = ref
  out_visible = np.asarray(out.visible)
  assert ambiguous.mean() < 0.01
  assert visible.sum() > 100
  np.testing.assert_array_equal(out_visible[~ambiguous], visible[~ambiguous])
  np.testing.assert_allclose(np.asarray(out.pixels), pixels, rtol=1e-5, atol=2e-3)
  np.testing.assert_allclose(np.asarray(out.depth), zs, atol=1e-5)


@pytest.mark.parametrize("stride", [1, 3])
def test_matches_float64_reference(stride):
  points, valid, poses = _random_scene(np.random.default_rng(stride))
  w2c = projection.world_to_camera(poses)
  out = projection.project_points(points, valid, w2c, K, SIZE, occlusion_tolerance=0.2,
                                  zbuffer_stride=stride)
  ref = _reference(points, valid, poses, K, SIZE, 0.2, stride)
  _assert_matches(out, ref)
  # The scene exercises every rejection: behind the camera, outside the image, occluded.
  assert (ref[1][2][valid] <= 0).any()
  in_front = ref[1] > 1e-3
  assert (in_front & ~ref[2]).any()
  assert np.isfinite(np.asarray(out.pixels)).all() and np.isfinite(np.asarray(out.depth)).all()
  assert not np.asarray(out.visible)[:, ~valid].any()


def test_padded_rows_do_not_occlude_or_leak():
  rng = np.random.default_rng(7)
  points, valid, poses = _random_scene(rng)
  w2c = projection.world_to_camera(poses)
  project = functools.partial(projection.project_points, world_to_camera=w2c, intrinsics=K,
                              image_size=SIZE, occlusion_tolerance=0.1, zbuffer_stride=2)
  base = project(points[valid], np.ones(valid.sum(), bool))
  # Padded rows right in front of every camera, or NaN, must change nothing.
  padded_points = np.concatenate([points[valid], poses[:, :3, 3] + 0.5 * poses[:, :3, 2],
                                  np.full((3, 3), np.nan)])
  padded_valid = np.arange(len(padded_points)) < valid.sum()
  out = project(padded_points, padded_valid)
  n = int(valid.sum())
  np.testing.assert_array_equal(np.asarray(out.visible)[:, :n], np.asarray(base.visible))
  np.testing.assert_array_equal(np.asarray(out.pixels)[:, :n], np.asarray(base.pixels))
  assert not np.asarray(out.visible)[:, n:].any()
  assert np.isfinite(np.asarray(out.pixels)).all() and np.isfinite(np.asarray(out.depth)).all()


def _two_planes(spacing=0.02):
  """Camera at the origin looking along +z. A 2 x 1.5 m back plane at z = 3 and a 0.6 x 0.6 m
  front plane at z = 1.5, both sampled on grids sparser than the pixels (offset so that no
  point projects onto a pixel border)."""
  xs, ys = np.meshgrid(np.arange(-1.0, 1.0, spacing) + 0.0071,
                       np.arange(-0.75, 0.75, spacing) + 0.0043)
  back = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 3.0)], 1)
  fx, fy = np.meshgrid(np.arange(-0.3, 0.3, spacing), np.arange(-0.3, 0.3, spacing))
  front = np.stack([fx.ravel(), fy.ravel(), np.full(fx.size, 1.5)], 1)
  return back, front


def test_zbuffer_hides_the_plane_behind_a_sparse_occluder():
  back, front = _two_planes()
  points = np.concatenate([back, front])
  size, k = (320, 240), np.array([[200.0, 0, 159.5], [0, 200.0, 119.5], [0, 0, 1]])
  pose = projection.world_to_camera(np.eye(4)[None])

  def visible(stride):
    return np.asarray(projection.project_points(
        points, np.ones(len(points), bool), pose, k, size, occlusion_tolerance=0.05,
        zbuffer_stride=stride).visible[0])

  # The front plane covers |x / z| < 0.2 in the image; behind it the back plane is hidden.
  ratio = np.abs(back[:, :2]) / 3.0
  hidden = (ratio < 0.2 - 0.02).all(1)   # a cell's margin inside the occluder's outline
  exposed = (ratio > 0.2 + 0.02).any(1)
  for stride in (4, 8):
    vis = visible(stride)
    assert vis[len(back):].all()
    assert not vis[:len(back)][hidden].any()
    assert vis[:len(back)][exposed].all()
  # Front points are 4 px apart: a per-pixel z-buffer lets hidden points through the gaps.
  assert visible(1)[:len(back)][hidden].mean() > 0.5


def test_depth_image_rejects_points_that_disagree():
  back, _ = _two_planes(spacing=0.05)
  size, k = (160, 120), np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
  # Half-resolution depth image (the wall spans depth rows 17-42, columns 23-56): a 3 m wall,
  # an occluder at 1 m that has no points on the left, no reading on the top rows and
  # 3.04 m (within tolerance) on the bottom rows.
  depth = np.full((1, 60, 80), 3.0, np.float32)
  depth[0, :, :30] = 1.0
  depth[0, :22] = 0.0
  depth[0, 38:] = 3.04
  depth_k = np.array([[50.0, 0, 39.5], [0, 50.0, 29.5], [0, 0, 1]])
  pose = np.eye(4)[None]
  out = projection.project_points(back, np.ones(len(back), bool),
                                  projection.world_to_camera(pose), k, size,
                                  occlusion_tolerance=0.05, zbuffer_stride=1, depth=depth,
                                  depth_intrinsics=depth_k, depth_tolerance=0.1)
  ref = _reference(back, np.ones(len(back), bool), pose, k, size, 0.05, 1, depth, depth_k, 0.1)
  _assert_matches(out, ref)
  vis = np.asarray(out.visible[0])
  in_image = np.asarray(projection.project_points(
      back, np.ones(len(back), bool), projection.world_to_camera(pose), k, size,
      occlusion_tolerance=0.05, zbuffer_stride=1).visible[0])
  depth_col = np.floor(back[:, 0] / 3.0 * 50 + 39.5 + 0.5)
  depth_row = np.floor(back[:, 1] / 3.0 * 50 + 29.5 + 0.5)
  occluded = in_image & (depth_col < 30) & (depth_row >= 22) & (depth_row < 38)
  no_reading = in_image & (depth_row < 22)
  assert occluded.sum() > 50 and not vis[occluded].any()
  assert no_reading.sum() > 50 and vis[no_reading].all()
  assert vis[in_image & ~occluded].all()
  # A tighter tolerance rejects the 3.04 m rows as well.
  tight = projection.project_points(back, np.ones(len(back), bool),
                                    projection.world_to_camera(pose), k, size,
                                    zbuffer_stride=1, depth=depth, depth_intrinsics=depth_k,
                                    depth_tolerance=0.02)
  assert not np.asarray(tight.visible[0])[in_image & (depth_row >= 38)].any()


def test_depth_without_intrinsics_must_match_image_size():
  with pytest.raises(InputError, match="need their own intrinsics"):
    projection.project_points(np.zeros((4, 3)), np.ones(4, bool), jnp.eye(4)[None], K, SIZE,
                              depth=np.zeros((1, 10, 10)))
  with pytest.raises(InputError, match="zbuffer_stride"):
    projection.project_points(np.zeros((4, 3)), np.ones(4, bool), jnp.eye(4)[None], K, SIZE,
                              zbuffer_stride=0)


def test_world_to_camera_inverts_and_flags_bad_poses():
  rng = np.random.default_rng(0)
  poses = np.stack([testing.look_at(rng.normal(size=3) * 3, rng.normal(size=3)) for _ in range(4)])
  poses[2, 0, 0] = -np.inf
  poses[3] = 0.0  # singular
  w2c = np.asarray(projection.world_to_camera(poses))
  np.testing.assert_allclose(w2c[:2], np.linalg.inv(poses[:2]), atol=2e-6)
  assert np.isnan(w2c[2:]).all()
  points = rng.normal(size=(50, 3))
  out = projection.project_points(points, np.ones(50, bool), w2c, K, SIZE)
  assert not np.asarray(out.visible)[2:].any()
  assert np.isfinite(np.asarray(out.pixels)).all()


def test_jit_with_static_size_and_stride():
  points, valid, poses = _random_scene(np.random.default_rng(3))
  w2c = projection.world_to_camera(poses)
  jitted = jax.jit(projection.project_points, static_argnames=("image_size", "zbuffer_stride"))
  out = jitted(points.astype(np.float32), valid, w2c, K.astype(np.float32), image_size=SIZE,
               occlusion_tolerance=0.2, zbuffer_stride=3)
  _assert_matches(out, _reference(points, valid, poses, K, SIZE, 0.2, 3))
