"""PointDC stage 1, Cross-Modal Distillation (Eq. 3-7).

The teacher runs once over every training scene's frames; per-super-voxel targets (Eq. 6) are
cached beside the dataset, keyed by the teacher and the projection settings. With
cmd.target_dim > 0 (70 in the reference, STEGO's width) the targets are projected to that many
dims by a PCA fitted on them. The network and its alignment head then learn to match them
(`cmd.loss`: per voxel as the reference code, or per super-voxel as the paper's Eq. 7; see
`jaxseg.methods.pointdc.losses`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any

import jax

from jaxseg import distributed
from jaxseg.eval.report import ScalarWriter
from jaxseg.logging_utils import get_logger
from jaxseg.methods.pointdc import losses
from jaxseg.methods.pointdc.targets import ProjectedTargets, TargetStore, build_targets
from jaxseg.teachers import build_teacher
from jaxseg.train import trainer
from jaxseg.train.context import RunContext

_LOG = get_logger("methods.pointdc.distill")
PHASE = "cmd"


def projection_settings(ctx: RunContext) -> dict[str, Any]:
  """The keyword arguments of `teacher_point_features` from the `cmd` config."""
  cmd = ctx.config.cmd
  return {"image_size": tuple(int(v) for v in cmd.image_size),
          "views_per_batch": int(cmd.views_per_batch), "max_views": int(cmd.max_views),
          "use_depth": bool(cmd.use_depth), "occlusion_tolerance": float(cmd.occlusion_tolerance),
          "depth_tolerance": float(cmd.depth_tolerance),
          "zbuffer_stride": int(cmd.zbuffer_stride)}


def distillation_targets(ctx: RunContext) -> TargetStore | ProjectedTargets:
  """Builds (or reuses) the cached teacher targets of the training split, projected to
  cmd.target_dim dims when that is below the teacher's."""
  teacher_cfg = ctx.config.teacher
  teacher = build_teacher(teacher_cfg.name, teacher_cfg.checkpoint or None)
  settings = projection_settings(ctx)
  key = hashlib.sha256(json.dumps(
      {"teacher": teacher.name, "checkpoint": os.path.abspath(teacher_cfg.checkpoint)
       if teacher_cfg.checkpoint else "", "split": ctx.config.data.train_split,
       "settings": settings}, sort_keys=True).encode()).hexdigest()[:12]
  cache_dir = os.path.join(ctx.data.handle.data_dir, "cmd_targets", f"{teacher.name}-{key}")
  start = time.perf_counter()
  store = distributed.main_first(lambda: build_targets(
      ctx.data.source(ctx.config.data.train_split), teacher, settings, cache_dir),
                                 "distillation targets")
  _LOG.info("distillation targets (teacher %s, %d-d) ready in %s (%.1f s)", teacher.name,
            store.dim, cache_dir, time.perf_counter() - start)
  target_dim = int(ctx.config.cmd.target_dim)
  if 0 < target_dim < store.dim:
    projected = ProjectedTargets(store, target_dim, seed=ctx.config.seed)
    _LOG.info("targets projected %d -> %d dims by PCA (%.1f%% of the variance kept)",
              store.dim, target_dim, 100 * projected.explained)
    return projected
  return store


def _loss_fn(ctx: RunContext, head_dim: int):
  kind = ctx.config.cmd.loss

  def loss_fn(params, model_state, batch, extra, axis_name):
    del extra
    net = ctx.net(head_dim=head_dim, axis_name=axis_name)
    out, updates = net.apply({"params": params, **model_state}, batch, train=True,
                             mutable=["batch_stats"])
    if kind == "segment":
      loss_sum, count = losses.segment_distillation_loss(
          out["aligned"], batch["point_segments"], batch["point_mask"],
          batch["segment_targets"], batch["segment_has_target"], sorted_ids=True)
    else:
      loss_sum, count = losses.voxel_distillation_loss(
          out["aligned"], batch["point_segments"], batch["point_mask"],
          batch["point_to_voxel"], out["voxel_features"].shape[1], batch["segment_targets"],
          batch["segment_has_target"])
    return loss_sum, count, (updates, {})
  return loss_fn


def targets_description(store: TargetStore | ProjectedTargets) -> str:
  """The distillation targets in words, for the report."""
  if isinstance(store, ProjectedTargets):
    return (f"{store.store.dim}-d teacher features projected to {store.dim} dims by PCA "
            f"({100 * store.explained:.0f}% of the variance)")
  return f"raw {store.dim}-d teacher features"


def run(ctx: RunContext, resume: bool, writer: ScalarWriter,
        validate: trainer.Validate | None = None) -> tuple[dict[str, Any], str]:
  """Trains CMD (or resumes it); returns the final variables {'params', 'batch_stats'}
  (encoder and alignment head) and the targets in words."""
  config = ctx.config
  store = distillation_targets(ctx)
  phase = trainer.Phase(
      name=PHASE, epochs=int(config.cmd.epochs), optimizer=config.cmd.optimizer,
      optimizer_key="cmd.optimizer", loss_fn=_loss_fn(ctx, store.dim),
      fields=ctx.net_fields + ("point_segments", "segment_targets", "segment_has_target"),
      extras=store)
  _LOG.info("CMD: %d epochs x %d steps, %s loss on %d-d targets, parallel mode %s on %d "
            "devices", config.cmd.epochs, ctx.data.steps_per_epoch(config.data.train_split),
            config.cmd.loss, store.dim, config.parallel.mode, jax.device_count())
  start = time.perf_counter()
  variables, _ = trainer.run_phase(ctx, phase, ctx.init_variables(head_dim=store.dim),
                                   resume=resume, writer=writer, validate=validate)
  _LOG.info("CMD finished in %.1f s", time.perf_counter() - start)
  return variables, targets_description(store)
