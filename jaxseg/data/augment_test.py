"""Augmentations against independent float64 geometry."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from jaxseg.data.augment import (AugmentConfig, augment, clip_to_box, random_crop,
                                 transform_normals)
from jaxseg.errors import InputError

ROTATE_ONLY = AugmentConfig(rotate_z=True, tilt=math.pi / 32, flip=False, scale=None)


def _cloud(n=200, seed=0):
  rng = np.random.default_rng(seed)
  coords = (rng.normal(size=(n, 3)) * [3.0, 2.0, 1.0]).astype(np.float32)
  colors = rng.integers(40, 200, (n, 3)).astype(np.uint8)
  return coords, colors


@pytest.mark.parametrize("config", [
    ROTATE_ONLY, AugmentConfig(), AugmentConfig(translate=1.0, scale=(0.5, 2.0))])
def test_returned_matrix_is_the_applied_transform(config):
  coords, colors = _cloud()
  for seed in range(5):
    out, _, transform = augment(coords, colors, np.random.default_rng(seed), config)
    t = transform.astype(np.float64)
    expected = coords.astype(np.float64) @ t[:3, :3].T + t[:3, 3]
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_array_equal(t[3], [0, 0, 0, 1])


def test_rotation_preserves_distances_and_tilt_is_small():
  coords, colors = _cloud()
  z_angles = []
  for seed in range(20):
    out, _, transform = augment(coords, colors, np.random.default_rng(seed), ROTATE_ONLY)
    np.testing.assert_allclose(pdist(out.astype(np.float64)), pdist(coords.astype(np.float64)),
                               rtol=1e-5, atol=1e-5)
    rot = transform[:3, :3].astype(np.float64)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
    assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-6)
    # The up axis tilts by at most the two small x/y rotations.
    assert math.acos(np.clip(rot[2, 2], -1, 1)) <= 2 * math.pi / 32 + 1e-6
    z_angles.append(math.atan2(rot[1, 0], rot[0, 0]))
  assert max(z_angles) - min(z_angles) > math.pi  # the z rotation covers the full circle


def test_flip_mirrors_x_and_y_only():
  coords, colors = _cloud()
  flip_only = AugmentConfig(rotate_z=False, tilt=0.0, flip=True, scale=None)
  signs = set()
  for seed in range(16):
    out, _, transform = augment(coords, colors, np.random.default_rng(seed), flip_only)
    sx, sy = np.sign(np.diag(transform)[:2])
    np.testing.assert_array_equal(out, coords * np.float32([sx, sy, 1]))
    signs.add((sx, sy))
  assert signs == {(-1, -1), (-1, 1), (1, -1), (1, 1)}


def test_scale_and_translation_ranges():
  coords, colors = _cloud()
  config = AugmentConfig(rotate_z=True, tilt=0.0, flip=True, scale=(0.9, 1.1), translate=0.5)
  for seed in range(10):
    out, _, transform = augment(coords, colors, np.random.default_rng(seed), config)
    ratio = pdist(out.astype(np.float64)) / pdist(coords.astype(np.float64))
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
    assert 0.9 <= ratio[0] <= 1.1
    assert abs(np.linalg.det(transform[:3, :3])) == pytest.approx(ratio[0] ** 3, rel=1e-4)
    assert ((transform[:3, 3] >= 0) & (transform[:3, 3] < 0.5)).all()


def test_identity_and_colour_augmentations():
  coords, colors = _cloud(500)
  out, rgb, transform = augment(coords, colors, np.random.default_rng(0), AugmentConfig.none())
  np.testing.assert_array_equal(out, coords)
  np.testing.assert_array_equal(rgb, colors.astype(np.float32))
  np.testing.assert_array_equal(transform, np.eye(4))

  jitter_only = AugmentConfig(rotate_z=False, tilt=0.0, flip=False, scale=None,
                              color_jitter=10.0)
  _, rgb, _ = augment(coords, colors, np.random.default_rng(1), jitter_only)
  shift = rgb - colors.astype(np.float32)  # colours lie in [40, 200): no clipping at 3 sigma
  np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-4)
  assert np.abs(shift[0]).max() > 0

  noisy = AugmentConfig(rotate_z=False, tilt=0.0, flip=False, scale=None, color_noise=300.0,
                        coord_noise=0.01)
  out, rgb, transform = augment(coords, colors, np.random.default_rng(2), noisy)
  assert rgb.min() == 0.0 and rgb.max() == 255.0  # clipped
  np.testing.assert_array_equal(transform, np.eye(4))
  residual = out.astype(np.float64) - coords
  assert 0.005 < residual.std() < 0.02


def test_same_seed_same_result():
  coords, colors = _cloud()
  config = AugmentConfig(translate=1.0, color_jitter=5.0, coord_noise=0.01, color_noise=3.0)
  a = augment(coords, colors, np.random.default_rng(7), config)
  b = augment(coords, colors, np.random.default_rng(7), config)
  c = augment(coords, colors, np.random.default_rng(8), config)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a[0], c[0])


def _plane(n=300, seed=0):
  """Points on a random plane (float64) and its unit normal."""
  rng = np.random.default_rng(seed)
  normal = rng.normal(size=3)
  normal /= np.linalg.norm(normal)
  tangents = np.linalg.svd(normal[None])[2][1:]  # two unit vectors perpendicular to the normal
  points = rng.normal(size=(n, 2)) @ tangents * 2.0 + rng.normal(size=3)
  return points, normal


@pytest.mark.parametrize("config", [AugmentConfig(),
                                    AugmentConfig(translate=1.0, scale=(0.5, 2.0))])
def test_augmented_normals_stay_perpendicular_to_the_augmented_plane(config):
  points, normal = _plane()
  colors = np.zeros((len(points), 3), np.uint8)
  normals = np.broadcast_to(normal, points.shape).astype(np.float32)
  flipped = set()
  for seed in range(12):
    out, _, transform = augment(points.astype(np.float32), colors, np.random.default_rng(seed),
                                config)
    moved = transform_normals(normals, transform).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), 1.0, atol=1e-6)
    # Independent float64 reference: the plane normal of the augmented points by SVD.
    centred = out.astype(np.float64) - out.mean(axis=0)
    reference = np.linalg.svd(centred, full_matrices=False)[2][-1]
    np.testing.assert_allclose(np.abs(moved @ reference), 1.0, atol=1e-5)
    np.testing.assert_allclose(centred @ moved[0], 0.0, atol=5e-5)
    # Orientation: the normal keeps pointing to the side the transformed normal offset lands on.
    t = transform.astype(np.float64)
    side = (points[0] + 0.1 * normal) @ t[:3, :3].T + t[:3, 3] - out[0].astype(np.float64)
    assert side @ moved[0] > 0
    flipped.add(np.linalg.det(t[:3, :3]) < 0)
  assert flipped == {True, False}  # mirrored and unmirrored transforms were both checked


def test_transform_normals_uses_the_inverse_transpose_and_keeps_zero_rows():
  rng = np.random.default_rng(4)
  linear = np.diag([3.0, 1.0, 0.5]) @ np.linalg.qr(rng.normal(size=(3, 3)))[0]  # anisotropic
  transform = np.eye(4)
  transform[:3, :3] = linear
  points, normal = _plane(seed=5)
  normals = np.stack([normal, np.zeros(3)])
  moved = transform_normals(normals, transform).astype(np.float64)
  centred = (points - points.mean(axis=0)) @ linear.T
  np.testing.assert_allclose(centred @ moved[0], 0.0, atol=1e-5)
  naive = linear @ normal  # A n is NOT the answer for an anisotropic map
  assert abs(naive / np.linalg.norm(naive) @ moved[0]) < 0.999
  np.testing.assert_array_equal(moved[1], 0.0)


def test_random_crop_keeps_a_box_around_a_point():
  coords, _ = _cloud(1000)
  keep = random_crop(coords, 300, np.random.default_rng(3))
  assert keep.dtype == np.int32 and keep.size == 300 and (np.diff(keep) > 0).all()
  # Independent check: some point's x-y square contains exactly the kept points.
  kept = np.zeros(len(coords), bool)
  kept[keep] = True
  found = False
  for centre in coords[:, :2].astype(np.float64):
    dist = np.abs(coords[:, :2] - centre).max(axis=1)
    if dist[kept].max() < dist[~kept].min():
      found = True
      break
  assert found
  np.testing.assert_array_equal(random_crop(coords, 5000, np.random.default_rng(3)),
                                np.arange(1000))


def test_config_from_dict_validates():
  config = AugmentConfig.from_dict({"tilt": 0.1, "scale": [0.8, 1.2], "flip": False})
  assert config.scale == (0.8, 1.2) and config.tilt == 0.1 and not config.flip
  with pytest.raises(InputError, match="unknown augmentation option"):
    AugmentConfig.from_dict({"rotate": True})
  with pytest.raises(InputError, match="scale must be"):
    AugmentConfig.from_dict({"scale": [1.2, 0.8]})
  with pytest.raises(InputError, match="coord_noise must be >= 0"):
    AugmentConfig.from_dict({"coord_noise": -1})


def test_clip_to_box_keeps_the_points_near_the_bounding_box_centre():
  """The reference's clip_bound: |x - cx| <= b and |y - cy| <= b around the x-y bounding-box
  centre, every height kept."""
  rng = np.random.default_rng(0)
  coords = np.c_[rng.uniform(0, 20, (500, 2)), rng.uniform(-5, 50, 500)].astype(np.float32)
  keep = clip_to_box(coords, 4.0)
  centre = (coords[:, :2].min(0) + coords[:, :2].max(0)) / 2
  want = [i for i in range(500) if all(abs(coords[i, d] - centre[d]) <= 4.0 for d in (0, 1))]
  np.testing.assert_array_equal(keep, want)
  assert clip_to_box(coords[:0], 4.0).shape == (0,)
