"""Tests of the no-weights fallback teacher against scipy / float64 numpy references."""

import logging
import os

import jax
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from jaxseg.errors import InputError
from jaxseg.teachers import build_teacher
from jaxseg.teachers.fallback import FALLBACK_DIM, fallback_features, rgb_to_lab
from jaxseg.testing import require_scannet_mini


def _lab_reference(rgb):
  """float64 sRGB -> CIE Lab (D65), written from the CIE definitions."""
  rgb = np.asarray(rgb, np.float64)
  linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
  matrix = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                     [0.019334, 0.119193, 0.950227]])
  xyz = linear @ matrix.T / np.array([0.950456, 1.0, 1.088754])
  delta = 6 / 29
  f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4 / 29)
  return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                   200 * (f[..., 1] - f[..., 2])], -1)


def _features_reference(image):
  """The 32 documented channels of one (H, W, 3) image with scipy.ndimage filters."""
  lab = _lab_reference(image) / 100
  mean = lambda x, r: ndimage.uniform_filter(x, size=(2 * r + 1, 2 * r + 1, 1)[:x.ndim],
                                             mode="nearest")
  out = [lab] + [mean(lab, r) for r in (2, 4, 8)]
  out += [np.sqrt(np.maximum(mean(lab**2, r) - mean(lab, r)**2, 0) + 1e-4) for r in (2, 4, 8)]
  for r in (0, 1, 3):
    light = mean(lab[..., 0], r) if r else lab[..., 0]
    gy, gx = ndimage.sobel(light, 0, mode="nearest"), ndimage.sobel(light, 1, mode="nearest")
    magnitude, angle = np.hypot(gx, gy), np.arctan2(gy, gx)
    out.append(np.stack([magnitude, magnitude * np.cos(2 * angle),
                         magnitude * np.sin(2 * angle)], -1))
  for r in (1, 3):
    out.append(np.abs(ndimage.laplace(mean(lab[..., 0], r), mode="nearest"))[..., None])
  return np.concatenate(out, -1)


def test_lab_of_known_colours():
  """Published CIE Lab (D65) values of sRGB white, red, green and blue."""
  colours = np.array([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
  expected = np.array([[100, 0, 0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18],
                       [32.30, 79.19, -107.86]])
  np.testing.assert_allclose(np.asarray(rgb_to_lab(colours)), expected, atol=0.05)


def test_features_match_scipy_reference():
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(2, 23, 31, 3)).astype(np.float32)
  images[1, :, :15] = [0.8, 0.2, 0.1]  # flat region: zero gradients and deviations
  got = np.asarray(jax.jit(fallback_features)(images))
  assert got.shape == (2, 23, 31, FALLBACK_DIM) and got.dtype == np.float32
  for b in range(2):
    expected = _features_reference(images[b])
    np.testing.assert_allclose(got[b], expected, atol=3e-5, err_msg=f"image {b}")


def test_teacher_warns_loudly_is_named_fallback_and_is_deterministic(caplog):
  with caplog.at_level(logging.WARNING):
    teacher = build_teacher("fallback")
  warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
  assert any("FALLBACK" in r.getMessage() and "NOT DINO" in r.getMessage() for r in warnings)
  assert "fallback" in teacher.name and "dino" not in teacher.name.replace("not_dino", "")
  assert (teacher.dim, teacher.patch_size) == (FALLBACK_DIM, 1)
  images = np.random.default_rng(1).integers(0, 256, (1, 16, 20, 3), dtype=np.uint8)
  first, second = teacher.features(images), teacher.features(images.copy())
  np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
  np.testing.assert_allclose(np.asarray(first)[0], _features_reference(images[0] / 255.0),
                             atol=3e-5)
  unit = np.asarray(teacher.features(images, l2_normalize=True))
  np.testing.assert_allclose(np.linalg.norm(unit, axis=-1), 1.0, rtol=1e-5)


def test_fallback_refuses_a_checkpoint():
  with pytest.raises(InputError, match="takes no checkpoint"):
    build_teacher("fallback", "dino.pth")


def test_real_scannet_frame_matches_reference():
  """On a real ScanNet colour frame (skipped without the shared scannet_mini data)."""
  root = require_scannet_mini()
  path = os.path.join(root, "posed", "scene0000_00", "00000.jpg")
  image = np.asarray(Image.open(path).convert("RGB").resize((80, 60), Image.BILINEAR))
  got = np.asarray(build_teacher("fallback").features(image[None]))[0]
  assert np.isfinite(got).all()
  np.testing.assert_allclose(got, _features_reference(image / 255.0), atol=3e-5)
