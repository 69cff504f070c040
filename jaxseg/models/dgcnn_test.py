"""Tests for the DGCNN point encoder: shapes, padding invariance, equivariance, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxseg.models import dgcnn

_K = 6


def _model(**kwargs):
  return dgcnn.DGCNN(out_dim=16, k=_K, edge_channels=(8, 8), global_dim=16,
                               head_channels=(16,), knn_block_size=32, **kwargs)


def _scene(points=48, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.uniform(-1, 1, (points, 3)).astype(np.float32),
          rng.uniform(0, 1, (points, 3)).astype(np.float32))


def _init(model, coords, feats, mask):
  return jax.jit(lambda *a: model.init(jax.random.key(0), *a))(coords, feats, mask)


def _apply(model, variables, coords, feats, mask, train=False):
  """One compiled forward (eager op-by-op dispatch would compile every op separately)."""
  return jax.jit(lambda *a: model.apply(*a, train=train))(variables, coords, feats, mask)


def test_output_shape_and_zero_padding():
  coords, feats = _scene()
  coords, feats = np.stack([coords, coords[::-1]]), np.stack([feats, feats])
  mask = np.ones((2, 48), bool)
  mask[1, 40:] = False
  model = _model()
  variables = _init(model, coords, feats, mask)
  out = _apply(model, variables, coords, feats, mask, train=True)
  assert out.shape == (2, 48, 16) and out.dtype == jnp.float32
  assert np.all(np.asarray(out)[1, 40:] == 0)
  assert np.all(np.isfinite(out))


def test_nan_padding_does_not_leak_into_valid_points():
  coords, feats = _scene(40, 1)
  for dynamic in (True, False):
    model = _model(dynamic_graph=dynamic)
    variables = _init(model, coords[None], feats[None], np.ones((1, 40), bool))
    unpadded = _apply(model, variables, coords[None], feats[None], np.ones((1, 40), bool))
    pad_c = np.concatenate([coords, np.full((24, 3), np.nan, np.float32)])
    pad_f = np.concatenate([feats, np.full((24, 3), np.nan, np.float32)])
    # Interleave padding among valid points.
    order = np.random.default_rng(2).permutation(64)
    mask = (np.arange(64) < 40)[order]
    padded = _apply(model, variables, pad_c[order][None], pad_f[order][None], mask[None])
    inverse = np.argsort(order)
    np.testing.assert_allclose(np.asarray(padded)[0][inverse][:40], unpadded[0], rtol=1e-5,
                               atol=1e-5)
    assert np.all(np.asarray(padded)[0][~mask] == 0)


def test_permutation_equivariance():
  coords, feats = _scene(48, 3)
  mask = np.ones((1, 48), bool)
  model = _model()
  variables = _init(model, coords[None], feats[None], mask)
  out = np.asarray(_apply(model, variables, coords[None], feats[None], mask))[0]
  perm = np.random.default_rng(4).permutation(48)
  out_perm = np.asarray(_apply(model, variables, coords[perm][None], feats[perm][None], mask))[0]
  np.testing.assert_allclose(out_perm, out[perm], rtol=1e-5, atol=1e-5)


def test_relative_input_sees_offsets_only():
  """relative_input: moving the whole cloud (coordinates and input features) changes nothing;
  the default network sees positions, so its output moves."""
  coords, feats = _scene(48, 5)
  mask = np.ones((1, 48), bool)
  shift = np.array([0.7, -1.3, 2.1], np.float32)
  for relative in (True, False):
    model = _model(relative_input=relative)
    variables = _init(model, coords[None], feats[None], mask)
    assert ("theta" in variables["params"]["edge_conv0"]) != relative
    out = np.asarray(_apply(model, variables, coords[None], feats[None], mask))
    moved = np.asarray(_apply(model, variables, (coords + shift)[None], (feats + shift)[None],
                              mask))
    if relative:
      np.testing.assert_allclose(moved, out, rtol=1e-4, atol=1e-4)
    else:
      assert np.abs(moved - out).max() > 1e-2


def test_gradient_step_with_nan_padding_reduces_loss():
  coords, feats = _scene(48, 5)
  mask = np.ones((1, 48), bool)
  mask[0, 30:] = False
  coords[30:] = np.nan
  feats[30:] = np.nan
  target = np.random.default_rng(6).normal(size=(1, 48, 16)).astype(np.float32)
  model = _model()
  params = _init(model, coords[None], feats[None], mask)["params"]
  optimizer = optax.adam(1e-2)
  opt_state = optimizer.init(params)

  def loss_fn(p):
    out = model.apply({"params": p}, coords[None], feats[None], mask, train=True)
    return jnp.sum(jnp.where(mask[..., None], (out - target) ** 2, 0.0)) / mask.sum()

  @jax.jit
  def step(p, s):
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, s = optimizer.update(grads, s, p)
    return optax.apply_updates(p, updates), s, loss, grads

  params, opt_state, first, grads = step(params, opt_state)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert any(np.any(g != 0) for g in jax.tree.leaves(grads))
  for _ in range(4):
    params, opt_state, loss, _ = step(params, opt_state)
  assert float(loss) < float(first)
