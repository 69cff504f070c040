"""Optimizers with PyTorch's update rules (the reference trains with torch.optim).

  tx = make_optimizer({"name": "sgd", "lr": 3e-2, "momentum": 0.9, "dampening": 0.1,
                       "weight_decay": 1e-4, "schedule": "step", "decay_every": 500,
                       "decay_factor": 0.8})

SGD follows torch.optim.SGD: the weight decay is added to the gradient (g += wd * p), the
momentum buffer starts as the first gradient and then runs buf = m * buf + (1 - d) * g
(optax.sgd has no dampening), and nesterov uses g + m * buf. Adam follows torch.optim.Adam
with coupled L2 weight decay (g += wd * p before the moments; not AdamW). The 'step' schedule
is torch's StepLR stepped once per update: the k-th update (k = 0, 1, ...) uses
lr * decay_factor ** (k // decay_every). The constant and step schedules keep their settings
(lr, decay_every, decay_factor) in the optimizer state as arrays, not in the compiled
program, so phases whose optimizers differ only in them (PointDC's SVC warm-up at a constant
rate and its iterative phase with step decay) compile to the same program and the second
loads it from the persistent compilation cache.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxseg.errors import InputError

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "poly")
_COMMON_KEYS = ("name", "lr", "weight_decay", "schedule", "decay_every", "decay_factor",
                "power", "total_steps")
_KEYS = {"sgd": _COMMON_KEYS + ("momentum", "dampening", "nesterov"),
         "adam": _COMMON_KEYS + ("betas", "eps")}


class TorchMomentumState(NamedTuple):
  """count: int32 [] updates seen; momentum_buffer: like the params."""
  count: jax.Array
  momentum_buffer: Any


def torch_momentum(momentum: float, dampening: float = 0.0,
                   nesterov: bool = False) -> optax.GradientTransformation:
  """torch.optim.SGD's momentum: buf = g on the first update, then m * buf + (1 - d) * g;
  the update direction is buf, or g + m * buf with nesterov."""

  def init_fn(params):
    return TorchMomentumState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

  def update_fn(updates, state, params=None):
    del params
    first = state.count == 0
    buffer = jax.tree.map(lambda g, b: jnp.where(first, g, momentum * b + (1 - dampening) * g),
                          updates, state.momentum_buffer)
    if nesterov:
      updates = jax.tree.map(lambda g, b: g + momentum * b, updates, buffer)
    else:
      updates = buffer
    return updates, TorchMomentumState(optax.safe_int32_increment(state.count), buffer)

  return optax.GradientTransformation(init_fn, update_fn)


class StepRateState(NamedTuple):
  """count: int32 [] updates seen; the schedule's settings as arrays: lr f32 [],
  decay_every int32 [], decay_factor f32 []."""
  count: jax.Array
  lr: jax.Array
  decay_every: jax.Array
  decay_factor: jax.Array


def scale_by_step_rate(lr: float, decay_every: int = 1,
                       decay_factor: float = 1.0) -> optax.GradientTransformation:
  """Scales the updates by -lr * decay_factor ** floor(count / decay_every) (torch's StepLR
  stepped per update; decay_factor 1 is a constant rate), the same values as
  optax.exponential_decay(staircase=True) under optax.scale_by_learning_rate, with the settings
  held in the state (see the module docstring)."""

  def init_fn(params):
    del params
    return StepRateState(jnp.zeros([], jnp.int32), jnp.asarray(lr, jnp.float32),
                         jnp.asarray(decay_every, jnp.int32),
                         jnp.asarray(decay_factor, jnp.float32))

  def update_fn(updates, state, params=None):
    del params
    rate = _step_rate(state.lr, state.decay_every, state.decay_factor, state.count)
    updates = jax.tree.map(lambda g: (-rate).astype(g.dtype) * g, updates)
    return updates, state._replace(count=optax.safe_int32_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)


def with_schedule_settings(restored: Any, fresh: Any) -> Any:
  """The optimizer state `restored` (from a checkpoint) with the schedule settings of `fresh`
  (`tx.init` of the config's optimizer) and its own update counts, so that a resumed run
  follows the config's learning rate, as the 'poly' schedule (settings in the program) does."""
  def settings(old, new):
    if isinstance(old, StepRateState):
      return old._replace(lr=new.lr, decay_every=new.decay_every, decay_factor=new.decay_factor)
    return old
  return jax.tree.map(settings, restored, fresh, is_leaf=lambda x: isinstance(x, StepRateState))


def _number(cfg: Mapping[str, Any], key: str, default: float | None, where: str,
            minimum: float = 0.0, strict: bool = False) -> float:
  """cfg[key] as a float >= minimum (> minimum when strict); InputError otherwise."""
  if key not in cfg and default is None:
    raise InputError(f"{where}.{key}", "missing", f"set {where}.{key}")
  value = cfg.get(key, default)
  try:
    value = float(value)
  except (TypeError, ValueError):
    value = float("nan")
  if not (value > minimum if strict else value >= minimum):
    relation = ">" if strict else ">="
    raise InputError(f"{where}.{key}", f"{cfg.get(key)!r} is not a number {relation} {minimum}",
                     f"set {where}.{key} to a number {relation} {minimum}")
  return value


def _step_settings(cfg: Mapping[str, Any], where: str) -> tuple[float, int, float]:
  """(lr, decay_every, decay_factor) of a 'constant' (decay_every 1, decay_factor 1) or 'step'
  schedule; InputError for a bad value."""
  lr = _number(cfg, "lr", None, where, strict=True)
  if cfg.get("schedule", "constant") == "constant":
    return lr, 1, 1.0
  decay_every = _number(cfg, "decay_every", None, where, strict=True)
  if decay_every != int(decay_every):
    raise InputError(f"{where}.decay_every", f"{cfg['decay_every']!r} is not a whole number of "
                     "steps", f"set {where}.decay_every to a positive integer")
  return lr, int(decay_every), _number(cfg, "decay_factor", None, where, strict=True)


def _step_rate(lr, decay_every, decay_factor, count):
  """lr * decay_factor ** floor(count / decay_every): torch's StepLR stepped per update."""
  return lr * jnp.power(decay_factor, jnp.floor(count / decay_every))


def make_schedule(cfg: Mapping[str, Any], where: str = "optimizer") -> optax.Schedule:
  """Learning rate per update count: 'constant' (lr), torch StepLR per update ('step':
  lr * decay_factor ** (count // decay_every)) or MinkowskiEngine's PolyLR per update ('poly',
  GrowSP's: lr * (1 - count / (total_steps + 1)) ** power)."""
  schedule = cfg.get("schedule", "constant")
  if schedule in ("constant", "step"):
    settings = _step_settings(cfg, where)
    return lambda count: _step_rate(*settings, count)
  lr = _number(cfg, "lr", None, where, strict=True)
  if schedule == "poly":
    power = _number(cfg, "power", 0.9, where)
    total = _number(cfg, "total_steps", None, where, strict=True)
    return lambda count: lr * (1.0 - jnp.minimum(count, total) / (total + 1.0)) ** power
  raise InputError(f"{where}.schedule", f"unknown schedule {schedule!r}",
                   f"use one of {list(SCHEDULES)}")


def _learning_rate(cfg: Mapping[str, Any], where: str) -> optax.GradientTransformation:
  """The learning-rate scaling of `make_schedule`'s schedule: 'constant' and 'step' with their
  settings in the state (`scale_by_step_rate`), 'poly' as an optax schedule."""
  if cfg.get("schedule", "constant") in ("constant", "step"):
    return scale_by_step_rate(*_step_settings(cfg, where))
  return optax.scale_by_learning_rate(make_schedule(cfg, where))


def make_optimizer(cfg: Mapping[str, Any], where: str = "optimizer"
                   ) -> optax.GradientTransformation:
  """An optax transformation with torch.optim semantics from a config mapping.

  Keys: name 'sgd'|'adam' and lr (required); weight_decay (0), schedule 'constant'|'step'
  with decay_every (updates) and decay_factor, or 'poly' with power and total_steps; SGD:
  momentum (0), dampening (0), nesterov
  (False); Adam: betas ([0.9, 0.999]), eps (1e-8). Defaults are torch's. `where` names the
  config section in error messages.
  """
  name = cfg.get("name")
  if name not in OPTIMIZERS:
    raise InputError(f"{where}.name", f"unknown optimizer {name!r}",
                     f"use one of {list(OPTIMIZERS)}")
  unknown = sorted(set(cfg) - set(_KEYS[name]))
  if unknown:
    raise InputError(where, f"option(s) {unknown} do not apply to {name}",
                     f"use only {list(_KEYS[name])}")
  weight_decay = _number(cfg, "weight_decay", 0.0, where)
  learning_rate = _learning_rate(cfg, where)
  decay = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
  if name == "sgd":
    momentum = _number(cfg, "momentum", 0.0, where)
    dampening = _number(cfg, "dampening", 0.0, where)
    nesterov = cfg.get("nesterov", False)
    if not isinstance(nesterov, bool):
      raise InputError(f"{where}.nesterov", f"{nesterov!r} is not true or false",
                       f"set {where}.nesterov to true or false")
    if nesterov and (momentum == 0 or dampening != 0):
      raise InputError(where, "nesterov momentum needs momentum > 0 and dampening 0 (as in "
                       "torch.optim.SGD)", "set momentum > 0 and dampening: 0, or nesterov: false")
    moment = [torch_momentum(momentum, dampening, nesterov)] if momentum else []
    return optax.chain(*decay, *moment, learning_rate)
  betas = cfg.get("betas", (0.9, 0.999))
  if (not isinstance(betas, (list, tuple)) or len(betas) != 2 or
      not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
    raise InputError(f"{where}.betas", f"{betas!r} is not two numbers in [0, 1)",
                     f"e.g. {where}.betas: [0.9, 0.999]")
  eps = _number(cfg, "eps", 1e-8, where)
  return optax.chain(*decay, optax.scale_by_adam(b1=float(betas[0]), b2=float(betas[1]), eps=eps),
                     learning_rate)


def optimizer_for(cfg: Mapping[str, Any], steps_per_epoch: int, where: str,
                  epochs: int = 0) -> optax.GradientTransformation:
  """`make_optimizer` of a config section that counts in epochs: cfg has the keys of
  `make_optimizer` with decay_every_epochs (optional) in place of decay_every (updates); the
  'poly' schedule runs over the phase's `epochs`. `where` names the config section in
  errors."""
  values = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
  every_epochs = values.pop("decay_every_epochs", 0)
  values["decay_every"] = max(1, int(every_epochs) * steps_per_epoch)
  if values.get("schedule") == "poly":
    values["total_steps"] = max(1, int(epochs) * steps_per_epoch)
  return make_optimizer(values, where)
