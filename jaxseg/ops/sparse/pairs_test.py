"""Pair-list convs against dense 3D convolutions and against the dense-offset engine."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.ops.sparse import geometry as geo
from jaxseg.ops.sparse import pairs
from tests import sparse_scenes as ss

SPEC = geo.GeometrySpec(level_kernels=((3, 5), (3,), (3,)))
DENSE = dataclasses.replace(SPEC, engine="dense")
GRID = (8, 9, 7)


def _scenes(rng, counts, channels):
  scenes = [ss.random_voxels(rng, GRID, n) for n in counts]
  feats = [rng.normal(size=(n, channels)).astype(np.float32) for n in counts]
  return scenes, feats


def _device(batch, poison=True):
  """Device batch; padding feature rows hold NaN (they must never be read)."""
  batch = dict(batch)
  if poison:
    feats = batch["voxel_feats"].copy()
    feats[~batch[geo.mask_key(0)]] = np.nan
    batch["voxel_feats"] = feats
  return jax.device_put(batch)


@pytest.mark.parametrize("kernel_size,counts,num_packs,slack,block_bytes", [
    (3, (150, 20, 90), 1, 0, None), (5, (60, 140), 1, 1, None), (3, (300,), 1, 0, None),
    (5, (40, 70, 33, 5), 2, 2, None), (3, (150, 20, 90), 1, 0, 1000), (5, (60, 140), 1, 1, 3000),
    (5, (40, 70, 33, 5), 2, 2, 2000)])
def test_submanifold_forward_and_gradients_match_dense_conv(kernel_size, counts, num_packs,
                                                            slack, block_bytes, monkeypatch,
                                                            request):
  # block_bytes: the CPU form in blocks of a few columns (a band of 300 rows in 5-40 blocks,
  # the last padded) instead of the whole band in one block. JAX caches the traces of the
  # platform forms by shape, so the caches are cleared around the patched block size.
  if block_bytes:
    monkeypatch.setattr(pairs, "CPU_BLOCK_BYTES", block_bytes)
    jax.clear_caches()
    request.addfinalizer(jax.clear_caches)
  rng = np.random.default_rng(kernel_size * 100 + len(counts))
  scenes, feats = _scenes(rng, counts, 4)
  batch = _device(ss.padded_batch(scenes, feats, SPEC, num_packs, slack))
  kernel = rng.normal(size=(kernel_size,) * 3 + (4, 5)).astype(np.float32) * 0.3
  cotangent = rng.normal(size=batch["voxel_feats"].shape[:2] + (5,)).astype(np.float32)

  def sparse_loss(f, w):
    geometry = geo.from_batch({**batch, "voxel_feats": f}, SPEC)
    x = geo.masked_input(f, geometry.levels[0], jnp.float32)
    out = geo.submanifold_conv(x, geometry.levels[0], w.reshape(-1, 4, 5))
    return jnp.sum(out * cotangent), out

  (_, out), (g_feats, g_kernel) = jax.jit(jax.value_and_grad(sparse_loss, (0, 1), has_aux=True))(
      batch["voxel_feats"], kernel)
  host = {k: np.asarray(v) for k, v in batch.items()}
  total_kernel_grad = 0
  for slot, (voxels, f) in enumerate(zip(scenes, feats)):
    pack = next(p for p in range(num_packs) if slot in host["scene_index"][p])
    rows = ss.scene_rows(host, pack, list(host["scene_index"][pack]).index(slot))

    def dense_loss(f, w, voxels=voxels, pack=pack, rows=rows):
      ref = ss.dense_submanifold(voxels, f, w, GRID)
      return jnp.sum(ref * cotangent[pack, rows]), ref

    dense_grad = jax.jit(jax.value_and_grad(dense_loss, (0, 1), has_aux=True))
    (_, ref), (rg_feats, rg_kernel) = dense_grad(jnp.asarray(f), kernel)
    np.testing.assert_allclose(out[pack, rows], ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g_feats[pack, rows], rg_feats, rtol=1e-4, atol=1e-4)
    total_kernel_grad = total_kernel_grad + rg_kernel
  np.testing.assert_allclose(g_kernel, total_kernel_grad, rtol=1e-4, atol=1e-3)
  padding = ~host[geo.mask_key(0)]
  assert np.all(np.asarray(out)[padding] == 0) and np.all(np.asarray(g_feats)[padding] == 0)
  assert np.all(np.isfinite(np.asarray(g_kernel)))


def _layer_outputs(batch, spec, kernels, dtype=jnp.float32):
  """Every conv kind of the engine on one batch: outputs and gradients."""
  def loss(params):
    geometry = geo.from_batch(batch, spec)
    x = geo.masked_input(batch["voxel_feats"], geometry.levels[0], dtype)
    outs = [geo.submanifold_conv(x, geometry.levels[0], params["k5"]),
            geo.submanifold_conv(x, geometry.levels[0], params["k3"])]
    coarse = geo.strided_conv(x, geometry, 0, params["down"])
    coarse = geo.submanifold_conv(coarse, geometry.levels[1], params["k3c"])
    outs += [coarse, geo.transposed_conv(coarse, geometry, 0, params["up"])]
    finer = geo.strided_conv(coarse, geometry, 1, params["down2"])
    outs += [geo.interpolate_to_input(finer, geometry, 2)]
    total = sum(jnp.sum(jnp.sin(o.astype(jnp.float32))) for o in outs)
    return total, outs
  return jax.jit(jax.value_and_grad(loss, has_aux=True))(kernels)


def _kernels(rng, channels):
  shapes = {"k5": (125, channels, 6), "k3": (27, channels, 6), "down": (8, channels, 6),
            "k3c": (27, 6, 6), "up": (8, 6, 3), "down2": (8, 6, 5)}
  return {k: jnp.asarray(rng.normal(size=s).astype(np.float32) * 0.3) for k, s in shapes.items()}


@pytest.mark.parametrize("counts,num_packs", [((200, 31, 120), 1), ((90, 150, 12, 64), 2)])
def test_pair_lists_equal_dense_offset_engine(counts, num_packs):
  rng = np.random.default_rng(sum(counts))
  scenes, feats = _scenes(rng, counts, 4)
  batch = _device(ss.padded_batch(scenes, feats, SPEC, num_packs, slack=1))
  kernels = _kernels(rng, 4)
  (_, pair_outs), pair_grads = _layer_outputs(batch, SPEC, kernels)
  (_, dense_outs), dense_grads = _layer_outputs(batch, DENSE, kernels)
  for level_out, (a, b) in enumerate(zip(pair_outs, dense_outs)):
    assert a.shape == b.shape, level_out
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=f"output {level_out}")
  for name in kernels:
    np.testing.assert_allclose(pair_grads[name], dense_grads[name], rtol=1e-4, atol=1e-3,
                               err_msg=name)


def test_bfloat16_stays_close_to_float32():
  rng = np.random.default_rng(5)
  scenes, feats = _scenes(rng, (180, 70), 4)
  batch = _device(ss.padded_batch(scenes, feats, SPEC), poison=False)
  kernels = _kernels(rng, 4)
  (_, outs32), grads32 = _layer_outputs(batch, SPEC, kernels)
  (_, outs16), grads16 = _layer_outputs(batch, SPEC, kernels, jnp.bfloat16)
  for a, b in zip(outs32, outs16):
    assert b.dtype == jnp.bfloat16
    scale = float(jnp.max(jnp.abs(a))) + 1e-6
    assert float(jnp.max(jnp.abs(a - b.astype(jnp.float32)))) <= 0.03 * scale
  for name in kernels:
    scale = float(jnp.max(jnp.abs(grads32[name]))) + 1e-6
    assert float(jnp.max(jnp.abs(grads32[name] - grads16[name]))) <= 0.05 * scale, name


@pytest.mark.parametrize("platform, loops", [("cpu", True), ("tpu", False), ("cuda", False)])
def test_the_band_form_is_chosen_by_the_platform_lowered_for(platform, loops):
  # CPU loops over blocks of a band's rows (cache-sized); accelerators take the whole band.
  rng = np.random.default_rng(7)
  scenes, feats = _scenes(rng, (120, 40), 4)
  batch = _device(ss.padded_batch(scenes, feats, SPEC), poison=False)
  kernel = jnp.asarray(rng.normal(size=(27, 4, 4)).astype(np.float32))

  def train(feats, kernel):
    level = geo.from_batch({**batch, "voxel_feats": feats}, SPEC).levels[0]
    return jax.grad(lambda x, w: jnp.sum(geo.submanifold_conv(x, level, w) ** 2), (0, 1))(
        feats, kernel)
  text = jax.export.export(jax.jit(train), platforms=[platform])(
      batch["voxel_feats"], kernel).mlir_module()
  assert ("stablehlo.while" in text) == loops
