"""Res16UNet14/18/34: shapes and channel plan, padding invariance and a training step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.models import res16unet
from jaxseg.models.registry import ENCODERS
from jaxseg.ops.sparse.testing_utils import random_batch

_SMALL_PLANES = (8, 8, 16, 16, 16, 8, 8, 8)


@pytest.mark.parametrize("name,layers", [("res16unet14", (1,) * 8), ("res16unet18", (2,) * 8),
                                         ("res16unet34", (2, 3, 4, 6, 2, 2, 2, 2))])
def test_registered_unets_follow_minkowski_channel_plan(name, layers):
  rng = np.random.default_rng(0)
  coords, feats, mask = random_batch(rng, (8, 8, 8), (100,), 128, 6)
  model = ENCODERS.get(name)(out_dim=20)
  out, variables = jax.eval_shape(
      lambda: model.init_with_output(jax.random.key(0), coords, feats, mask, False))
  assert out.shape == (1, 128, 20) and out.dtype == jnp.float32
  params = variables["params"]
  planes, init_dim = (32, 64, 128, 256, 256, 128, 96, 96), 32
  for s in range(4):
    assert len([k for k in params[f"down{s + 1}"] if k.startswith("BasicBlock")]) == layers[s]
    assert len([k for k in params if k.startswith(f"up{s + 1}_block")]) == layers[4 + s]
  # MinkowskiEngine: each decoder block input is PLANES[4+s] + the skip's channels.
  skips = (planes[2], planes[1], planes[0], init_dim)
  for s in range(4):
    first = params[f"up{s + 1}_block1"]["SubmanifoldConv_0"]["kernel"]
    assert first.shape == (27, planes[4 + s] + skips[s], planes[4 + s])
  assert params["stem"]["SubmanifoldConv_0"]["kernel"].shape == (125, 6, init_dim)
  assert params["final"]["kernel"].shape == (planes[7], 20)


def test_padding_never_changes_valid_outputs_and_gradients_are_right():
  rng = np.random.default_rng(1)
  coords, feats, mask = random_batch(rng, (32, 32, 16), (120, 70), 160, 6)
  # Scattered random voxels need the full capacity at every level.
  model = res16unet.Res16UNet14(planes=_SMALL_PLANES, init_dim=8, out_dim=12,
                                coarse_capacities=(160,) * 4)
  variables = model.init(jax.random.key(0), coords, feats, mask, False)

  def loss_fn(params):
    out, state = model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                             coords, feats, mask, True, mutable=["batch_stats", "diagnostics"])
    return jnp.sum(jnp.where(mask[..., None], out, 0) ** 2) / mask.sum(), (out, state)

  grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
  (loss, (small, state)), grads = grad_fn(variables["params"])
  assert small.shape == (2, 160, 12)
  assert not np.any(np.asarray(state["diagnostics"]["level_overflow"]))
  extra = 240
  big_inputs = (np.concatenate([coords, np.repeat(coords[:, :1], extra, 1)], 1),
                np.concatenate([feats, np.full((2, extra, 6), np.nan, np.float32)], 1),
                np.concatenate([mask, np.zeros((2, extra), bool)], 1))
  big_model = model.clone(coarse_capacities=(400,) * 4)
  big, _ = jax.jit(lambda *a: big_model.apply(variables, *a, True, mutable=["batch_stats"]))(
      *big_inputs)
  np.testing.assert_allclose(big[:, :160], small, rtol=1e-4, atol=1e-5)
  assert np.all(np.asarray(big[:, 160:]) == 0) and np.all(np.asarray(small)[~mask] == 0)
  # NaN padding features give finite gradients, and a central finite difference along the
  # gradient direction d = g / |g| gives the directional derivative |g|.
  leaves = jax.tree_util.tree_leaves(grads)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
  norm = float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in leaves)))
  shifted = lambda eps: grad_fn(jax.tree_util.tree_map(
      lambda p, g: p + eps * g / norm, variables["params"], grads))[0][0]
  eps = 1e-4
  derivative = (float(shifted(eps)) - float(shifted(-eps))) / (2 * eps)
  np.testing.assert_allclose(derivative, norm, rtol=0.02)
  assert float(shifted(-10 * eps)) < float(loss)
