"""The data-parallel step on 4 CPU devices against 1 device, float64 numpy and jax.grad."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxseg.data.sharding import to_global_arrays
from jaxseg.errors import InputError
from jaxseg.models import get_encoder
from jaxseg.ops.sparse.norm import MaskedBatchNorm
from jaxseg.ops.sparse import geometry as geo
from jaxseg.train.optim import make_optimizer
from jaxseg.train.parallel import make_mesh, make_train_step, replicate
from jaxseg.train.state import TrainState
from tests import sparse_scenes as ss

_COUNTS = (12, 1, 5, 0, 9, 3, 12, 7)   # Valid rows per scene: unequal shares per device.
_ROWS, _FEATURES = 12, 5
# (mode, check_vma): shard_map with both gradient rules.
_VARIANTS = (("jit", False), ("shard_map", False), ("shard_map", True), ("pmap", False))
_ID = lambda variant: f"{variant[0]}{'-check_vma' if variant[1] else ''}"
_SGD = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-3}


class _Net(nn.Module):
  """Dense -> MaskedBatchNorm (cross-device with axis_name) -> tanh -> Dense."""
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, mask, train):
    h = nn.Dense(8)(jnp.where(mask[..., None], x, 0))
    h = MaskedBatchNorm(momentum=0.9, axis_name=self.axis_name)(h, mask, train)
    return nn.Dense(3)(jnp.tanh(h))


def _loss_fn(params, model_state, batch, extra, axis_name):
  """Masked per-row squared error summed over the rows this call sees."""
  mask = batch["mask"]
  out, new_state = _Net(axis_name).apply({"params": params, **model_state}, batch["x"], mask,
                                         True, mutable=["batch_stats"])
  target = jnp.where(mask[..., None], batch["y"], 0) * extra["scale"]
  err = jnp.where(mask[..., None], out - target, 0)
  return (jnp.sum(err ** 2), jnp.sum(mask).astype(jnp.float32),
          (new_state, {"abs_err": jnp.sum(jnp.abs(err))}))


def _batch(seed):
  """8 scenes of 12 rows; padding rows of x and y hold NaN."""
  rng = np.random.default_rng(seed)
  mask = np.arange(_ROWS)[None, :] < np.asarray(_COUNTS)[:, None]
  x = rng.normal(1.0, 2.0, size=(len(_COUNTS), _ROWS, _FEATURES)).astype(np.float32)
  y = rng.normal(size=(len(_COUNTS), _ROWS, 3)).astype(np.float32)
  x[~mask], y[~mask] = np.nan, np.nan
  return {"x": x, "y": y, "mask": mask}


def _record_grads():
  """An optax stage that passes gradients through and keeps the last ones as its state."""
  return optax.GradientTransformation(lambda params: jax.tree.map(jnp.zeros_like, params),
                                      lambda grads, state, params=None: (grads, grads))


def _initial_state():
  batch = _batch(0)
  variables = _Net().init(jax.random.key(0), batch["x"], batch["mask"], False)
  batch_stats = jax.tree.map(lambda v: v + 0.1, variables["batch_stats"])   # Not the defaults.
  return TrainState.create(variables["params"], {"batch_stats": batch_stats},
                           optax.chain(_record_grads(), make_optimizer(_SGD)))


@functools.lru_cache(maxsize=None)
def _train(variant, num_devices, steps):
  """(final state as numpy, metrics per step as numpy) of `steps` steps on batches 0.."""
  mode, check_vma = variant
  mesh = make_mesh(num_devices)
  step_fn = make_train_step(_loss_fn, mesh, mode, check_vma=check_vma)
  state = replicate(_initial_state(), mesh)
  extra = replicate({"scale": np.float32(1.5)}, mesh)
  history = []
  for k in range(steps):
    state, metrics = step_fn(state, to_global_arrays(_batch(k), mesh), extra)
    history.append(jax.tree.map(np.asarray, metrics))
  return jax.tree.map(np.asarray, state), history


def _numpy_forward(params, batch_stats, batch, scale):
  """float64 loss, abs error, weight and new running statistics of one train-mode call."""
  p = jax.tree.map(lambda v: np.asarray(v, np.float64), params)
  mask = batch["mask"]
  x, y = batch["x"][mask].astype(np.float64), batch["y"][mask].astype(np.float64) * scale
  h = x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
  mean, var = h.mean(0), h.var(0)
  bn = p["MaskedBatchNorm_0"]
  h = (h - mean) / np.sqrt(var + 1e-5) * bn["scale"] + bn["bias"]
  out = np.tanh(h) @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"]
  stats = {"mean": 0.9 * np.asarray(batch_stats["MaskedBatchNorm_0"]["mean"]) + 0.1 * mean,
           "var": 0.9 * np.asarray(batch_stats["MaskedBatchNorm_0"]["var"]) + 0.1 * var}
  n = mask.sum()
  return np.sum((out - y) ** 2) / n, np.sum(np.abs(out - y)) / n, n, stats


def _assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


@pytest.mark.parametrize("variant", _VARIANTS, ids=_ID)
def test_one_step_on_four_devices_matches_float64_and_unsharded_grad(variant):
  state, (metrics,) = _train(variant, 4, 1)
  init = _initial_state()
  batch = _batch(0)
  loss, abs_err, weight, stats = _numpy_forward(init.params, init.model_state["batch_stats"],
                                                batch, 1.5)
  np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["abs_err"], abs_err, rtol=1e-5)
  assert metrics["weight"] == weight == sum(_COUNTS)
  new_stats = state.model_state["batch_stats"]["MaskedBatchNorm_0"]
  np.testing.assert_allclose(new_stats["mean"], stats["mean"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new_stats["var"], stats["var"], rtol=1e-5, atol=1e-6)
  # The exact gradient of the global objective, computed on one device without sharding.
  objective = lambda p: (lambda l, w, _: l / w)(*_loss_fn(p, init.model_state, batch,
                                                          {"scale": 1.5}, None))
  reference = jax.grad(objective)(init.params)
  _assert_trees_close(state.opt_state[0], jax.tree.map(np.asarray, reference))
  assert int(state.step) == 1


@pytest.mark.parametrize("variant", _VARIANTS, ids=_ID)
def test_three_steps_on_four_devices_equal_one_device(variant):
  state4, metrics4 = _train(variant, 4, 3)
  state1, metrics1 = _train(variant, 1, 3)
  _assert_trees_close(state4.params, state1.params)
  _assert_trees_close(state4.model_state, state1.model_state)
  _assert_trees_close(state4.opt_state, state1.opt_state)
  _assert_trees_close(metrics4, metrics1)
  # The params moved far more than the tolerance, so a wrong gradient scale would show.
  moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), state4.params, _initial_state().params)
  assert max(jax.tree.leaves(moved)) > 1e-2


def test_modes_agree_with_each_other():
  (state, history), *others = [_train(variant, 4, 3) for variant in _VARIANTS]
  for other_state, other_history in others:
    _assert_trees_close(other_state.params, state.params)
    _assert_trees_close(other_state.model_state, state.model_state)
    _assert_trees_close(other_history, history)


def test_empty_batch_gives_zero_loss_and_gradient():
  mesh = make_mesh(4)
  batch = _batch(0)
  batch["mask"][:] = False
  state = replicate(_initial_state(), mesh)
  new_state, metrics = make_train_step(_loss_fn, mesh, "shard_map")(
      state, to_global_arrays(batch, mesh), replicate({"scale": np.float32(1.0)}, mesh))
  assert float(metrics["loss"]) == 0 and float(metrics["weight"]) == 0
  for grad in jax.tree.leaves(new_state.opt_state[0]):
    np.testing.assert_array_equal(grad, 0)


def test_replicate_places_copies_that_a_donating_step_may_consume():
  mesh = make_mesh(4)
  tree = {"a": jnp.arange(6.0), "b": np.ones((2, 3), np.float32)}
  replicated = replicate(tree, mesh)
  for name, value in replicated.items():
    assert value.sharding.is_fully_replicated and len(value.sharding.device_set) == 4
    np.testing.assert_array_equal(value, tree[name])
  jax.jit(lambda t: jax.tree.map(lambda x: x + 1, t), donate_argnums=0)(replicated)
  np.testing.assert_array_equal(tree["a"], np.arange(6.0))   # The input was not donated.


def test_bad_mode_and_mesh_raise_input_error():
  with pytest.raises(InputError, match="unknown mode 'vmap'"):
    make_train_step(_loss_fn, make_mesh(), "vmap")
  with pytest.raises(InputError, match="lack the data axis 'batch'"):
    make_train_step(_loss_fn, make_mesh(), "jit", axis_name="batch")
  with pytest.raises(InputError, match="devices requested"):
    make_mesh(5)


# The real encoder at a tiny size (two stages) so that compiling it twice stays quick.
_ENCODER = dict(out_dim=8, init_dim=4, planes=(4, 8), layers=(1, 1))
_SPEC = geo.GeometrySpec(((5,), (3,), (3,)))


def _encoder_loss_fn(params, model_state, batch, extra, axis_name):
  """Per-voxel squared distance of Res16FPN18 features to a target, masked."""
  del extra
  model = get_encoder("res16fpn18")(axis_name=axis_name, **_ENCODER)
  geometry = geo.from_batch(batch, _SPEC)
  mask = geometry.levels[0].mask
  out, new_state = model.apply({"params": params, **model_state}, geometry,
                               batch["voxel_feats"], True, mutable=["batch_stats"])
  err = jnp.where(mask[..., None], out - jnp.where(mask[..., None], batch["target"], 0), 0)
  return jnp.sum(err ** 2), jnp.sum(mask).astype(jnp.float32), (new_state, {})


def test_res16fpn18_shard_map_on_two_devices_equals_one_device():
  """Two packs (one scene each): both on one device (vmapped) or one per device."""
  rng = np.random.default_rng(3)
  scenes = [ss.random_voxels(rng, (10, 10, 10), n) for n in (200, 90)]
  feats = [rng.normal(size=(len(v), 6)).astype(np.float32) for v in scenes]
  batch = ss.padded_batch(scenes, feats, _SPEC, num_packs=2)
  batch["target"] = rng.normal(size=batch["voxel_feats"].shape[:2] + (8,)).astype(np.float32)
  jbatch = jax.device_put(batch)
  variables = jax.jit(lambda b: get_encoder("res16fpn18")(**_ENCODER).init(
      jax.random.key(0), geo.from_batch(b, _SPEC), b["voxel_feats"], False))(jbatch)
  tx = make_optimizer({"name": "sgd", "lr": 0.05, "momentum": 0.9})
  results = []
  for mode, num_devices in (("jit", 1), ("shard_map", 2)):
    mesh = make_mesh(num_devices)
    state = replicate(TrainState.create(variables["params"],
                                        {"batch_stats": variables["batch_stats"]}, tx), mesh)
    step_fn = make_train_step(_encoder_loss_fn, mesh, mode)
    losses = []
    for _ in range(2):
      state, metrics = step_fn(state, to_global_arrays(batch, mesh), {})
      losses.append(float(metrics["loss"]))
    results.append((jax.tree.map(np.asarray, state), losses))
  (one, losses1), (two, losses2) = results
  np.testing.assert_allclose(losses2, losses1, rtol=1e-5)
  assert losses1[1] < losses1[0]
  # Float32 sums over a deeper network in another order: a looser tolerance, still far below
  # how far the params moved.
  _assert_trees_close(two.params, one.params, rtol=1e-4, atol=5e-5)
  _assert_trees_close(two.model_state, one.model_state, rtol=1e-4, atol=5e-5)
  moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), one.params, variables["params"])
  assert max(jax.tree.leaves(moved)) > 1e-2
