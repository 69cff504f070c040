"""Every voxel encoder on the new geometry: padding and slack never change the valid outputs,
both sparse engines agree, gradients match finite differences, bfloat16 stays close, and both
dtypes train."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxseg.models import res16fpn
from jaxseg.models import res16unet
from jaxseg.ops.sparse import geometry as geo
from tests import sparse_scenes as ss

_ENCODERS = {
    "res16fpn18": res16fpn.Res16FPN18(planes=(8, 8, 16, 16), layers=(1, 2, 1, 1), out_dim=16),
    "res16unet14": res16unet.Res16UNet14(planes=(8, 8, 16, 16, 16, 8, 8, 8), init_dim=8,
                                         out_dim=12),
}


def _spec(model, engine="pairs"):
  return geo.GeometrySpec(model.level_kernels(), engine=engine)


def test_stage_count_sets_the_levels():
  assert res16fpn.Res16FPN18().level_kernels() == ((5,), (3,), (3,), (3,), (3,))
  assert res16fpn.Res16FPN18(planes=(8, 16)).level_kernels() == ((5,), (3,), (3,))
  assert res16unet.Res16UNet34().level_kernels() == ((3, 5), (3,), (3,), (3,), (3,))


def _apply(model, spec, variables, batch, params=None):
  geometry = geo.from_batch(batch, spec)
  variables = dict(variables, **({} if params is None else {"params": params}))
  return model.apply(variables, geometry, batch["voxel_feats"], True, mutable=["batch_stats"])


@pytest.mark.parametrize("name", sorted(_ENCODERS))
def test_slack_and_engine_never_change_valid_outputs(name):
  model = _ENCODERS[name]
  spec = _spec(model)
  tight, host = ss.encoder_inputs(np.random.default_rng(1), spec, (300, 120, 40), num_packs=2)
  loose, loose_host = ss.encoder_inputs(np.random.default_rng(1), spec, (300, 120, 40),
                                        num_packs=2, slack=2)
  variables = jax.jit(lambda b: model.init(jax.random.key(0), geo.from_batch(b, spec),
                                           b["voxel_feats"], False))(tight)
  out, state = jax.jit(lambda b: _apply(model, spec, variables, b))(tight)
  big, big_state = jax.jit(lambda b: _apply(model, spec, variables, b))(loose)
  dense, dense_state = jax.jit(lambda b: _apply(model, _spec(model, "dense"), variables, b))(
      tight)
  valid = host["level0_mask"]
  assert big.shape[1] > out.shape[1] and np.all(np.isfinite(big))
  np.testing.assert_allclose(np.asarray(big)[:, :out.shape[1]][valid], np.asarray(out)[valid],
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(dense), np.asarray(out), rtol=1e-4, atol=1e-5)
  assert np.all(np.asarray(out)[~valid] == 0)
  for other in (big_state, dense_state):
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                           state["batch_stats"], other["batch_stats"])
  del loose_host


@pytest.mark.parametrize("model", [
    res16fpn.Res16FPN18(planes=(8, 16), layers=(1, 1), out_dim=16), _ENCODERS["res16unet14"]])
def test_gradients_match_finite_differences_and_bfloat16_stays_close(model):
  """Gradients of both encoders against finite differences; bfloat16 on Res16FPN18."""
  spec = _spec(model)
  batch, host = ss.encoder_inputs(np.random.default_rng(2), spec, (250, 90))
  target = np.random.default_rng(3).normal(size=batch["voxel_feats"].shape[:2] +
                                           (model.out_dim,)).astype(np.float32)
  variables = jax.jit(lambda b: model.init(jax.random.key(1), geo.from_batch(b, spec),
                                           b["voxel_feats"], False))(batch)
  valid = host["level0_mask"][..., None]

  def loss_fn(params, net=model):
    out, _ = _apply(net, spec, variables, batch, params)
    return jnp.sum(jnp.where(valid, out - target, 0) ** 2) / valid.sum(), out

  grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
  (loss, out), grads = grad_fn(variables["params"])
  # Host float64 arithmetic on the gradients and one jitted shift: eager jnp ops here would
  # compile a program per parameter shape.
  leaves = [np.asarray(g, np.float64) for g in jax.tree_util.tree_leaves(grads)]
  assert all(np.all(np.isfinite(g)) for g in leaves)
  norm = float(np.sqrt(sum(np.sum(g ** 2) for g in leaves)))
  shift = jax.jit(lambda eps: jax.tree_util.tree_map(lambda p, g: p + eps * g / norm,
                                                     variables["params"], grads))
  shifted = lambda eps: grad_fn(shift(eps))[0][0]
  eps = 1e-4
  np.testing.assert_allclose((float(shifted(eps)) - float(shifted(-eps))) / (2 * eps), norm,
                             rtol=0.02)
  assert float(shifted(-10 * eps)) < float(loss)
  if not isinstance(model, res16fpn.Res16FPN18):
    return   # bfloat16 on one encoder is enough (each dtype compiles the whole network again).
  half = dataclasses.replace(model, dtype=jnp.bfloat16)
  grad16_fn = jax.jit(jax.value_and_grad(lambda p: loss_fn(p, half), has_aux=True))
  (_, out16), grads16 = grad16_fn(variables["params"])
  assert out16.dtype == jnp.float32
  scale = float(jnp.max(jnp.abs(out)))
  assert float(jnp.max(jnp.abs(out16 - out))) < 0.05 * scale
  leaves16 = [np.asarray(g, np.float64) for g in jax.tree_util.tree_leaves(grads16)]
  cos = sum(np.sum(a * b) for a, b in zip(leaves, leaves16)) / (
      norm * np.sqrt(sum(np.sum(g ** 2) for g in leaves16)))
  assert cos > 0.95
  # Both dtypes train: 25 Adam steps on the same regression fall far below the start, and the
  # bfloat16 run ends close to the float32 one.
  optimizer = optax.adam(3e-2)
  update = jax.jit(lambda p, g, s: (lambda u, s: (optax.apply_updates(p, u), s))(
      *optimizer.update(g, s, p)))
  finals = []
  for fn in (grad_fn, grad16_fn):
    params, state = variables["params"], optimizer.init(variables["params"])
    for _ in range(25):
      _, grads_now = fn(params)
      params, state = update(params, grads_now, state)
    finals.append(float(fn(params)[0][0]))
    assert np.isfinite(finals[-1]) and finals[-1] < 0.6 * float(loss), (finals, float(loss))
  assert abs(finals[1] - finals[0]) < 0.15 * float(loss), (finals, float(loss))
