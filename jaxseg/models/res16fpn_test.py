"""Res16FPN18 against a dense-grid reference, and its channel plan."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.models import res16fpn
from jaxseg.models.registry import ENCODERS
from jaxseg.ops.sparse import geometry as geo
from tests import sparse_scenes as ss

_DN = ("NDHWC", "DHWIO", "NDHWC")
_HI = jax.lax.Precision.HIGHEST


def _conv(x, kernel, stride, padding):
  return jax.lax.conv_general_dilated(x, kernel, (stride,) * 3, padding, dimension_numbers=_DN,
                                      precision=_HI)


def _batch_norm(x, occupied, bn):
  """Train-mode BatchNorm over the occupied cells of a dense [1, X, Y, Z, F] grid."""
  occ = occupied[..., None]
  n = occupied.sum()
  mean = jnp.sum(x * occ, axis=(0, 1, 2, 3)) / n
  var = jnp.sum((x - mean) ** 2 * occ, axis=(0, 1, 2, 3)) / n
  return jnp.where(occ, (x - mean) / jnp.sqrt(var + 1e-5) * bn["scale"] + bn["bias"], 0)


def _coarser(occupied):
  x, y, z = occupied.shape[1:]
  return occupied.reshape(1, x // 2, 2, y // 2, 2, z // 2, 2).any(axis=(2, 4, 6))


def _dense_trilinear(coarse, occupied, stride, fine_shape):
  """Each fine cell q takes sum over the 8 cells floor(q/s) + d of prod(1-f or f) * feature
  (occupied cells only), f = (q mod s) / s."""
  out = 0
  padded = jnp.pad(coarse * occupied[..., None], ((0, 0), (0, 1), (0, 1), (0, 1), (0, 0)))
  idx = [np.arange(n) for n in fine_shape]
  base = [i // stride for i in idx]
  frac = [(i % stride) / stride for i in idx]
  for d in np.ndindex(2, 2, 2):
    cells = padded[0][np.ix_(base[0] + d[0], base[1] + d[1], base[2] + d[2])]
    weight = np.einsum("i,j,k->ijk", *[f if b else 1 - f for f, b in zip(frac, d)])
    out = out + weight[..., None] * cells
  return out[None]


def _dense_fpn(params, dense_feats, occupied, num_stages):
  """Stem (5^3) + stages (k2s2 conv, BN, ReLU, one BasicBlock with projection) + delayers
  interpolated back to the input cells and summed, on dense grids."""
  k = lambda w, size: w.reshape((size,) * 3 + w.shape[1:])
  stem = params["stem"]
  h = _conv(dense_feats, k(stem["SubmanifoldConv_0"]["kernel"], 5), 1, "SAME") * occupied[..., None]
  h = jax.nn.relu(_batch_norm(h, occupied, stem["MaskedBatchNorm_0"]))
  out, occ = 0, occupied
  for s in range(num_stages):
    stage, occ = params[f"stage{s + 1}"], _coarser(occ)
    h = _conv(h, k(stage["StridedConv_0"]["kernel"], 2), 2, "VALID")
    h = jax.nn.relu(_batch_norm(h, occ, stage["MaskedBatchNorm_0"]))
    block = stage["BasicBlock_0"]
    a = _conv(h, k(block["SubmanifoldConv_0"]["kernel"], 3), 1, "SAME") * occ[..., None]
    a = jax.nn.relu(_batch_norm(a, occ, block["MaskedBatchNorm_0"]))
    a = _conv(a, k(block["SubmanifoldConv_1"]["kernel"], 3), 1, "SAME") * occ[..., None]
    a = _batch_norm(a, occ, block["MaskedBatchNorm_1"])
    shortcut = _batch_norm(h @ block["SubmanifoldConv_2"]["kernel"][0], occ,
                           block["MaskedBatchNorm_2"])
    h = jax.nn.relu(a + shortcut)
    projected = h @ params[f"delayer{s + 1}"]["kernel"]
    out = out + _dense_trilinear(projected, occ, 2 ** (s + 1), occupied.shape[1:])
  return out


@functools.partial(jax.jit, static_argnums=1)   # one program, not one per parameter shape
def _perturbed(params, seed):
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree_util.tree_unflatten(
      tree, [p + 0.3 * jax.random.normal(key, p.shape) for p, key in zip(leaves, keys)])


def test_two_stage_fpn_matches_dense_reference():
  rng = np.random.default_rng(0)
  grid = (8, 8, 8)
  voxels = ss.random_voxels(rng, grid, 200)
  feats = rng.normal(size=(200, 2)).astype(np.float32)
  model = res16fpn.Res16FPN18(out_dim=5, init_dim=3, planes=(4, 6), layers=(1, 1))
  spec = geo.GeometrySpec(model.level_kernels())
  host = ss.padded_batch([voxels], [feats], spec, slack=1)
  batch = jax.device_put(host)
  variables = jax.jit(lambda b: model.init(jax.random.key(0), geo.from_batch(b, spec),
                                           b["voxel_feats"], False))(batch)
  params = _perturbed(variables["params"], 1)
  out, _ = jax.jit(lambda p, b: model.apply(
      {"params": p, "batch_stats": variables["batch_stats"]}, geo.from_batch(b, spec),
      b["voxel_feats"], True, mutable=["batch_stats"]))(params, batch)
  occupied = np.zeros((1,) + grid, bool)
  occupied[0, voxels[:, 0], voxels[:, 1], voxels[:, 2]] = True
  ref = _dense_fpn(params, ss.dense_grid(voxels, jnp.asarray(feats), grid), jnp.asarray(occupied),
                   2)
  rows = ss.scene_rows(host, 0, 0)
  np.testing.assert_allclose(np.asarray(out)[0, rows], ref[0, voxels[:, 0], voxels[:, 1],
                                                           voxels[:, 2]], rtol=1e-3, atol=1e-4)
  assert np.all(np.asarray(out)[0, ~host["level0_mask"][0]] == 0)


def test_registered_default_follows_reference_channel_plan():
  model = ENCODERS.get("res16fpn18")()
  spec = geo.GeometrySpec(model.level_kernels())
  batch, _ = ss.encoder_inputs(np.random.default_rng(3), spec, (100,), poison=False)
  out, variables = jax.eval_shape(lambda: model.init_with_output(
      jax.random.key(0), geo.from_batch(batch, spec), batch["voxel_feats"], False))
  assert out.shape == batch["voxel_feats"].shape[:2] + (128,) and out.dtype == jnp.float32
  params = variables["params"]
  assert params["stem"]["SubmanifoldConv_0"]["kernel"].shape == (125, 6, 32)
  inputs = (32, 32, 64, 128)   # Strided convs keep the channels of the previous stage.
  for s, planes in enumerate((32, 64, 128, 256)):
    stage = params[f"stage{s + 1}"]
    assert stage["StridedConv_0"]["kernel"].shape == (8, inputs[s], inputs[s])
    assert stage["BasicBlock_1"]["SubmanifoldConv_1"]["kernel"].shape == (27, planes, planes)
    assert params[f"delayer{s + 1}"]["kernel"].shape == (planes, 128)
    assert "bias" not in params[f"delayer{s + 1}"]
