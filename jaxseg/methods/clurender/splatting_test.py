"""The point splatting renderer against a plain numpy splatting, its gradients against finite
differences, and a real ScanNet scan rendered into one of its real photos."""

import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from jaxseg import testing
from jaxseg.io import frames
from jaxseg.methods.clurender import splatting
from jaxseg.methods.pointdc import projection

_SIZE = (24, 18)
_K = np.array([[20.0, 0, 11.5], [0, 20.0, 8.5], [0, 0, 1]], np.float32)


def _scene(seed, count=70):
  """Points 1-3 m in front of an identity camera, some off-image or behind, two invalid."""
  rng = np.random.default_rng(seed)
  z = rng.uniform(1.0, 3.0, count)
  x = rng.uniform(-0.75, 0.75, count) * z
  y = rng.uniform(-0.55, 0.55, count) * z
  points = np.stack([x, y, z], -1).astype(np.float32)
  points[0, 2] = -1.0                                   # behind the camera
  colors = rng.uniform(0, 1, (count, 3)).astype(np.float32)
  valid = np.ones(count, bool)
  valid[[3, 7]] = False
  points[3] = np.nan
  colors[7] = np.nan
  return points, colors, valid


def _numpy_render(points, colors, valid, intrinsics, size, radius, sigma, k, eta,
                  min_depth=0.1):
  """Per pixel: the covering points sorted by depth, the first k composited front to back."""
  width, height = size
  image, coverage = np.zeros((height, width, colors.shape[1])), np.zeros((height, width))
  for row in range(height):
    for col in range(width):
      hits = []
      for i in range(len(points)):
        if not valid[i] or points[i, 2] <= min_depth:
          continue
        u, v, w = intrinsics.astype(np.float64) @ points[i].astype(np.float64)
        d2 = (u / w - col) ** 2 + (v / w - row) ** 2
        if d2 <= radius ** 2:
          hits.append((points[i, 2], np.exp(-d2 / (2 * sigma ** 2)), i))
      transmittance = 1.0
      for _, rho, i in sorted(hits)[:k]:
        alpha = min(rho ** eta, 1 - 1e-4)
        image[row, col] += alpha * transmittance * colors[i]
        coverage[row, col] += alpha * transmittance
        transmittance *= 1 - alpha
  return image, coverage


@pytest.mark.parametrize("k,eta", [(128, 1.0), (2, 1.0), (3, 2.0)])
def test_render_matches_numpy_splatting(k, eta):
  points, colors, valid = _scene(0)
  render = jax.jit(lambda p, c: splatting.render_view(
      p, c, valid, jnp.eye(4), _K, _SIZE, radius=2.5, sigma=1.0, points_per_pixel=k, eta=eta))
  image, coverage = render(points, colors)
  want_image, want_coverage = _numpy_render(points, colors, valid, _K, _SIZE, 2.5, 1.0, k, eta)
  assert np.all(np.isfinite(image))
  np.testing.assert_allclose(image, want_image, atol=2e-5)
  np.testing.assert_allclose(coverage, want_coverage, atol=2e-5)
  assert want_coverage.max() > 0.9 and (want_coverage == 0).any()   # occlusion and holes


def test_culling_to_the_points_in_view_changes_nothing():
  points, colors, valid = _scene(4)
  seen = np.asarray(jax.jit(lambda p: splatting.in_view(p, valid, jnp.eye(4), _K, _SIZE,
                                                       radius=2.5))(points))
  assert 0 < seen.sum() < valid.sum()
  render = jax.jit(lambda p, c, cap: splatting.render_view(
      p, c, valid, jnp.eye(4), _K, _SIZE, radius=2.5, max_points=cap), static_argnums=2)
  full, culled = render(points, colors, None), render(points, colors, int(seen.sum()) + 3)
  for a, b in zip(full, culled):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_gradients_match_finite_differences():
  """Directional derivatives along random directions. The disk's edge is a step (the weight
  left there); sigma = radius / 5 makes that step 4e-6, so finite differences measure the
  smooth part, which is what the gradient is."""
  points, colors, valid = _scene(1)
  target = np.random.default_rng(2).uniform(0, 1, (_SIZE[1], _SIZE[0], 3)).astype(np.float32)

  def loss(p, c):
    image, _ = splatting.render_view(p, c, valid, jnp.eye(4), _K, _SIZE, radius=2.5, sigma=0.5)
    return jnp.sum((image - target) ** 2)

  grad_fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
  grad_points, grad_colors = grad_fn(points, colors)
  assert np.all(np.isfinite(grad_points)) and np.all(np.isfinite(grad_colors))
  assert np.all(np.asarray(grad_points)[~valid] == 0)
  assert np.abs(np.asarray(grad_points)[valid]).max() > 0
  loss_fn = jax.jit(loss)
  rng = np.random.default_rng(3)
  for grad, which, eps in ((grad_colors, 1, 1e-2), (grad_points, 0, 1e-4)):
    direction = rng.normal(size=points.shape).astype(np.float32)
    direction[~valid] = 0
    args = [np.where(valid[:, None], points, 0), np.where(valid[:, None], colors, 0)]
    up, down = list(args), list(args)
    up[which] = args[which] + eps * direction
    down[which] = args[which] - eps * direction
    numeric = (float(loss_fn(*up)) - float(loss_fn(*down))) / (2 * eps)
    analytic = float(np.sum(np.asarray(grad) * direction))
    np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=1e-2)


def test_real_scan_renders_like_its_photo():
  """scene0000_00's coloured mesh vertices splatted into its real frame 00000 (at 1/4 size):
  the rendered colours are far closer to the photo than the same points with their colours
  shuffled."""
  root = testing.require_scannet_mini()
  cloud = np.fromfile(os.path.join(root, "points", "scene0000_00.bin"), np.float32).reshape(-1, 6)
  posed = os.path.join(root, "posed", "scene0000_00")
  photo = Image.open(os.path.join(posed, "00000.jpg"))
  size = (photo.width // 4, photo.height // 4)
  photo = np.asarray(photo.resize(size, Image.BILINEAR), np.float32) / 255.0
  intrinsics = frames.scale_intrinsics(
      frames.read_intrinsics(os.path.join(posed, "intrinsic.txt")),
      (photo.shape[1] * 4, photo.shape[0] * 4), size)
  pose = frames.read_matrix(os.path.join(posed, "00000.txt"), fix="")
  w2c = projection.world_to_camera(pose[None].astype(np.float32))[0]
  colors = cloud[:, 3:] / 255.0
  shuffled = colors[np.random.default_rng(0).permutation(len(colors))]
  valid = np.ones(len(cloud), bool)
  # The points this view can reach, as the training step culls them (`max_points`).
  seen = int(np.sum(jax.jit(lambda p: splatting.in_view(p, valid, w2c, intrinsics, size))(
      cloud[:, :3])))
  render = jax.jit(lambda p, c: splatting.render_view(p, c, valid, w2c, intrinsics, size,
                                                      radius=4.0, max_points=seen))
  image, coverage = render(cloud[:, :3], colors)
  wrong, _ = render(cloud[:, :3], shuffled)
  covered = np.asarray(coverage) > 0.5
  assert covered.mean() > 0.3
  alpha = np.asarray(coverage)[covered][:, None]
  error = np.abs(np.asarray(image)[covered] / alpha - photo[covered]).mean()
  error_shuffled = np.abs(np.asarray(wrong)[covered] / alpha - photo[covered]).mean()
  assert error < 0.6 * error_shuffled, (error, error_shuffled)


@pytest.mark.parametrize("num_pixels", [100, 2**31 // 50])    # one int32 key; two int32 keys
def test_fragments_sort_by_pixel_then_depth_rank(num_pixels):
  """Both sorts of the fragments order them as numpy's lexsort of (pixel, point), dropped
  fragments (pixel = num_pixels) last."""
  rng = np.random.default_rng(5)
  pixel = rng.integers(0, 100, (50, 9)).astype(np.int32)
  pixel[rng.random(pixel.shape) < 0.3] = num_pixels
  got_pixel, got_point = jax.jit(splatting._sorted_fragments, static_argnums=1)(  # pylint: disable=protected-access
      pixel, num_pixels)
  point = np.broadcast_to(np.arange(50)[:, None], pixel.shape).reshape(-1)
  order = np.lexsort((point, pixel.reshape(-1)))
  np.testing.assert_array_equal(got_pixel, pixel.reshape(-1)[order])
  np.testing.assert_array_equal(got_point, point[order])
