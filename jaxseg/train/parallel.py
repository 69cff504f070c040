"""One data-parallel train step for every stage, in three modes: 'jit', 'shard_map', 'pmap'.

A stage supplies a loss function

  loss_fn(params, model_state, batch, extra, axis_name)
      -> (loss_sum f32[], weight f32[], (new_model_state, metric_sums: dict[str, f32[]]))

where loss_sum, weight and metric_sums are SUMS over the scenes the function sees (the
device's shard in 'shard_map'/'pmap', the whole global batch in 'jit'), and axis_name is the
mesh axis to pass to cross-device BatchNorm (None in 'jit', where the statistics already span
the global batch). The step minimises the global objective

  psum(loss_sum) / psum(weight)        (weight is treated as a constant)

with its exact gradient, so every mode, and any number of devices or processes, gives the
update of one device holding the whole batch (up to float32 reduction order).

Modes:
  'jit'        global-view jax.jit: the batch is sharded on its leading (scene) axis, the
               state and `extra` are replicated, XLA inserts the gradient all-reduce.
  'shard_map'  jax.jit(jax.shard_map(per-device step)) with in_specs (P(), P(axis), P()) and
               out_specs P(). The shard_map gradient trap: with vma checking (check_vma=True),
               jax.grad of a per-device loss with respect to replicated params already returns
               the psum of the per-device gradients, and the pmap habit of a pmean on top does
               not undo it. Two fixes are implemented, selected by `check_vma`:
               check_vma=False (default): collectives follow pmap's rules (psum transposes to
               psum, no implicit gradient sum), so each device differentiates its share
               loss_sum / psum(weight) and the gradients are psum-ed explicitly. This works
               with code that is not vma-typed (e.g. a lax.scan whose carry starts from
               jnp.zeros while the body makes it device-varying).
               check_vma=True: each device differentiates the GLOBAL objective
               psum(loss_sum) / psum(weight), which is device-invariant; the transpose of
               psum broadcasts its cotangent and the transpose of the implicit broadcast of
               the replicated params sums the per-device contributions, so the result is the
               exact gradient with no explicit psum (one would scale it by the device count).
               Both give the exact gradient of the global objective, cross-device BatchNorm
               statistics included (BatchNorm's psum is differentiated through).
  'pmap'       the legacy style as a thin adapter: jax.pmap over the mesh's devices with the
               batch reshaped to [devices, per_device, ...], state and extra broadcast
               (in_axes None) and outputs taken as replicated (out_axes None); pmap follows
               the check_vma=False rules above. Limits: one process only (pmap maps over local
               devices), a 1-D mesh, no buffer donation; kept for comparison, prefer
               'shard_map' or 'jit'.

In 'shard_map' and 'pmap' the new model state is pmean-ed over devices: a no-op for
statistics already pooled with axis_name, the average of per-device statistics otherwise.
Both 'jit' and 'shard_map' run over all devices of all processes when the batch is made of
global arrays (jaxseg.data.sharding.to_global_arrays) and the state is `replicate`d.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxseg.data.sharding import DATA_AXIS, data_mesh
from jaxseg.errors import InputError
from jaxseg.train.state import TrainState

MODES = ("jit", "shard_map", "pmap")

LossFn = Callable[[Any, Any, Mapping[str, jax.Array], Any, Optional[str]],
                  tuple[jax.Array, jax.Array, tuple[Any, dict[str, jax.Array]]]]
StepFn = Callable[[TrainState, Mapping[str, jax.Array], Any],
                  tuple[TrainState, dict[str, jax.Array]]]


def make_mesh(num_devices: Optional[int] = None, axis_name: str = DATA_AXIS) -> Mesh:
  """A 1-D data mesh over the first `num_devices` devices (default: all, every process)."""
  devices = jax.devices()
  if num_devices is not None and not 0 < num_devices <= len(devices):
    raise InputError("parallel.num_devices", f"{num_devices} devices requested, "
                     f"{len(devices)} available", f"use a number in [1, {len(devices)}]")
  return data_mesh(devices[:num_devices], axis_name)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Every leaf of `tree` (numpy or jax arrays, same value on every process) as a global
  jax.Array replicated over `mesh` (NamedSharding with PartitionSpec()).

  The result never shares buffers with `tree` (jax.Array leaves go through host copies:
  device_put reuses a buffer already on a target device, and a device copy per leaf would
  compile one program per leaf shape), so a step that donates it leaves `tree` intact.
  """
  on_host = jax.tree.map(lambda x: np.array(x) if isinstance(x, jax.Array) else x, tree)
  return jax.device_put(on_host, NamedSharding(mesh, PartitionSpec()))


def replicated_train_state(params: Any, model_state: Any, tx: optax.GradientTransformation,
                           mesh: Mesh) -> TrainState:
  """TrainState.create(params, model_state, tx) with every leaf replicated over `mesh`, the
  optimizer state made by one compiled program (eagerly, `tx.init` compiles one program per
  parameter shape: 41 for Res16FPN18)."""
  params, model_state = replicate((params, model_state), mesh)
  return jax.jit(lambda p, m: TrainState.create(p, m, tx),
                 out_shardings=NamedSharding(mesh, PartitionSpec()))(params, model_state)


def _safe(total_weight: jax.Array) -> jax.Array:
  """The global weight as a divisor: 1 when the batch holds nothing (loss and grads are 0)."""
  return jnp.where(total_weight > 0, total_weight, 1.0)


def _metrics(loss: jax.Array, metric_sums: Mapping[str, jax.Array],
             total_weight: jax.Array) -> dict[str, jax.Array]:
  """{'loss': global mean, name: global sum / global weight, 'weight': global weight}."""
  reserved = {"loss", "weight"} & set(metric_sums)
  if reserved:
    raise ValueError(f"metric names {sorted(reserved)} are reserved for the step's own metrics")
  means = {name: value / _safe(total_weight) for name, value in metric_sums.items()}
  return {"loss": loss, **means, "weight": total_weight}


def _global_step(loss_fn: LossFn) -> StepFn:
  """The step on the global batch (mode 'jit')."""

  def step(state, batch, extra):
    def objective(params):
      loss_sum, weight, (model_state, metric_sums) = loss_fn(params, state.model_state, batch,
                                                             extra, None)
      total_weight = jax.lax.stop_gradient(weight)
      return loss_sum / _safe(total_weight), (model_state, metric_sums, total_weight)

    (loss, (model_state, sums, total_weight)), grads = jax.value_and_grad(
        objective, has_aux=True)(state.params)
    return state.apply_gradients(grads, model_state), _metrics(loss, sums, total_weight)

  return step


def _device_step(loss_fn: LossFn, axis_name: str, vma: bool) -> StepFn:
  """The step on one device's shard; `vma`: collectives are vma-typed (shard_map with
  check_vma=True), see the module docstring."""

  def step(state, batch, extra):
    def objective(params):
      loss_sum, weight, (model_state, metric_sums) = loss_fn(params, state.model_state, batch,
                                                             extra, axis_name)
      total_weight = jax.lax.psum(jax.lax.stop_gradient(weight), axis_name)
      share = loss_sum / _safe(total_weight)
      if vma:
        share = jax.lax.psum(share, axis_name)   # The global objective, device-invariant.
      return share, (model_state, metric_sums, total_weight)

    (share, (model_state, sums, total_weight)), grads = jax.value_and_grad(
        objective, has_aux=True)(state.params)
    loss = share
    if not vma:
      grads = jax.lax.psum(grads, axis_name)
      loss = jax.lax.psum(share, axis_name)
    model_state = jax.lax.pmean(model_state, axis_name)
    metrics = _metrics(loss, jax.lax.psum(sums, axis_name), total_weight)
    return state.apply_gradients(grads, model_state), metrics

  return step


def make_train_step(loss_fn: LossFn, mesh: Mesh, mode: str = "shard_map",
                    axis_name: str = DATA_AXIS, donate: bool = True,
                    check_vma: bool = False) -> StepFn:
  """step(state, batch, extra) -> (new_state, metrics), compiled once per batch shape.

  Args:
    loss_fn: see the module docstring.
    mesh: a mesh with the data axis `axis_name` (e.g. make_mesh()).
    mode: 'jit' | 'shard_map' | 'pmap'.
    axis_name: the mesh axis the batch's leading (scene) axis is split over.
    donate: donate the input state's buffers ('jit' and 'shard_map'; the caller must not
      use the old state afterwards).
    check_vma: 'shard_map' only: shard_map's vma type checking, and with it the gradient
      rule (see the module docstring); True needs a vma-clean loss_fn.

  The step's inputs: state a TrainState replicated on `mesh` (`replicate`), batch a dict of
  global arrays [B, ...] sharded on axis 0 (B a multiple of the devices), extra any pytree of
  replicated arrays that is not differentiated (frozen centroids, ...; may be {}).
  metrics: {'loss', each metric sum / global weight, 'weight'}, replicated f32[] arrays.
  """
  if mode not in MODES:
    raise InputError("parallel.mode", f"unknown mode {mode!r}", f"use one of {list(MODES)}")
  if axis_name not in mesh.axis_names:
    raise InputError("parallel", f"mesh axes {list(mesh.axis_names)} lack the data axis "
                     f"{axis_name!r}", f"build the mesh with make_mesh(axis_name={axis_name!r})")
  replicated = NamedSharding(mesh, PartitionSpec())
  donate_argnums = (0,) if donate else ()
  if mode == "jit":
    return jax.jit(_global_step(loss_fn),
                   in_shardings=(replicated, NamedSharding(mesh, PartitionSpec(axis_name)),
                                 replicated),
                   out_shardings=(replicated, replicated), donate_argnums=donate_argnums)
  if mode == "shard_map":
    spec = PartitionSpec()
    sharded = jax.shard_map(_device_step(loss_fn, axis_name, vma=check_vma), mesh=mesh,
                            in_specs=(spec, PartitionSpec(axis_name), spec), out_specs=spec,
                            check_vma=check_vma)
    return jax.jit(sharded, donate_argnums=donate_argnums)
  return _pmap_step(loss_fn, mesh, axis_name)


def _pmap_step(loss_fn: LossFn, mesh: Mesh, axis_name: str) -> StepFn:
  """The legacy jax.pmap adapter (single process, 1-D mesh)."""
  if jax.process_count() > 1:
    raise InputError("parallel.mode", "'pmap' maps over one process's devices and cannot run "
                     f"across the {jax.process_count()} processes", "use 'jit' or 'shard_map'")
  if mesh.devices.ndim != 1:
    raise InputError("parallel.mode", f"'pmap' needs a 1-D mesh, got axes "
                     f"{list(mesh.axis_names)}", "use 'jit' or 'shard_map'")
  devices = list(mesh.devices)
  mapped = jax.pmap(_device_step(loss_fn, axis_name, vma=False), axis_name=axis_name,
                    in_axes=(None, 0, None), out_axes=None, devices=devices)
  num = len(devices)
  split = jax.jit(
      lambda batch: jax.tree.map(lambda x: x.reshape((num, x.shape[0] // num) + x.shape[1:]),
                                 batch),
      out_shardings=NamedSharding(mesh, PartitionSpec(axis_name)))

  def step(state, batch, extra):
    return mapped(state, split(batch), extra)

  return step
