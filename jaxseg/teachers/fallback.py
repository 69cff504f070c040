"""A no-weights 2D "teacher": fixed colour and local-texture filters (NOT DINO).

Used only when no DINO/DINOv2 checkpoint is available (e.g. CI, no network). Its features
separate colours and textures but carry no learned semantics, so distillation from it gives
far weaker segmentation than from DINO. Per pixel it returns FALLBACK_DIM = 32 channels:

   0-2   CIE L*a*b* colour (D65), scaled L/100, a/100, b/100
   3-11  local mean of L, a, b in boxes of radius 2, 4, 8 (3 scales x 3 channels)
  12-20  local standard deviation of L, a, b at the same radii, sqrt(variance + 1e-4)
  21-29  Sobel gradient of L after box blurs of radius 0, 1, 3: magnitude m and the
         orientation-doubled pair m cos 2t, m sin 2t (3 per scale)
  30-31  |Laplacian| of L after box blurs of radius 1 and 3

Borders replicate the edge pixel (scipy.ndimage mode='nearest').
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

FALLBACK_DIM = 32
_MEAN_RADII = (2, 4, 8)
_GRADIENT_BLURS = (0, 1, 3)
_LAPLACIAN_BLURS = (1, 3)
# Deviations are sqrt(variance + floor): a floor of 1e-4 (1 L*a*b* unit squared) keeps the
# ill-conditioned sqrt near zero variance from amplifying float32 rounding.
_VARIANCE_FLOOR = 1e-4

# sRGB (linear) -> XYZ, D65 white point.
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
               (0.212671, 0.715160, 0.072169),
               (0.019334, 0.119193, 0.950227))
_WHITE_D65 = (0.950456, 1.0, 1.088754)


def rgb_to_lab(rgb: jax.Array) -> jax.Array:
  """sRGB in [0, 1] (..., 3) -> CIE L*a*b* (..., 3) with L in [0, 100]."""
  linear = jnp.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
  xyz = jnp.einsum("...c,kc->...k", linear, jnp.asarray(_RGB_TO_XYZ, rgb.dtype),
                   precision=jax.lax.Precision.HIGHEST)
  xyz = xyz / jnp.asarray(_WHITE_D65, rgb.dtype)
  delta = 6.0 / 29.0
  f = jnp.where(xyz > delta**3, jnp.cbrt(jnp.maximum(xyz, delta**3)),
                xyz / (3 * delta**2) + 4.0 / 29.0)
  lightness = 116.0 * f[..., 1] - 16.0
  a = 500.0 * (f[..., 0] - f[..., 1])
  b = 200.0 * (f[..., 1] - f[..., 2])
  return jnp.stack([lightness, a, b], axis=-1)


def _box_mean_axis(x: jax.Array, radius: int, axis: int) -> jax.Array:
  """Mean over a window of 2*radius+1 along `axis` with edge replication."""
  if radius == 0:
    return x
  pad = [(0, 0)] * x.ndim
  pad[axis] = (radius, radius)
  window = [1] * x.ndim
  window[axis] = 2 * radius + 1
  sums = jax.lax.reduce_window(jnp.pad(x, pad, mode="edge"), 0.0, jax.lax.add,
                               tuple(window), (1,) * x.ndim, "VALID")
  return sums / (2 * radius + 1)


def box_mean(x: jax.Array, radius: int) -> jax.Array:
  """(B, H, W, C) -> local means over (2r+1)^2 windows, edge-replicated borders."""
  return _box_mean_axis(_box_mean_axis(x, radius, 1), radius, 2)


def _shift(x: jax.Array, dy: int, dx: int) -> jax.Array:
  """x[:, i + dy, j + dx] with edge replication, for (B, H, W) x and |dy|, |dx| <= 1."""
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
  height, width = x.shape[1:]
  return padded[:, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]


def sobel(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(B, H, W) -> (d/dy, d/dx) Sobel responses (scipy.ndimage.sobel convention)."""
  s = {(dy, dx): _shift(x, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
  smooth_x = lambda dy: s[(dy, -1)] + 2 * s[(dy, 0)] + s[(dy, 1)]
  smooth_y = lambda dx: s[(-1, dx)] + 2 * s[(0, dx)] + s[(1, dx)]
  return smooth_x(1) - smooth_x(-1), smooth_y(1) - smooth_y(-1)


def laplacian(x: jax.Array) -> jax.Array:
  """(B, H, W) -> 4-neighbour Laplacian (scipy.ndimage.laplace convention)."""
  return (_shift(x, -1, 0) + _shift(x, 1, 0) + _shift(x, 0, -1) + _shift(x, 0, 1)
          - 4 * x)


def fallback_features(images: jax.Array) -> jax.Array:
  """Colour/texture features of RGB images.

  Args:
    images: (B, H, W, 3) float RGB in [0, 1].
  Returns:
    (B, H, W, FALLBACK_DIM) float32, channels as listed in the module docstring.
  """
  lab = rgb_to_lab(images.astype(jnp.float32)) / 100.0
  channels = [lab]
  means = [box_mean(lab, r) for r in _MEAN_RADII]
  channels += means
  for radius, mean in zip(_MEAN_RADII, means):
    variance = box_mean(lab * lab, radius) - mean * mean
    channels.append(jnp.sqrt(jnp.maximum(variance, 0.0) + _VARIANCE_FLOOR))
  lightness = lab[..., :1]
  for radius in _GRADIENT_BLURS:
    gy, gx = sobel(box_mean(lightness, radius)[..., 0])
    magnitude = jnp.sqrt(gx * gx + gy * gy + 1e-12)
    cos2 = (gx * gx - gy * gy) / magnitude  # m cos 2t with t = atan2(gy, gx)
    sin2 = 2 * gx * gy / magnitude
    channels.append(jnp.stack([magnitude, cos2, sin2], axis=-1))
  for radius in _LAPLACIAN_BLURS:
    channels.append(jnp.abs(laplacian(box_mean(lightness, radius)[..., 0]))[..., None])
  return jnp.concatenate(channels, axis=-1)
