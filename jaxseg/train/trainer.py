"""The one trainer: runs any method's training phase (epoch loop, data-parallel step,
checkpoints and resume, periodic validation, logging).

  phase = Phase(name="svc", epochs=60, optimizer=config.svc.optimizer, loss_fn=loss_fn,
                fields=ctx.net_fields + ("pseudo_labels",), begin_epoch=recluster)
  variables, arrays = run_phase(ctx, phase, variables, resume=resume)

A phase owns one checkpoint folder (`<workdir>/checkpoints/<name>`), one optimizer and one
input stream seeded by (config.seed, name), whose workers live for the whole phase. Each
checkpoint records where the next batch starts ({'epoch', 'batch'}) and the phase's host arrays
(e.g. the current clustering); the stream is random access, so `--resume` starts at exactly that
batch and the resumed run sees the batches an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from typing import Any, Callable, Mapping, MutableMapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxseg.errors import InputError
from jaxseg.eval.report import ScalarWriter
from jaxseg.logging_utils import get_logger, progress
from jaxseg.ops.sparse.geometry import mask_key
from jaxseg.train.checkpoint import Checkpointer
from jaxseg.train.context import RunContext
from jaxseg.train.optim import optimizer_for, with_schedule_settings
from jaxseg.train.parallel import LossFn, make_train_step, replicated_train_state
from jaxseg.train.state import TrainState

_LOG = get_logger("train.trainer")

Arrays = MutableMapping[str, np.ndarray]
# begin_epoch(epoch, state, arrays, resumed_inside) -> the step's `extra` pytree for the
# epoch; may update `arrays` (e.g. re-cluster). resumed_inside: the run resumed in this epoch.
BeginEpoch = Callable[[int, Any, Arrays, bool], Any]
# host_fields(host batch, arrays) -> per-batch arrays computed on the host (pseudo-labels).
HostFields = Callable[[Mapping[str, np.ndarray], Arrays], dict[str, np.ndarray]]
# validate(variables) -> scalars, at the end of every `validate_every` epochs.
Validate = Callable[[Mapping[str, Any]], Mapping[str, float]]


def point_lookup(table: np.ndarray, offsets: np.ndarray, host: Mapping[str, np.ndarray]
                 ) -> np.ndarray:
  """Each point's value of a flat per-super-voxel table: [G, P] (-1 for padding points and
  points in no super-voxel)."""
  slot = np.maximum(host["point_scene"], 0)
  packs = np.arange(slot.shape[0])[:, None]
  record = host["scene_index"][packs, slot]
  local = host["point_segments"] - host["scene_segment_offset"][packs, slot]
  valid = host["point_mask"] & (host["point_segments"] >= 0) & (record >= 0)
  rows = np.where(valid, offsets[np.maximum(record, 0)] + local, 0)
  return np.where(valid, table[rows], -1)


def supervoxel_labels(gt_ignore_mask: bool) -> HostFields:
  """host_fields(host batch, arrays) -> {'pseudo_labels': int32 [G, P]}: each point takes its
  super-voxel's label from arrays['labels'] (read at call time, so re-clustering updates
  it); -1 for padding, points in no super-voxel and, with gt_ignore_mask, points whose
  ground truth is ignore."""
  def host_fields(host, arrays):
    labels = point_lookup(arrays["labels"], arrays["offsets"], host)
    if gt_ignore_mask:
      labels = np.where(host["point_labels"] >= 0, labels, -1)
    return {"pseudo_labels": labels.astype(np.int32)}
  return host_fields


def _no_extra(epoch, state, arrays, resumed_inside):
  del epoch, state, arrays, resumed_inside
  return {}


@dataclasses.dataclass
class Phase:
  """One training phase of a method.

  Attributes:
    name: checkpoint folder, stream seed and log prefix.
    epochs: epochs to train (0 = skip the phase).
    optimizer: config section of `jaxseg.train.optim.optimizer_for`.
    optimizer_key: its dotted config key, for errors.
    loss_fn: `jaxseg.train.parallel` loss function.
    fields: batch fields the loss reads.
    begin_epoch: see `BeginEpoch`.
    host_fields: see `HostFields`.
    extras: per-scene arrays added in the input workers (`pipeline.SceneExtras`).
    invariance: augmentation overrides of the training stream.
    mixup: mix a second scene into each training scene (`pipeline.PipelineConfig.mixup`).
    start_arrays: host arrays of a fresh start (None: none); a checkpoint's replace them.
    model_state: collections the loss carries from step to step besides 'batch_stats' (e.g.
      a prototype bank), their initial values; checkpointed with the state.
    source: the training records (None: the train split's); e.g. the split with its labels
      thinned to a few points.
    views: draws each training scene's posed views (`pipeline.SceneViews`; None: none).
  """
  name: str
  epochs: int
  optimizer: ml_collections.ConfigDict
  optimizer_key: str
  loss_fn: LossFn
  fields: tuple[str, ...]
  begin_epoch: BeginEpoch = _no_extra
  host_fields: HostFields | None = None
  extras: Any = None
  invariance: Mapping[str, float] | None = None
  mixup: bool = False
  start_arrays: Mapping[str, np.ndarray] | None = None
  model_state: Mapping[str, Any] | None = None
  source: Any = None
  views: Any = None


def _minutes(seconds: float) -> str:
  """'1 h 05 min', '12 min', '40 s'."""
  if seconds >= 3600:
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
  return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def phase_seed(seed: int, phase: str) -> int:
  """The seed of a phase's input stream: every phase draws its own order and augmentations."""
  return (int(seed) * 1_000_003 + zlib.crc32(phase.encode())) % (1 << 31)


def open_checkpointer(ctx: RunContext, phase: str) -> Checkpointer:
  """The phase's checkpoint folder `<workdir>/checkpoints/<phase>`."""
  return Checkpointer(ctx.path("checkpoints", phase, ""), keep=ctx.config.checkpoint.keep,
                      save_every=ctx.config.checkpoint.every_steps)


def start_position(meta: Mapping[str, Any] | None, steps_per_epoch: int) -> tuple[int, int]:
  """(epoch, batch) where training continues after a checkpoint's meta (or (0, 0))."""
  if not meta:
    return 0, 0
  epoch, batch = int(meta["epoch"]), int(meta["batch"])
  if batch >= steps_per_epoch:
    return epoch + 1, 0
  return epoch, batch


def network_variables(state: TrainState) -> dict[str, Any]:
  """{'params', 'batch_stats'} of a train state."""
  return {"params": state.params, "batch_stats": state.model_state["batch_stats"]}


def run_phase(ctx: RunContext, phase: Phase, variables: Mapping[str, Any], *, resume: bool,
              writer: ScalarWriter, validate: Validate | None = None
              ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """Trains `phase` from `variables` (or resumes it from its newest checkpoint); returns the
  final network variables and host arrays. A finished phase is not trained again."""
  checkpointer = open_checkpointer(ctx, phase.name)
  if not resume and checkpointer.latest_step() is not None:
    raise InputError(checkpointer.directory, f"the work directory already has {phase.name} "
                     "checkpoints from an earlier run",
                     "pass --resume to continue it, or choose another --config.workdir")
  steps_per_epoch = ctx.data.steps_per_epoch(ctx.config.data.train_split)
  tx = optimizer_for(phase.optimizer, steps_per_epoch, phase.optimizer_key, phase.epochs)
  state = replicated_train_state(variables["params"],
                                 {"batch_stats": variables["batch_stats"],
                                  **(phase.model_state or {})}, tx, ctx.mesh)
  arrays, meta = dict(phase.start_arrays or {}), None
  if checkpointer.latest_step() is not None:
    fresh = state.opt_state
    state, restored, meta = checkpointer.restore(state)
    state = state.replace(opt_state=with_schedule_settings(state.opt_state, fresh))
    arrays = dict(restored) if restored else arrays
    _LOG.info("resuming %s from step %d (%s)", phase.name, int(state.step), meta)
  if meta and meta.get("done"):
    if int(meta.get("epoch", phase.epochs)) < phase.epochs:
      _LOG.warning("%s finished its %d epochs; this config asks for %d, but --resume does not "
                   "train a finished phase again (its schedule was fixed when it started): "
                   "start a new run with the longer schedule, or one that starts from this "
                   "run's network (--config.init=%s)", phase.name, int(meta["epoch"]),
                   phase.epochs, ctx.workdir)
    return network_variables(state), arrays
  start_epoch, skip = start_position(meta, steps_per_epoch)
  loop = _EpochLoop(ctx, phase, make_train_step(phase.loss_fn, ctx.mesh,
                                                ctx.config.parallel.mode),
                    checkpointer, writer, steps_per_epoch, validate)
  state = loop.run(state, start_epoch=start_epoch, skip=skip, arrays=arrays)
  checkpointer.save(int(state.step), state, arrays,
                    {"phase": phase.name, "epoch": phase.epochs, "batch": 0, "done": True},
                    force=True)
  checkpointer.wait()
  return network_variables(state), arrays


class _EpochLoop:
  """The epochs of one phase: steps, logs, checkpoints, validation."""

  def __init__(self, ctx: RunContext, phase: Phase, step_fn, checkpointer: Checkpointer,
               writer: ScalarWriter, steps_per_epoch: int, validate: Validate | None):
    self.ctx, self.phase, self.step_fn = ctx, phase, step_fn
    self.checkpointer, self.writer = checkpointer, writer
    self.steps_per_epoch, self.validate = steps_per_epoch, validate

  def run(self, state, *, start_epoch: int, skip: int, arrays: Arrays):
    """Trains epochs start_epoch.. (skipping `skip` batches of the first). Returns the state."""
    ctx, phase, per_epoch = self.ctx, self.phase, self.steps_per_epoch
    start = start_epoch * per_epoch + skip
    total = phase.epochs * per_epoch - start
    if total <= 0:
      return state
    loader = ctx.data.loader(ctx.config.data.train_split, train=True,
                             seed=phase_seed(ctx.config.seed, phase.name), fields=phase.fields,
                             start=start, num_batches=total, invariance=phase.invariance,
                             extras=phase.extras, mixup=phase.mixup, source=phase.source,
                             views=phase.views)
    every = int(ctx.config.eval.every_epochs)
    began = time.perf_counter()
    with loader:
      batches = iter(loader)
      for epoch in range(start_epoch, phase.epochs):
        resumed_inside = epoch == start_epoch and bool(skip)
        extra = phase.begin_epoch(epoch, state, arrays, resumed_inside)
        first = skip if epoch == start_epoch else 0
        state, summary = self._epoch(state, batches, extra, epoch, first, arrays)
        if self.validate is not None and every and (epoch + 1) % every == 0:
          self._validate(state, epoch)
        # Re-clustering and validation included: the pace of the epochs run so far.
        eta = ((time.perf_counter() - began) / (epoch + 1 - start_epoch)
               * (phase.epochs - epoch - 1))
        self._log_epoch(int(state.step), epoch, summary, eta)
    return state

  def _log_epoch(self, step: int, epoch: int, summary: Mapping[str, Any], eta: float) -> None:
    """The epoch's line in the log (means, steps, time, voxels/s, ETA of the phase) and its
    TensorBoard scalars."""
    phase, means, rates = self.phase.name, summary["means"], summary["rates"]
    _LOG.info("%s epoch %d/%d: %s (%d steps, %.1f s, %.0f voxels/s; phase ETA %s)", phase,
              epoch + 1, self.phase.epochs,
              ", ".join(f"{k} {v:.4f}" for k, v in sorted(means.items()) if k != "weight"),
              summary["steps"], summary["seconds"], rates["voxels_per_second"],
              _minutes(eta))
    self.writer.scalars(step, {f"{phase}/epoch_{k}": v for k, v in {
        **means, **rates, "eta_minutes": eta / 60}.items()})

  def _validate(self, state, epoch: int) -> None:
    start = time.perf_counter()
    scalars = dict(self.validate(network_variables(state)))
    _LOG.info("%s epoch %d validation: %s (%.1f s)", self.phase.name, epoch + 1,
              ", ".join(f"{k} {v:.2f}" for k, v in sorted(scalars.items())),
              time.perf_counter() - start)
    self.writer.scalars(int(state.step), {f"{self.phase.name}/val_{k}": v
                                          for k, v in scalars.items()})

  def _epoch(self, state, batches, extra, epoch: int, first: int, arrays: Arrays):
    ctx, phase = self.ctx, self.phase
    # The host keeps its own step count and reads metrics back only when it logs, so the
    # devices run ahead of the host instead of syncing after every step.
    start, sums, count, step, voxels = time.perf_counter(), None, 0, int(state.step), 0
    for index in progress(range(first, self.steps_per_epoch),
                          desc=f"{phase.name} epoch {epoch + 1}"):
      host, device = next(batches)
      if phase.host_fields is not None:
        device = {**device, **ctx.data.to_device(phase.host_fields(host, arrays))}
      state, metrics = self.step_fn(state, device, extra)
      step, count = step + 1, count + 1
      voxels += int(host[mask_key(0)].sum())
      sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
      if step % ctx.config.log_every_steps == 0:
        self.writer.scalars(step, {f"{phase.name}/{k}": float(v) for k, v in metrics.items()})
      self.checkpointer.save(step, state, arrays,
                             {"phase": phase.name, "epoch": epoch, "batch": index + 1})
    means = {k: float(v) / count for k, v in jax.device_get(sums or {}).items()}
    seconds = time.perf_counter() - start
    rates = {"seconds_per_step": seconds / max(count, 1), "voxels_per_second": voxels / seconds}
    return state, {"means": means, "rates": rates, "steps": count, "seconds": seconds}
