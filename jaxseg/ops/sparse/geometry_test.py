"""Trilinear upsampling against a float64 numpy transcription of MinkowskiEngine's rule."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.ops.sparse import geometry as geo
from tests import sparse_scenes as ss

SPEC = geo.GeometrySpec(level_kernels=((3,), (3,), (3,), (3,)))


def _numpy_interpolate(voxels, level, cell_feats):
  """float64: for each voxel q, sum over the 8 cells floor(q/s) + d of prod_axis weights."""
  stride = 2 ** level
  out = np.zeros((len(voxels), next(iter(cell_feats.values())).shape[0]))
  for i, q in enumerate(voxels):
    base, frac = q // stride, (q % stride) / stride
    for d in np.ndindex(2, 2, 2):
      cell = tuple(base + np.asarray(d))
      if cell in cell_feats:
        weight = np.prod(np.where(np.asarray(d) == 1, frac, 1 - frac))
        out[i] += weight * cell_feats[cell]
  return out


@pytest.mark.parametrize("engine", ["pairs", "dense"])
def test_interpolation_matches_numpy(engine):
  rng = np.random.default_rng(1)
  spec = dataclasses.replace(SPEC, engine=engine)
  scenes = [ss.surface_voxels(rng, 30, 400), ss.random_voxels(rng, (12, 10, 9), 150)]
  feats = [np.zeros((len(v), 6), np.float32) for v in scenes]
  host = ss.padded_batch(scenes, feats, spec, slack=1)
  batch = jax.device_put(host)
  geometry = jax.jit(lambda b: geo.from_batch(b, spec))(batch)
  for level in (1, 2, 3):
    capacity = host[geo.mask_key(level)].shape[1]
    y = rng.normal(size=(1, capacity, 5)).astype(np.float32)
    y[0, ~host[geo.mask_key(level)][0]] = np.nan               # padding rows are never read
    out = np.asarray(geo.interpolate_to_input(jnp.asarray(y), geometry, level))
    # The level-l cells of the pack, keyed by (placed) coordinates, with their features.
    coarse_rows = np.asarray(geometry.ancestors[level][0])
    coords = host["voxel_coords"][0]
    valid = host[geo.mask_key(0)][0]
    cells = {tuple(c): y[0, r] for c, r in zip((coords[valid] >> level).tolist(),
                                                coarse_rows[valid])}
    expected = _numpy_interpolate(coords[valid], level, cells)
    np.testing.assert_allclose(out[0, valid], expected, rtol=1e-5, atol=1e-5)
    assert np.all(out[0, ~valid] == 0)


def test_corner_weights_sum_to_one_and_favour_the_nearest_cell():
  coords = jnp.asarray([[0, 0, 0], [3, 1, 2], [7, 7, 7]])
  weights = np.asarray(geo.corner_weights(coords, 2))
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(weights[0], np.eye(8)[0])
  np.testing.assert_allclose(weights[1, 0], (1 - 3 / 4) * (1 - 1 / 4) * (1 - 2 / 4))
  assert weights[2].argmax() == 7


def test_interpolation_gradient_is_the_numpy_transpose():
  # Two packs (the vmapped path), the first with more rows than a block of the CPU's weighted
  # scatter.
  rng = np.random.default_rng(4)
  scenes = [ss.surface_voxels(rng, 30, 1500), ss.random_voxels(rng, (12, 10, 9), 150)]
  feats = [np.zeros((len(v), 6), np.float32) for v in scenes]
  host = ss.padded_batch(scenes, feats, SPEC, num_packs=2, slack=1)
  batch = jax.device_put(host)
  geometry = jax.jit(lambda b: geo.from_batch(b, SPEC))(batch)
  cotangent = rng.normal(size=host["voxel_coords"].shape[:2] + (3,)).astype(np.float32)
  for level in (1, 3):
    capacity = host[geo.mask_key(level)].shape[1]
    y = jnp.zeros((2, capacity, 3), jnp.float32)
    _, vjp = jax.vjp(lambda y: geo.interpolate_to_input(y, geometry, level), y)
    got = np.asarray(vjp(jnp.asarray(cotangent))[0])
    for pack in range(2):
      coords, valid = host["voxel_coords"][pack], host[geo.mask_key(0)][pack]
      rows = np.asarray(geometry.ancestors[level][pack])
      cell_row = {tuple(c): r for c, r in zip((coords[valid] >> level).tolist(), rows[valid])}
      want = np.zeros((capacity, 3))
      stride = 2 ** level
      for q, g in zip(coords[valid], cotangent[pack, valid].astype(np.float64)):
        base, frac = q // stride, (q % stride) / stride
        for d in np.ndindex(2, 2, 2):
          row = cell_row.get(tuple(base + np.asarray(d)))
          if row is not None:
            want[row] += np.prod(np.where(np.asarray(d) == 1, frac, 1 - frac)) * g
      np.testing.assert_allclose(got[pack], want, rtol=1e-4, atol=1e-4)
