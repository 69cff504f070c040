"""Stage 1, Cross-Modal Distillation (PointDC Eq. 3-7).

The teacher runs once over every training scene's frames; per-super-voxel targets (Eq. 6) are
cached beside the dataset, keyed by the teacher and the projection settings. The network and
its alignment head then learn to match them (Eq. 7).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

import jax

from jaxseg import losses
from jaxseg.cmd.targets import TargetStore, build_targets
from jaxseg.eval.report import ScalarWriter
from jaxseg.logging_utils import get_logger
from jaxseg.stages import loop
from jaxseg.stages.context import RunContext
from jaxseg.teachers import build_teacher
from jaxseg.train.parallel import make_train_step

_LOG = get_logger("stages.cmd")
PHASE = "cmd"


def projection_settings(ctx: RunContext) -> dict[str, Any]:
  """The keyword arguments of `teacher_point_features` from the `cmd` config."""
  cmd = ctx.config.cmd
  return {"image_size": tuple(int(v) for v in cmd.image_size),
          "views_per_batch": int(cmd.views_per_batch), "max_views": int(cmd.max_views),
          "use_depth": bool(cmd.use_depth), "occlusion_tolerance": float(cmd.occlusion_tolerance),
          "depth_tolerance": float(cmd.depth_tolerance),
          "zbuffer_stride": int(cmd.zbuffer_stride)}


def distillation_targets(ctx: RunContext) -> TargetStore:
  """Builds (or reuses) the cached teacher targets of the training split."""
  teacher_cfg = ctx.config.teacher
  teacher = build_teacher(teacher_cfg.name, teacher_cfg.checkpoint or None)
  settings = projection_settings(ctx)
  key = hashlib.sha256(json.dumps(
      {"teacher": teacher.name, "checkpoint": os.path.abspath(teacher_cfg.checkpoint)
       if teacher_cfg.checkpoint else "", "split": ctx.config.data.train_split,
       "settings": settings}, sort_keys=True).encode()).hexdigest()[:12]
  cache_dir = os.path.join(ctx.handle.data_dir, "cmd_targets", f"{teacher.name}-{key}")
  start = time.perf_counter()
  store = build_targets(ctx.source(ctx.config.data.train_split), teacher, settings, cache_dir)
  _LOG.info("distillation targets (teacher %s, %d-d) ready in %s (%.1f s)", teacher.name,
            store.dim, cache_dir, time.perf_counter() - start)
  return store


def _loss_fn(ctx: RunContext, head_dim: int):
  def loss_fn(params, model_state, batch, extra, axis_name):
    del extra
    net = ctx.net(head_dim=head_dim, axis_name=axis_name)
    out, updates = net.apply({"params": params, **model_state}, batch, train=True,
                             mutable=["batch_stats"])
    loss_sum, count = losses.distillation_loss(out["aligned"], batch["point_segments"],
                                               batch["point_mask"], batch["segment_targets"],
                                               batch["segment_has_target"], sorted_ids=True)
    return loss_sum, count, (updates, {})
  return loss_fn


def run(ctx: RunContext, resume: bool) -> dict[str, Any]:
  """Trains CMD (or resumes it); returns the final variables {'params', 'batch_stats'}."""
  config = ctx.config
  checkpointer = loop.open_checkpointer(ctx, PHASE)
  loop.check_fresh_start(checkpointer, resume, PHASE)
  store = distillation_targets(ctx)
  state, _, meta, steps_per_epoch = loop.initial_state(
      ctx, PHASE, checkpointer, ctx.init_variables(head_dim=store.dim), config.cmd.optimizer,
      "cmd.optimizer")
  if meta and meta.get("done"):
    return {"params": state.params, "batch_stats": state.model_state["batch_stats"]}
  start_epoch, skip = loop.start_position(meta, steps_per_epoch)
  step_fn = make_train_step(_loss_fn(ctx, store.dim), ctx.mesh, config.parallel.mode)
  writer = ScalarWriter(ctx.path("tensorboard", ""))
  fields = ctx.net_fields + ("point_segments", "segment_targets", "segment_has_target")
  trainer = loop.PhaseTrainer(ctx, PHASE, step_fn, checkpointer, writer, fields, extras=store)
  _LOG.info("CMD: %d epochs x %d steps, teacher %d-d, parallel mode %s on %d devices",
            config.cmd.epochs, steps_per_epoch, store.dim, config.parallel.mode,
            jax.device_count())
  start = time.perf_counter()
  state = trainer.run(state, start_epoch=start_epoch, skip=skip, epochs=config.cmd.epochs,
                      arrays={}, meta={"stage": PHASE}, epoch_extra=lambda epoch, state: {})
  trainer.finish(state, {}, {"stage": PHASE, "epoch": config.cmd.epochs, "batch": 0})
  writer.close()
  _LOG.info("CMD finished in %.1f s", time.perf_counter() - start)
  return {"params": state.params, "batch_stats": state.model_state["batch_stats"]}
