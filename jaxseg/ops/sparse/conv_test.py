"""Sparse convs against dense 3D convolutions on grids holding the same voxels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.ops.sparse import conv
from jaxseg.ops.sparse import kernel_map
from tests.sparse_scenes import random_batch

_DN = ("NDHWC", "DHWIO", "NDHWC")
_HI = jax.lax.Precision.HIGHEST
_GRID = (6, 8, 6)


def _dense_grid(coords, feats, mask, grid):
  """Scatters the valid rows of one scene into a dense [1, X, Y, Z, F] grid (differentiable)."""
  rows = np.flatnonzero(mask)
  dense = jnp.zeros((1,) + tuple(grid) + (feats.shape[-1],), feats.dtype)
  c = coords[rows]
  return dense.at[0, c[:, 0], c[:, 1], c[:, 2]].set(feats[rows])


def _dense_submanifold(coords, feats, mask, kernel, grid):
  """Dense SAME conv read back at the active sites: [C, Co] (zeros on padding rows)."""
  dense = _dense_grid(coords, feats, mask, grid)
  out = jax.lax.conv_general_dilated(dense, kernel, (1, 1, 1), "SAME", dimension_numbers=_DN,
                                     precision=_HI)[0]
  rows = np.flatnonzero(mask)
  c = coords[rows]
  return jnp.zeros((coords.shape[0], kernel.shape[-1])).at[rows].set(
      out[c[:, 0], c[:, 1], c[:, 2]])


@pytest.mark.parametrize("kernel_size,capacity,counts,offsets_per_step", [
    (3, 96, (90, 12), None), (3, 300, (250, 288), None), (5, 128, (100, 40), None),
    (3, 96, (80, 40), 9), (5, 64, (60, 33), 5)])
def test_submanifold_forward_and_gradients_match_dense(kernel_size, capacity, counts,
                                                       offsets_per_step, monkeypatch):
  if offsets_per_step is not None:  # Force a multi-step scan over offset chunks.
    monkeypatch.setattr(conv, "GATHER_BUDGET_ELEMENTS", offsets_per_step * capacity * 4)
  rng = np.random.default_rng(kernel_size * 1000 + capacity)
  coords, feats, mask = random_batch(rng, _GRID, counts, capacity, 4)
  kernel = rng.normal(size=(kernel_size,) * 3 + (4, 5)).astype(np.float32) * 0.3
  cotangent = rng.normal(size=(len(counts), capacity, 5)).astype(np.float32)
  level = kernel_map.build_level(coords, mask, (kernel_size,))
  nbr = level.neighbours[kernel_size]

  def sparse_loss(f, w):
    out = conv.submanifold_conv(f, mask, nbr, w.reshape(-1, 4, 5))
    return jnp.sum(out * cotangent), out

  (_, out), (g_feats, g_kernel) = jax.jit(jax.value_and_grad(sparse_loss, (0, 1), has_aux=True))(
      feats, kernel)
  clean = np.where(mask[..., None], feats, 0)
  for b in range(len(counts)):
    def dense_loss(f, w, b=b):
      ref = _dense_submanifold(coords[b], f, mask[b], w, _GRID)
      return jnp.sum(ref * cotangent[b] * mask[b][:, None]), ref
    (_, ref), (rg_feats, rg_kernel) = jax.jit(jax.value_and_grad(dense_loss, (0, 1), has_aux=True))(
        clean[b], kernel)
    np.testing.assert_allclose(out[b], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g_feats[b], np.where(mask[b][:, None], rg_feats, 0),
                               rtol=1e-4, atol=1e-4)
    if b == 0:
      total_kernel_grad = rg_kernel
    else:
      total_kernel_grad = total_kernel_grad + rg_kernel
  np.testing.assert_allclose(g_kernel, total_kernel_grad, rtol=1e-4, atol=1e-3)
  assert np.all(np.isfinite(g_feats)) and np.all(g_feats[~mask] == 0)
  assert np.all(out[~mask] == 0)


def test_padding_capacity_does_not_change_valid_outputs():
  rng = np.random.default_rng(7)
  coords, feats, mask = random_batch(rng, _GRID, (50,), 64, 3)
  kernel = rng.normal(size=(27, 3, 2)).astype(np.float32)
  small = conv.submanifold_conv(feats, mask, kernel_map.build_level(coords, mask).neighbours[3],
                                kernel)
  pad = 200
  big_coords = np.concatenate([coords, np.full((1, pad, 3), 3, np.int32)], axis=1)
  big_feats = np.concatenate([feats, np.full((1, pad, 3), np.nan, np.float32)], axis=1)
  big_mask = np.concatenate([mask, np.zeros((1, pad), bool)], axis=1)
  big = conv.submanifold_conv(big_feats, big_mask,
                              kernel_map.build_level(big_coords, big_mask).neighbours[3], kernel)
  np.testing.assert_allclose(big[:, :64], small, rtol=1e-6, atol=1e-6)
  assert np.all(big[:, 64:] == 0)


@pytest.mark.parametrize("capacity,counts", [(128, (100, 9)), (300, (280,))])
def test_strided_conv_matches_dense_strided_conv(capacity, counts):
  rng = np.random.default_rng(capacity)
  coords, feats, mask = random_batch(rng, _GRID, counts, capacity, 3)
  kernel = rng.normal(size=(2, 2, 2, 3, 4)).astype(np.float32)
  cotangent = rng.normal(size=(len(counts), capacity, 4)).astype(np.float32)
  level = kernel_map.build_level(coords, mask, ())
  coarse_coords, coarse_mask, link = kernel_map.downsample(level, capacity)

  def sparse_loss(f, w):
    out = conv.strided_conv(f, mask, link, w.reshape(8, 3, 4))
    return jnp.sum(out * cotangent), out

  (_, out), (g_feats, g_kernel) = jax.jit(jax.value_and_grad(sparse_loss, (0, 1), has_aux=True))(
      feats, kernel)
  clean = np.where(mask[..., None], feats, 0)
  coarse_coords, coarse_mask = np.asarray(coarse_coords), np.asarray(coarse_mask)
  total_kernel_grad = 0
  for b in range(len(counts)):
    rows = np.flatnonzero(coarse_mask[b])
    c = coarse_coords[b, rows]

    def dense_loss(f, w, b=b, rows=rows, c=c):
      dense = _dense_grid(coords[b], f, mask[b], _GRID)
      full = jax.lax.conv_general_dilated(dense, w, (2, 2, 2), "VALID", dimension_numbers=_DN,
                                          precision=_HI)[0]
      ref = full[c[:, 0], c[:, 1], c[:, 2]]
      return jnp.sum(ref * cotangent[b, rows]), ref

    (_, ref), (rg_feats, rg_kernel) = jax.jit(jax.value_and_grad(dense_loss, (0, 1), has_aux=True))(
        clean[b], kernel)
    np.testing.assert_allclose(out[b, rows], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g_feats[b], np.where(mask[b][:, None], rg_feats, 0),
                               rtol=1e-4, atol=1e-4)
    total_kernel_grad = total_kernel_grad + rg_kernel
    assert np.all(out[b][~coarse_mask[b]] == 0)
  np.testing.assert_allclose(g_kernel, total_kernel_grad, rtol=1e-4, atol=1e-3)
  assert np.all(np.isfinite(g_feats))


def test_transposed_conv_matches_loop_reference():
  rng = np.random.default_rng(11)
  coords, _, mask = random_batch(rng, _GRID, (70, 30), 96, 1)
  level = kernel_map.build_level(coords, mask, ())
  coarse_coords, coarse_mask, link = kernel_map.downsample(level, 64)
  coarse_coords, coarse_mask = np.asarray(coarse_coords), np.asarray(coarse_mask)
  coarse_feats = rng.normal(size=(2, 64, 3)).astype(np.float32)
  coarse_feats[~coarse_mask] = np.nan  # Padding rows are never read.
  kernel = rng.normal(size=(2, 2, 2, 3, 4))
  cotangent = rng.normal(size=(2, 96, 4))

  def loss(f, w):
    out = conv.transposed_conv(f, link, w.reshape(8, 3, 4))
    return jnp.sum(out * cotangent), out

  (_, out), (g_feats, g_kernel) = jax.value_and_grad(loss, (0, 1), has_aux=True)(
      coarse_feats, kernel.astype(np.float32))
  out, g_feats, g_kernel = np.asarray(out), np.asarray(g_feats), np.asarray(g_kernel)
  ref_g_feats = np.zeros((2, 64, 3))
  ref_g_kernel = np.zeros_like(kernel)
  for b in range(2):
    row_of = {tuple(coarse_coords[b, p]): p for p in range(64) if coarse_mask[b, p]}
    for i in range(96):
      if not mask[b, i]:
        assert np.all(out[b, i] == 0)
        continue
      x, y, z = coords[b, i]
      p = row_of[(x // 2, y // 2, z // 2)]
      parent = coarse_feats[b, p].astype(np.float64)
      w = kernel[x % 2, y % 2, z % 2]
      np.testing.assert_allclose(out[b, i], parent @ w, rtol=1e-5, atol=1e-5)
      ref_g_feats[b, p] += w @ cotangent[b, i]
      ref_g_kernel[x % 2, y % 2, z % 2] += np.outer(parent, cotangent[b, i])
  np.testing.assert_allclose(g_feats, ref_g_feats, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(g_kernel, ref_g_kernel, rtol=1e-4, atol=1e-4)
