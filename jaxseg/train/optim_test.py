"""Optimizers against a float64 numpy transcription of torch.optim.SGD / Adam and StepLR."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxseg.errors import InputError
from jaxseg.train.optim import (make_optimizer, make_schedule, optimizer_for, scale_by_step_rate,
                                 with_schedule_settings)

_STEPS = 7


def _torch_lr(cfg, k):
  """torch StepLR(step_size=decay_every, gamma=decay_factor) stepped after every update."""
  if cfg.get("schedule", "constant") == "constant":
    return cfg["lr"]
  return cfg["lr"] * cfg["decay_factor"] ** (k // cfg["decay_every"])


def _torch_sgd(cfg, params, grad_fn):
  """torch.optim.SGD's _single_tensor_sgd in float64 numpy."""
  wd, m = cfg.get("weight_decay", 0.0), cfg.get("momentum", 0.0)
  d, nesterov = cfg.get("dampening", 0.0), cfg.get("nesterov", False)
  params = {k: v.astype(np.float64) for k, v in params.items()}
  bufs = {}
  for k in range(_STEPS):
    grads = grad_fn(params, k)
    for name, p in params.items():
      g = grads[name] + wd * p
      if m:
        bufs[name] = g.copy() if name not in bufs else m * bufs[name] + (1 - d) * g
        g = g + m * bufs[name] if nesterov else bufs[name]
      params[name] = p - _torch_lr(cfg, k) * g
  return params


def _torch_adam(cfg, params, grad_fn):
  """torch.optim.Adam's _single_tensor_adam (coupled weight decay) in float64 numpy."""
  wd = cfg.get("weight_decay", 0.0)
  b1, b2 = cfg.get("betas", (0.9, 0.999))
  eps = cfg.get("eps", 1e-8)
  params = {k: v.astype(np.float64) for k, v in params.items()}
  exp_avg = {k: np.zeros_like(v) for k, v in params.items()}
  exp_avg_sq = {k: np.zeros_like(v) for k, v in params.items()}
  for k in range(_STEPS):
    grads = grad_fn(params, k)
    step = k + 1
    for name, p in params.items():
      g = grads[name] + wd * p
      exp_avg[name] = exp_avg[name] + (g - exp_avg[name]) * (1 - b1)
      exp_avg_sq[name] = exp_avg_sq[name] * b2 + (1 - b2) * g * g
      step_size = _torch_lr(cfg, k) / (1 - b1 ** step)
      denom = np.sqrt(exp_avg_sq[name]) / np.sqrt(1 - b2 ** step) + eps
      params[name] = p - step_size * exp_avg[name] / denom
  return params


def _problem():
  """Initial params and gradients g_k(p) = G_k + 0.5 p (fixed noise plus a param term)."""
  rng = np.random.default_rng(0)
  params = {"w": rng.normal(size=(4, 3)).astype(np.float32),
            "b": rng.normal(size=(3,)).astype(np.float32)}
  noise = [{k: rng.normal(size=v.shape) for k, v in params.items()} for _ in range(_STEPS)]
  grad_fn = lambda p, k: {name: noise[k][name] + 0.5 * p[name] for name in p}
  return params, grad_fn


def _run_optax(cfg, params, grad_fn):
  tx = make_optimizer(cfg)
  params = jax.tree.map(jnp.asarray, params)
  opt_state = tx.init(params)

  @jax.jit
  def update(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  for k in range(_STEPS):
    grads = {n: jnp.asarray(g, jnp.float32) for n, g in grad_fn(params, k).items()}
    params, opt_state = update(params, opt_state, grads)
  return jax.tree.map(np.asarray, params)


_STEP = {"schedule": "step", "decay_every": 2, "decay_factor": 0.5}
_SGD_CASES = [
    {"name": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.05, **_STEP},
    {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05},
    {"name": "sgd", "lr": 0.1, "weight_decay": 0.05, **_STEP},
    {"name": "sgd", "lr": 0.1, "momentum": 0.5, "dampening": 0.5},
]
_ADAM_CASES = [
    {"name": "adam", "lr": 0.01, "weight_decay": 0.05, **_STEP},
    {"name": "adam", "lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6},
]


@pytest.mark.parametrize("cfg", _SGD_CASES + _ADAM_CASES)
def test_matches_torch_update_rules(cfg):
  params, grad_fn = _problem()
  reference = (_torch_sgd if cfg["name"] == "sgd" else _torch_adam)(cfg, params, grad_fn)
  ours = _run_optax(cfg, params, grad_fn)
  for name in params:
    np.testing.assert_allclose(ours[name], reference[name], rtol=2e-5, atol=2e-6)
    assert np.abs(ours[name] - params[name]).max() > 1e-2   # the params did move


def test_reference_is_sensitive_to_dampening_and_schedule():
  params, grad_fn = _problem()
  ours = _run_optax(_SGD_CASES[0], params, grad_fn)
  for changed in ({"dampening": 0.0}, {"schedule": "constant"}, {"weight_decay": 0.0}):
    other = _torch_sgd({**_SGD_CASES[0], **changed}, params, grad_fn)
    assert np.abs(ours["w"] - other["w"]).max() > 1e-3, changed


def test_step_schedule_values():
  schedule = make_schedule({"lr": 0.03, "schedule": "step", "decay_every": 5,
                            "decay_factor": 0.8})
  expected = [0.03 * 0.8 ** (k // 5) for k in range(17)]
  np.testing.assert_allclose([float(schedule(k)) for k in range(17)], expected, rtol=1e-6)
  assert float(make_schedule({"lr": 0.5})(1000)) == 0.5


@pytest.mark.parametrize("cfg, match", [
    ({"name": "rmsprop", "lr": 0.1}, "unknown optimizer"),
    ({"name": "adam", "lr": 0.1, "momentum": 0.9}, "do not apply to adam"),
    ({"name": "sgd", "lr": 0.1, "betas": [0.9, 0.99]}, "do not apply to sgd"),
    ({"name": "sgd", "lr": -1.0}, "optimizer.lr"),
    ({"name": "sgd"}, "optimizer.lr: missing"),
    ({"name": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True},
     "nesterov momentum needs"),
    ({"name": "sgd", "lr": 0.1, "schedule": "step", "decay_factor": 0.5}, "decay_every"),
    ({"name": "sgd", "lr": 0.1, "schedule": "cosine"}, "unknown schedule"),
    ({"name": "adam", "lr": 0.1, "betas": [0.9]}, "optimizer.betas"),
])
def test_bad_config_raises_input_error(cfg, match):
  with pytest.raises(InputError, match=match):
    make_optimizer(cfg)


def test_poly_schedule_is_minkowski_polylr_over_the_phase():
  """GrowSP steps MinkowskiEngine's PolyLR every iteration: lr (1 - s / (max_iter + 1)) ** 0.9."""
  cfg = {"name": "sgd", "lr": 0.1, "schedule": "poly", "power": 0.9, "decay_every_epochs": 0}
  tx = optimizer_for(cfg, steps_per_epoch=4, where="growsp.optimizer", epochs=3)
  params = jnp.zeros(())
  state = tx.init(params)
  rates = []
  for _ in range(14):
    updates, state = tx.update(jnp.ones(()), state, params)
    rates.append(-float(updates))
  want = [0.1 * (1 - min(s, 12) / 13) ** 0.9 for s in range(14)]
  np.testing.assert_allclose(rates, want, rtol=1e-5)


def test_state_held_rate_equals_optax_schedules_bit_for_bit():
  rate = scale_by_step_rate(0.03, 5, 0.8)
  reference = optax.scale_by_learning_rate(optax.exponential_decay(0.03, 5, 0.8,
                                                                   staircase=True))
  grads = {"w": jnp.linspace(-1.0, 2.0, 7, dtype=jnp.float32)}
  state, ref_state = rate.init(grads), reference.init(grads)
  for _ in range(17):
    ours, state = rate.update(grads, state)
    theirs, ref_state = reference.update(grads, ref_state)
    np.testing.assert_array_equal(np.asarray(ours["w"]), np.asarray(theirs["w"]))


def test_constant_and_step_schedules_compile_to_one_program():
  """Optimizers that differ only in their schedule's settings lower to the same program (the
  settings are state), so a phase at a constant rate and one with step decay share it."""
  params = {"w": jnp.ones((3, 2), jnp.float32)}
  texts = []
  for schedule in ({"schedule": "constant"},
                   {"schedule": "step", "decay_every": 7, "decay_factor": 0.8}):
    tx = make_optimizer({"name": "sgd", "lr": 0.05 if len(texts) else 0.03, "momentum": 0.9,
                         "weight_decay": 1e-4, **schedule})
    step = jax.jit(lambda p, s, tx=tx: tx.update(p, s, p))
    texts.append(step.lower(params, tx.init(params)).as_text())
  assert texts[0] == texts[1]


def test_resumed_state_takes_the_configs_schedule_and_keeps_its_counts():
  params = {"w": jnp.ones((3,), jnp.float32)}
  old = make_optimizer({"name": "sgd", "lr": 0.03, "momentum": 0.9, "schedule": "step",
                        "decay_every": 2, "decay_factor": 0.5})
  state = old.init(params)
  for _ in range(3):
    _, state = old.update(params, state, params)
  new = make_optimizer({"name": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "step",
                        "decay_every": 4, "decay_factor": 0.8})
  merged = with_schedule_settings(state, new.init(params))
  updates, _ = new.update(params, merged, params)
  momentum = jax.tree.leaves(state)[1]           # the restored buffer, kept
  expected = -0.1 * 0.8 ** (3 // 4) * (0.9 * np.asarray(momentum) + 1.0)
  np.testing.assert_allclose(np.asarray(updates["w"]), expected, rtol=1e-6)
