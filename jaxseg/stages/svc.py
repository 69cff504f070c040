"""Stage 2, Super-Voxel Clustering (PointDC Eq. 8-12), repeated.

Each clustering round: super-voxel features of every training scene (unaugmented) -> K-means
over all of them on all devices (Eq. 8) -> pseudo-labels per super-voxel, either Eq. 9-10
(softmax of the frozen cosine classifier, pooled over the super-voxel, argmax) or Sinkhorn
transport with equal cluster masses. Training then fits the frozen cosine classifier's logits
to the labels (Eq. 11) on augmented scenes (Eq. 12); labels follow the points through the
augmentation because they are looked up by each point's super-voxel id.

Phases: 'svc_warmup' trains on the first clustering without re-clustering; 'svc' re-clusters
at the start of every `recluster_every`-th epoch. Each phase starts a fresh optimizer, as the
reference does.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import losses
from jaxseg.eval.report import ScalarWriter
from jaxseg.logging_utils import get_logger
from jaxseg.stages import loop, passes
from jaxseg.stages.context import RunContext
from jaxseg.svc.clustering import cluster_supervoxels
from jaxseg.svc.features import cosine_logits
from jaxseg.svc.pseudo_labels import sinkhorn_pseudo_labels
from jaxseg.train.parallel import make_train_step, replicate

_LOG = get_logger("stages.svc")


def num_clusters(ctx: RunContext) -> int:
  return int(ctx.config.svc.num_clusters or ctx.num_classes)


def cluster_round(ctx: RunContext, variables: Mapping[str, Any], round_index: int
                  ) -> dict[str, np.ndarray]:
  """One clustering round -> {'centroids': f32 [K, D], 'labels': int32 [M], 'offsets':
  int64 [N + 1]} (flat per-super-voxel labels of the N training records, -1 = none)."""
  svc, split = ctx.config.svc, ctx.config.data.train_split
  start = time.perf_counter()
  sv = passes.scene_pass(ctx, split, "model", variables)
  keep = sv.counts >= max(1, svc.min_segment_points)
  if svc.gt_ignore_mask:
    keep &= sv.labelled > 0
  rows = np.flatnonzero(keep)       # Clustering sees the kept super-voxels only.
  k = num_clusters(ctx)
  centroids = np.asarray(cluster_supervoxels(
      sv.feats[rows], np.ones(rows.size, np.float32), k, num_iters=svc.kmeans_iters,
      seed=ctx.config.seed + round_index, mesh=ctx.mesh,
      max_points_per_centroid=svc.kmeans_max_points_per_centroid or None))
  table = np.full(len(keep), -1, np.int32)
  if svc.assign == "sinkhorn":
    table[rows] = np.asarray(sinkhorn_pseudo_labels(
        sv.feats[rows], np.ones(rows.size, bool), sv.counts[rows], centroids=centroids,
        marginal=svc.sinkhorn.marginal, epsilon=svc.sinkhorn.epsilon,
        num_iters=svc.sinkhorn.num_iters, mesh=ctx.mesh), np.int32)
  elif svc.label_from == "supervoxel":   # The reference: the K-means assignment.
    table[rows] = np.argmax(sv.feats[rows] @ l2_normalize_np(centroids).T, axis=1)
  else:                                  # Eq. 9-10: point soft labels pooled per super-voxel.
    pooled = passes.scene_pass(ctx, split, "model", variables, centroids=centroids,
                               temperature=svc.temperature).pooled
    table[rows] = pooled[rows]
  sizes = np.bincount(table[table >= 0], minlength=k)
  _LOG.info("clustering round %d (%s): %d super-voxels into %d clusters in %.1f s; "
            "super-voxels per cluster min %d / median %d / max %d", round_index, svc.assign,
            rows.size, k, time.perf_counter() - start, sizes.min(), int(np.median(sizes)),
            sizes.max())
  return {"centroids": centroids.astype(np.float32), "labels": table, "offsets": sv.offsets}


def l2_normalize_np(x: np.ndarray) -> np.ndarray:
  """Rows of x [N, D] at unit length (zero rows stay zero)."""
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pseudo_label_fields(arrays: Mapping[str, np.ndarray], gt_ignore_mask: bool):
  """host_fields(host batch) -> {'pseudo_labels': int32 [G, P]}: each point takes its
  super-voxel's label from arrays['labels'] (read at call time, so re-clustering updates
  it); -1 for padding, points in no super-voxel and, with gt_ignore_mask, points whose
  ground truth is ignore."""
  def host_fields(host):
    labels = passes.point_lookup(arrays["labels"], arrays["offsets"], host)
    if gt_ignore_mask:
      labels = np.where(host["point_labels"] >= 0, labels, -1)
    return {"pseudo_labels": labels.astype(np.int32)}
  return host_fields


def _loss_fn(ctx: RunContext):
  svc = ctx.config.svc

  def loss_fn(params, model_state, batch, extra, axis_name):
    net = ctx.net(axis_name=axis_name)
    out, updates = net.apply({"params": params, **model_state}, batch, train=True,
                             mutable=["batch_stats"])
    logits = cosine_logits(out["voxel_features"], extra["centroids"], svc.logit_scale,
                           normalize_features=svc.normalize_features)
    loss_sum, count, correct = losses.voxel_cross_entropy_loss(
        logits, batch["pseudo_labels"], batch["point_to_voxel"], batch["point_mask"])
    return loss_sum, count, (updates, {"pseudo_label_accuracy": correct})
  return loss_fn


def _variables(state) -> dict[str, Any]:
  return {"params": state.params, "batch_stats": state.model_state["batch_stats"]}


def encoder_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
  """The encoder part of CMD variables (the alignment head is dropped)."""
  return {"params": {"encoder": variables["params"]["encoder"]},
          "batch_stats": {"encoder": variables["batch_stats"]["encoder"]}}


def _run_phase(ctx: RunContext, phase: str, epochs: int, recluster_every: int,
               variables: Mapping[str, Any], arrays: dict[str, np.ndarray] | None,
               resume: bool, writer: ScalarWriter):
  """One SVC phase; returns (variables, arrays) at its end."""
  config = ctx.config
  checkpointer = loop.open_checkpointer(ctx, phase)
  loop.check_fresh_start(checkpointer, resume, phase)
  state, restored, meta, steps_per_epoch = loop.initial_state(
      ctx, phase, checkpointer, variables, config.svc.optimizer, "svc.optimizer")
  if restored is not None:
    arrays = restored
  if meta and meta.get("done"):
    return _variables(state), dict(arrays)
  start_epoch, skip = loop.start_position(meta, steps_per_epoch)
  round_base = {"svc_warmup": 0, "svc": 1}[phase] * 1000
  reclusters_first = bool(recluster_every) and start_epoch % recluster_every == 0 and not skip
  if arrays is None and not reclusters_first:
    arrays = cluster_round(ctx, _variables(state), round_base)
  arrays = dict(arrays or {})

  def epoch_extra(epoch, state):
    resumed_inside = epoch == start_epoch and skip
    if recluster_every and epoch % recluster_every == 0 and not resumed_inside:
      arrays.update(cluster_round(ctx, _variables(state), round_base + epoch))
    return {"centroids": replicate(jnp.asarray(arrays["centroids"]), ctx.mesh)}

  step_fn = make_train_step(_loss_fn(ctx), ctx.mesh, config.parallel.mode)
  fields = ctx.net_fields + ("pseudo_labels",)
  trainer = loop.PhaseTrainer(ctx, phase, step_fn, checkpointer, writer, fields,
                              pseudo_label_fields(arrays, config.svc.gt_ignore_mask),
                              invariance=config.svc.invariance.to_dict())
  state = trainer.run(state, start_epoch=start_epoch, skip=skip, epochs=epochs, arrays=arrays,
                      meta={"stage": "svc"}, epoch_extra=epoch_extra)
  trainer.finish(state, arrays, {"stage": "svc", "epoch": epochs, "batch": 0})
  return _variables(state), arrays


def run(ctx: RunContext, variables: Mapping[str, Any], resume: bool
        ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """Warm-up then iterative SVC from CMD (or any) encoder variables.

  Returns the final variables and the last clustering {'centroids', 'labels'}.
  """
  svc = ctx.config.svc
  writer = ScalarWriter(ctx.path("tensorboard", ""))
  start = time.perf_counter()
  _LOG.info("SVC: %d warm-up + %d epochs, re-clustering every %d, K=%d, assign=%s, parallel "
            "mode %s on %d devices", svc.warmup_epochs, svc.epochs, svc.recluster_every,
            num_clusters(ctx), svc.assign, ctx.config.parallel.mode, jax.device_count())
  variables, arrays = encoder_variables(variables), None
  if svc.warmup_epochs:
    variables, arrays = _run_phase(ctx, "svc_warmup", svc.warmup_epochs, 0, variables, arrays,
                                   resume, writer)
  if svc.epochs:
    variables, arrays = _run_phase(ctx, "svc", svc.epochs, svc.recluster_every, variables,
                                   arrays, resume, writer)
  writer.close()
  _LOG.info("SVC finished in %.1f s", time.perf_counter() - start)
  return variables, arrays
