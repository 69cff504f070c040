"""Raw descriptors against a float64 numpy computation."""

import jax.numpy as jnp
import numpy as np

from jaxseg.eval.descriptors import raw_point_descriptors


def _reference(coords, colors, normals, mask, scene, color_weight, xyz_weight, normal_weight):
  out = np.zeros(coords.shape[:2] + (9,))
  for g in range(coords.shape[0]):
    for slot in np.unique(scene[g][mask[g]]):
      rows = np.flatnonzero(mask[g] & (scene[g] == slot))
      centre = coords[g, rows].astype(np.float64).mean(axis=0)
      for p in rows:
        out[g, p] = np.concatenate([color_weight * (colors[g, p] - 0.5),
                                    xyz_weight * (coords[g, p] - centre),
                                    normal_weight * normals[g, p]])
  return out


def _batch(seed=0):
  """Three packs: two scenes (slots 0 and 1), one scene with padding, no scene."""
  rng = np.random.default_rng(seed)
  coords = (rng.random((3, 40, 3)) * [6.0, 4.0, 3.0] + [100.0, -50.0, 0.0]).astype(np.float32)
  colors = rng.random((3, 40, 3)).astype(np.float32)
  normals = rng.normal(size=(3, 40, 3))
  normals = (normals / np.linalg.norm(normals, axis=-1, keepdims=True)).astype(np.float32)
  mask = np.arange(40)[None] < np.array([[40], [25], [0]])
  scene = np.where(mask, 0, -1).astype(np.int32)
  scene[0, 15:] = 1
  coords[0, 15:] += np.float32([20.0, 0.0, 1.0])
  coords[~mask] = colors[~mask] = normals[~mask] = 0.0
  return coords, colors, normals, mask, scene


def test_descriptors_match_numpy_with_default_and_custom_weights():
  coords, colors, normals, mask, scene = _batch()
  got = np.asarray(raw_point_descriptors(jnp.asarray(coords), jnp.asarray(colors),
                                         jnp.asarray(normals), jnp.asarray(mask),
                                         jnp.asarray(scene), num_slots=2))
  assert got.shape == (3, 40, 9) and got.dtype == np.float32
  np.testing.assert_allclose(
      got, _reference(coords, colors, normals, mask, scene, 1.0, 0.2, 0.8), atol=2e-5)
  got = raw_point_descriptors(coords, colors, normals, mask, scene, num_slots=2,
                              color_weight=2.0, xyz_weight=1.0, normal_weight=0.0)
  np.testing.assert_allclose(
      np.asarray(got), _reference(coords, colors, normals, mask, scene, 2.0, 1.0, 0.0),
      atol=2e-5)
  np.testing.assert_array_equal(np.asarray(got)[~mask], 0.0)


def test_positions_are_centred_per_scene_so_shifted_rooms_match():
  coords, colors, normals, mask, scene = _batch(1)
  shifted = coords + np.float32([-30.0, 12.0, 5.0]) * (mask & (scene == 1))[..., None]
  a = np.asarray(raw_point_descriptors(coords, colors, normals, mask, scene, num_slots=2))
  b = np.asarray(raw_point_descriptors(shifted, colors, normals, mask, scene, num_slots=2))
  np.testing.assert_allclose(a, b, atol=1e-4)
  np.testing.assert_allclose(a[0, scene[0] == 1, 3:6].mean(axis=0), 0.0, atol=1e-5)
