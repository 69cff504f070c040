"""Res16FPN18 against a dense-grid reference, padding invariance and a training step."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.models import res16fpn
from jaxseg.models.registry import ENCODERS
from jaxseg.ops.sparse.testing_utils import random_batch

_DN = ("NDHWC", "DHWIO", "NDHWC")
_HI = jax.lax.Precision.HIGHEST


def _conv(x, kernel, stride, padding):
  return jax.lax.conv_general_dilated(x, kernel, (stride,) * 3, padding, dimension_numbers=_DN,
                                      precision=_HI)


def _batch_norm(x, occupied, bn):
  """Train-mode BatchNorm over the occupied cells of dense [B, X, Y, Z, F] grids."""
  occ = occupied[..., None]
  n = occupied.sum()
  mean = jnp.sum(x * occ, axis=(0, 1, 2, 3)) / n
  var = jnp.sum((x - mean) ** 2 * occ, axis=(0, 1, 2, 3)) / n
  y = (x - mean) / jnp.sqrt(var + 1e-5) * bn["scale"] + bn["bias"]
  return jnp.where(occ, y, 0)


def _dense_tiny_fpn(params, dense_feats, occupied):
  """Stem (5^3) + one stage (k2s2, one BasicBlock with projection) + delayer, densely."""
  grid = occupied.shape[1:]
  coarse_occ = occupied.reshape(occupied.shape[0], grid[0] // 2, 2, grid[1] // 2, 2,
                                grid[2] // 2, 2).any(axis=(2, 4, 6))
  stem, stage = params["stem"], params["stage1"]
  k = lambda w, size: w.reshape((size,) * 3 + w.shape[1:])
  h = _conv(dense_feats, k(stem["SubmanifoldConv_0"]["kernel"], 5), 1, "SAME")
  h = jax.nn.relu(_batch_norm(h * occupied[..., None], occupied, stem["MaskedBatchNorm_0"]))
  h = _conv(h, k(stage["StridedConv_0"]["kernel"], 2), 2, "VALID")
  h = jax.nn.relu(_batch_norm(h, coarse_occ, stage["MaskedBatchNorm_0"]))
  block = stage["BasicBlock_0"]
  a = _conv(h, k(block["SubmanifoldConv_0"]["kernel"], 3), 1, "SAME") * coarse_occ[..., None]
  a = jax.nn.relu(_batch_norm(a, coarse_occ, block["MaskedBatchNorm_0"]))
  a = _conv(a, k(block["SubmanifoldConv_1"]["kernel"], 3), 1, "SAME") * coarse_occ[..., None]
  a = _batch_norm(a, coarse_occ, block["MaskedBatchNorm_1"])
  shortcut = _batch_norm(h @ block["SubmanifoldConv_2"]["kernel"][0], coarse_occ,
                         block["MaskedBatchNorm_2"])
  out = jax.nn.relu(a + shortcut) @ params["delayer1"]["kernel"]
  for axis in (1, 2, 3):
    out = jnp.repeat(out, 2, axis=axis)    # Each voxel takes its parent cell's feature.
  return out


def _perturbed(params, seed):
  leaves, tree = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree_util.tree_unflatten(
      tree, [p + 0.3 * jax.random.normal(key, p.shape) for p, key in zip(leaves, keys)])


def test_tiny_fpn_matches_dense_reference():
  rng = np.random.default_rng(0)
  grid = (6, 8, 6)
  coords, feats, mask = random_batch(rng, grid, (150, 60), 192, 2)
  model = res16fpn.Res16FPN18(out_dim=5, init_dim=3, planes=(4,), layers=(1,))
  variables = model.init(jax.random.key(0), coords, feats, mask, False)
  params = _perturbed(variables["params"], 1)
  out, _ = model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                       coords, feats, mask, True, mutable=["batch_stats"])
  dense = np.zeros((2,) + grid + (2,), np.float32)
  occupied = np.zeros((2,) + grid, bool)
  for b in range(2):
    c = coords[b][mask[b]]
    dense[b, c[:, 0], c[:, 1], c[:, 2]] = feats[b][mask[b]]
    occupied[b, c[:, 0], c[:, 1], c[:, 2]] = True
  ref = _dense_tiny_fpn(params, jnp.asarray(dense), jnp.asarray(occupied))
  for b in range(2):
    c = coords[b][mask[b]]
    np.testing.assert_allclose(np.asarray(out)[b][mask[b]], ref[b, c[:, 0], c[:, 1], c[:, 2]],
                               rtol=1e-3, atol=1e-4)
  assert np.all(np.asarray(out)[~mask] == 0)


def _grow_capacity(coords, feats, mask, extra):
  """Appends `extra` padding rows whose coords duplicate valid voxels and whose feats are NaN."""
  b = coords.shape[0]
  pad_coords = np.repeat(coords[:, :1], extra, axis=1)
  return (np.concatenate([coords, pad_coords], 1),
          np.concatenate([feats, np.full((b, extra, feats.shape[2]), np.nan, np.float32)], 1),
          np.concatenate([mask, np.zeros((b, extra), bool)], 1))


def test_registered_default_follows_reference_channel_plan():
  rng = np.random.default_rng(3)
  coords, feats, mask = random_batch(rng, (8, 8, 8), (100,), 128, 6)
  out, variables = jax.eval_shape(lambda: ENCODERS.get("res16fpn18")().init_with_output(
      jax.random.key(0), coords, feats, mask, False))
  assert out.shape == (1, 128, 128) and out.dtype == jnp.float32
  params = variables["params"]
  assert params["stem"]["SubmanifoldConv_0"]["kernel"].shape == (125, 6, 32)
  inputs = (32, 32, 64, 128)   # Strided convs keep the channels of the previous stage.
  for s, planes in enumerate((32, 64, 128, 256)):
    stage = params[f"stage{s + 1}"]
    assert stage["StridedConv_0"]["kernel"].shape == (8, inputs[s], inputs[s])
    assert stage["BasicBlock_1"]["SubmanifoldConv_1"]["kernel"].shape == (27, planes, planes)
    assert params[f"delayer{s + 1}"]["kernel"].shape == (planes, 128)
    assert "bias" not in params[f"delayer{s + 1}"]


def test_padding_never_changes_valid_outputs_and_gradients_are_right():
  rng = np.random.default_rng(1)
  coords, feats, mask = random_batch(rng, (32, 32, 16), (120, 70), 160, 6)
  target = rng.normal(size=(2, 160, 16)).astype(np.float32)
  # Every layer type of the full model, fewer blocks and channels to keep compile time small;
  # scattered random voxels need the full capacity at every level.
  model = res16fpn.Res16FPN18(planes=(8, 8, 16, 16), layers=(1, 2, 1, 1), out_dim=16,
                              coarse_capacities=(160,) * 4)
  variables = model.init(jax.random.key(0), coords, feats, mask, False)

  def loss_fn(params):
    out, state = model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                             coords, feats, mask, True, mutable=["batch_stats", "diagnostics"])
    err = jnp.where(mask[..., None], out - target, 0)
    return jnp.sum(err ** 2) / mask.sum(), (out, state)

  grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
  (loss, (small, state)), grads = grad_fn(variables["params"])
  assert small.shape == (2, 160, 16)
  assert not np.any(np.asarray(state["diagnostics"]["level_overflow"]))
  big_model = model.clone(coarse_capacities=(400,) * 4)
  big, big_state = jax.jit(
      lambda *a: big_model.apply(variables, *a, True, mutable=["batch_stats"]))(
          *_grow_capacity(coords, feats, mask, 240))
  assert big.shape == (2, 400, 16)
  np.testing.assert_allclose(big[:, :160], small, rtol=1e-4, atol=1e-5)
  assert np.all(np.asarray(big[:, 160:]) == 0) and np.all(np.isfinite(big))
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                         state["batch_stats"], big_state["batch_stats"])
  # NaN padding features give finite gradients, and a central finite difference along the
  # gradient direction d = g / |g| gives the directional derivative |g|.
  leaves = jax.tree_util.tree_leaves(grads)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
  assert float(jnp.abs(grads["stem"]["SubmanifoldConv_0"]["kernel"]).max()) > 0
  norm = float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in leaves)))
  shifted = lambda eps: grad_fn(jax.tree_util.tree_map(
      lambda p, g: p + eps * g / norm, variables["params"], grads))[0][0]
  eps = 1e-4
  derivative = (float(shifted(eps)) - float(shifted(-eps))) / (2 * eps)
  np.testing.assert_allclose(derivative, norm, rtol=0.02)
  assert float(shifted(-10 * eps)) < float(loss)
