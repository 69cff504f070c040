"""The epoch loop every training phase shares: one input stream -> train steps -> logs ->
checkpoints.

A phase (CMD, SVC warm-up, SVC) owns one checkpoint folder and one input stream, seeded by
(config.seed, phase), whose workers live for the whole phase. Each checkpoint records where the
next batch starts ({'epoch', 'batch'}); the stream is random access, so `--resume` starts it at
exactly that batch and the resumed run sees the batches an uninterrupted run would.
"""

from __future__ import annotations

import time
import zlib
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.errors import InputError
from jaxseg.eval.report import ScalarWriter
from jaxseg.logging_utils import get_logger, progress
from jaxseg.ops.sparse.geometry import mask_key
from jaxseg.stages.context import RunContext
from jaxseg.stages.optimizers import optimizer_for
from jaxseg.train.checkpoint import Checkpointer
from jaxseg.train.parallel import replicate
from jaxseg.train.state import TrainState

_LOG = get_logger("stages.loop")

HostFields = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
# epoch_extra(epoch, state) -> the step's `extra` pytree for that epoch (e.g. re-clusters).
EpochExtra = Callable[[int, Any], Any]


def phase_seed(seed: int, phase: str) -> int:
  """The seed of a phase's input stream: every phase draws its own order and augmentations."""
  return (int(seed) * 1_000_003 + zlib.crc32(phase.encode())) % (1 << 31)


def open_checkpointer(ctx: RunContext, phase: str) -> Checkpointer:
  """The phase's checkpoint folder `<workdir>/checkpoints/<phase>`."""
  return Checkpointer(ctx.path("checkpoints", phase, ""), keep=ctx.config.checkpoint.keep,
                      save_every=ctx.config.checkpoint.every_steps)


def check_fresh_start(checkpointer: Checkpointer, resume: bool, phase: str) -> None:
  """A run without --resume must not silently train on top of an earlier run's checkpoints."""
  if not resume and checkpointer.latest_step() is not None:
    raise InputError(checkpointer.directory, f"the work directory already has {phase} "
                     "checkpoints from an earlier run",
                     "pass --resume to continue it, or choose another --config.workdir")


def initial_state(ctx: RunContext, phase: str, checkpointer: Checkpointer,
                  variables: Mapping[str, Any], optimizer: Any, where: str):
  """A phase's replicated TrainState from `variables` and its optimizer config, or, when the
  phase has checkpoints, the newest one: (state, arrays, meta, steps_per_epoch); meta is
  None for a fresh start."""
  steps_per_epoch = ctx.steps_per_epoch(ctx.config.data.train_split)
  tx = optimizer_for(optimizer, steps_per_epoch, where)
  state = replicate(TrainState.create(params=variables["params"],
                                      model_state={"batch_stats": variables["batch_stats"]},
                                      tx=tx), ctx.mesh)
  if checkpointer.latest_step() is None:
    return state, None, None, steps_per_epoch
  state, arrays, meta = checkpointer.restore(state)
  _LOG.info("resuming %s from step %d (%s)", phase, int(state.step), meta)
  return state, arrays, meta, steps_per_epoch


def start_position(meta: Mapping[str, Any] | None, steps_per_epoch: int) -> tuple[int, int]:
  """(epoch, batch) where training continues after a checkpoint's meta (or (0, 0))."""
  if not meta:
    return 0, 0
  epoch, batch = int(meta["epoch"]), int(meta["batch"])
  if batch >= steps_per_epoch:
    return epoch + 1, 0
  return epoch, batch


class PhaseTrainer:
  """Runs the epochs of one phase.

  step_fn(state, device_batch, extra) -> (state, metrics) is a `jaxseg.train.parallel` step;
  fields are the batch fields it reads; host_fields(host_batch) adds per-batch arrays computed
  on the host when the batch is consumed (pseudo-labels, which change when the phase
  re-clusters); extras (run in the input workers) add fixed per-super-voxel arrays
  (distillation targets).
  """

  def __init__(self, ctx: RunContext, phase: str, step_fn, checkpointer: Checkpointer,
               writer: ScalarWriter, fields: tuple[str, ...],
               host_fields: HostFields | None = None,
               invariance: Mapping[str, float] | None = None, extras=None):
    self.ctx, self.phase, self.step_fn = ctx, phase, step_fn
    self.checkpointer, self.writer = checkpointer, writer
    self.fields, self.host_fields = tuple(fields), host_fields
    self.invariance, self.extras = invariance, extras
    self.steps_per_epoch = ctx.steps_per_epoch(ctx.config.data.train_split)

  def run(self, state, *, start_epoch: int, skip: int, epochs: int,
          arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any],
          epoch_extra: EpochExtra):
    """Trains epochs start_epoch.. (skipping `skip` batches of the first); checkpoints every
    `checkpoint.every_steps` steps. Returns the final state."""
    ctx, per_epoch = self.ctx, self.steps_per_epoch
    start = start_epoch * per_epoch + skip
    total = epochs * per_epoch - start
    if total <= 0:
      return state
    loader = ctx.loader(ctx.config.data.train_split, train=True,
                        seed=phase_seed(ctx.config.seed, self.phase), fields=self.fields,
                        start=start, num_batches=total, invariance=self.invariance,
                        extras=self.extras)
    with loader:
      batches = iter(loader)
      for epoch in range(start_epoch, epochs):
        extra = epoch_extra(epoch, state)
        first = skip if epoch == start_epoch else 0
        state = self._epoch(state, batches, extra, epoch, first, arrays, meta)
    return state

  def _epoch(self, state, batches, extra, epoch: int, first: int,
             arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]):
    ctx = self.ctx
    # The host keeps its own step count and reads metrics back only when it logs, so the
    # devices run ahead of the host instead of syncing after every step.
    start, sums, count, step, voxels = time.perf_counter(), None, 0, int(state.step), 0
    for index in progress(range(first, self.steps_per_epoch),
                          desc=f"{self.phase} epoch {epoch + 1}"):
      host, device = next(batches)
      if self.host_fields is not None:
        device = {**device, **ctx.to_device(self.host_fields(host))}
      state, metrics = self.step_fn(state, device, extra)
      step, count = step + 1, count + 1
      voxels += int(host[mask_key(0)].sum())
      sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
      if step % ctx.config.log_every_steps == 0:
        self.writer.scalars(step, {f"{self.phase}/{k}": float(v) for k, v in metrics.items()})
      self.checkpointer.save(step, state, arrays,
                             {**meta, "phase": self.phase, "epoch": epoch, "batch": index + 1})
    means = {k: float(v) / count for k, v in jax.device_get(sums or {}).items()}
    seconds = time.perf_counter() - start
    rates = {"seconds_per_step": seconds / max(count, 1), "voxels_per_second": voxels / seconds}
    _LOG.info("%s epoch %d: %s (%d steps, %.1f s, %.0f voxels/s)", self.phase, epoch + 1,
              ", ".join(f"{k} {v:.4f}" for k, v in sorted(means.items()) if k != "weight"),
              count, seconds, rates["voxels_per_second"])
    self.writer.scalars(step, {f"{self.phase}/epoch_{k}": v
                               for k, v in {**means, **rates}.items()})
    return state

  def finish(self, state, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Stage-boundary checkpoint, marked done."""
    self.checkpointer.save(int(state.step), state, arrays,
                           {**meta, "phase": self.phase, "done": True}, force=True)
    self.checkpointer.wait()
