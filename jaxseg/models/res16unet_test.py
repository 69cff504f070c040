"""Res16UNet14/18/34: shapes and channel plan (encoders_test.py checks the numerics)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.models import get_encoder
from jaxseg.ops.sparse import geometry as geo
from tests import sparse_scenes as ss


@pytest.mark.parametrize("name,layers", [("res16unet14", (1,) * 8), ("res16unet18", (2,) * 8),
                                         ("res16unet34", (2, 3, 4, 6, 2, 2, 2, 2))])
def test_registered_unets_follow_minkowski_channel_plan(name, layers):
  model = get_encoder(name)(out_dim=20)
  spec = geo.GeometrySpec(model.level_kernels())
  batch, _ = ss.encoder_inputs(np.random.default_rng(0), spec, (100,), poison=False)
  out, variables = jax.eval_shape(lambda: model.init_with_output(
      jax.random.key(0), geo.from_batch(batch, spec), batch["voxel_feats"], False))
  assert out.shape == batch["voxel_feats"].shape[:2] + (20,) and out.dtype == jnp.float32
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
