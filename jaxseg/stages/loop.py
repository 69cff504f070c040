"""The epoch loop every training phase shares: batches -> train step -> logs -> checkpoints.

A phase (CMD, SVC warm-up, SVC) owns one checkpoint folder. Each checkpoint records where the
next batch starts ({'epoch', 'batch'}), so `--resume` continues inside an epoch: the batch
stream of an epoch is fixed by (seed, epoch), and the first `batch` batches are skipped.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.errors import InputError
from jaxseg.eval.report import ScalarWriter
from jaxseg.logging_utils import get_logger, progress
from jaxseg.stages.context import NET_FIELDS, RunContext
from jaxseg.stages.optimizers import optimizer_for
from jaxseg.train.checkpoint import Checkpointer
from jaxseg.train.parallel import replicate
from jaxseg.train.state import TrainState

_LOG = get_logger("stages.loop")

HostFields = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


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
  host_fields(batch) adds per-batch arrays computed on the host (distillation targets, pseudo
  labels), which travel to the devices with the network's fields.
  """

  def __init__(self, ctx: RunContext, phase: str, step_fn, checkpointer: Checkpointer,
               writer: ScalarWriter, host_fields: HostFields, extra_fields: tuple[str, ...],
               invariance: Mapping[str, float] | None = None):
    self.ctx, self.phase, self.step_fn = ctx, phase, step_fn
    self.checkpointer, self.writer = checkpointer, writer
    self.host_fields, self.fields = host_fields, NET_FIELDS + tuple(extra_fields)
    self.invariance = invariance
    self.steps_per_epoch = ctx.steps_per_epoch(ctx.config.data.train_split)
    if self.steps_per_epoch == 0:
      raise InputError(ctx.handle.data_dir, f"the training split has fewer scenes than one "
                       f"batch ({ctx.config.data.batch_size})",
                       "lower data.batch_size or add scenes")

  def run_epoch(self, state, extra, epoch: int, skip: int, arrays: Mapping[str, np.ndarray],
                meta: Mapping[str, Any]):
    """Trains batches skip.. of `epoch`; checkpoints every `checkpoint.every_steps` steps."""
    ctx = self.ctx
    batches = ctx.batches(ctx.config.data.train_split, train=True, epoch=epoch, skip=skip,
                          invariance=self.invariance)
    # The host keeps its own step count and reads metrics back only when it logs, so the
    # devices run ahead of the host instead of syncing after every step.
    start, sums, count, step = time.perf_counter(), None, 0, int(state.step)
    for index, batch in enumerate(progress(batches, desc=f"{self.phase} epoch {epoch + 1}",
                                           total=self.steps_per_epoch - skip), start=skip):
      host = dict(batch)
      host.update(self.host_fields(batch))
      state, metrics = self.step_fn(state, ctx.to_device(host, self.fields), extra)
      step, count = step + 1, count + 1
      sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
      if step % ctx.config.log_every_steps == 0:
        self.writer.scalars(step, {f"{self.phase}/{k}": float(v) for k, v in metrics.items()})
      self.checkpointer.save(step, state, arrays,
                             {**meta, "phase": self.phase, "epoch": epoch, "batch": index + 1})
    means = {k: float(v) / count for k, v in jax.device_get(sums or {}).items()}
    seconds = time.perf_counter() - start
    _LOG.info("%s epoch %d: %s (%d steps, %.1f s)", self.phase, epoch + 1,
              ", ".join(f"{k} {v:.4f}" for k, v in sorted(means.items()) if k != "weight"),
              count, seconds)
    self.writer.scalars(step, {f"{self.phase}/epoch_{k}": v for k, v in means.items()})
    return state

  def finish(self, state, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
    """Stage-boundary checkpoint, marked done."""
    self.checkpointer.save(int(state.step), state, arrays,
                           {**meta, "phase": self.phase, "done": True}, force=True)
    self.checkpointer.wait()
