"""PointDC stage 2, Super-Voxel Clustering (Eq. 8-12), repeated.

Each clustering round: super-voxel features of every training scene (augmented as the
training pass is, as the reference does; `svc.augment_cluster_pass`) -> K-means over all of
them on all devices (Eq. 8) -> pseudo-labels per super-voxel: the nearest centroid (reference
code), Eq. 9-10 (softmax of the frozen cosine classifier pooled over the super-voxel) or
Sinkhorn transport with equal cluster masses. Training fits a classifier's logits to the labels
(Eq. 11) on augmented scenes (Eq. 12); labels follow the points through the augmentation
because they are looked up by each point's super-voxel id.

Phases, each with a fresh optimizer as in the reference:
- 'svc_warmup' trains on the first clustering, without re-clustering, at a constant learning
  rate (the reference builds a StepLR there but never steps it). Its classifier is a learnable
  cosine head (the reference's SegHead: logits = cos(f, w), random init) or, with
  svc.warmup_head='centroids', the frozen classifier of the first clustering.
- 'svc' re-clusters at the start of every `recluster_every`-th epoch and trains the frozen
  classifier whose weights are the normalised centroids (logits = ||f|| cos), with the step
  decay of svc.optimizer.
Both phases run one loss function on the same parameter tree: the classifier's choice and
settings come in the step's `extra` as arrays (`_classifier`), the iterative phase carries the
warm-up's head unused (its gradient is zero), and the optimizers keep their schedules in their
state (`jaxseg.train.optim`). So the two phases compile to the same program, and the second
loads it from the persistent compilation cache instead of compiling it again.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxseg import losses
from jaxseg.eval import passes
from jaxseg.eval.report import ScalarWriter
from jaxseg.logging_utils import get_logger
from jaxseg.models.voxel_net import encoder_variables
from jaxseg.methods.pointdc.pseudo_labels import sinkhorn_pseudo_labels
from jaxseg.ops.clustering import cluster_supervoxels
from jaxseg.ops.features import cosine_logits, l2_normalize
from jaxseg.train import trainer
from jaxseg.train.context import RunContext
from jaxseg.train.parallel import replicate

_LOG = get_logger("methods.pointdc.cluster")
ASSIGNERS = ("kmeans", "sinkhorn")
LABEL_SOURCES = ("supervoxel", "pooled_points")
WARMUP_HEADS = ("learned", "centroids")
# Clustering rounds of the iterative phase are numbered from here (seeds differ per phase).
_ITERATIVE_ROUNDS = 1000


def num_clusters(ctx: RunContext) -> int:
  return int(ctx.config.svc.num_clusters or ctx.num_classes)


def cluster_round(ctx: RunContext, variables: Mapping[str, Any], round_index: int,
                  when: str) -> dict[str, np.ndarray]:
  """One clustering round -> {'centroids': f32 [K, D], 'labels': int32 [M], 'offsets':
  int64 [N + 1]} (flat per-super-voxel labels of the N training records, -1 = none).

  round_index seeds the round's K-means and augmentation; `when` names it in the log (e.g.
  'svc epoch 3')."""
  svc, split = ctx.config.svc, ctx.config.data.train_split
  start = time.perf_counter()
  augment_seed = (trainer.phase_seed(ctx.config.seed, f"cluster_pass_{round_index}")
                  if svc.augment_cluster_pass else None)
  sv = passes.scene_pass(ctx, split, "model", variables, augment_seed=augment_seed)
  rows = passes.clustered_rows(sv, svc.min_segment_points, svc.gt_ignore_mask)
  k = num_clusters(ctx)
  centroids = np.asarray(cluster_supervoxels(
      sv.feats[rows], np.ones(rows.size, np.float32), k, num_iters=svc.kmeans_iters,
      seed=ctx.config.seed + round_index, mesh=ctx.mesh,
      max_points_per_centroid=svc.kmeans_max_points_per_centroid or None))
  table = np.full(len(sv.counts), -1, np.int32)
  if svc.assign == "sinkhorn":
    table[rows] = np.asarray(sinkhorn_pseudo_labels(
        sv.feats[rows], np.ones(rows.size, bool), sv.counts[rows], centroids=centroids,
        marginal=svc.sinkhorn.marginal, epsilon=svc.sinkhorn.epsilon,
        num_iters=svc.sinkhorn.num_iters, mesh=ctx.mesh), np.int32)
  elif svc.label_from == "supervoxel":   # The reference: the K-means assignment.
    table[rows] = np.asarray(jnp.argmax(jnp.asarray(sv.feats[rows]) @ l2_normalize(
        jnp.asarray(centroids)).T, axis=1))
  else:                                  # Eq. 9-10: point soft labels pooled per super-voxel.
    pooled = passes.scene_pass(ctx, split, "model", variables, centroids=centroids,
                               temperature=svc.temperature, augment_seed=augment_seed).pooled
    table[rows] = pooled[rows]
  sizes = np.bincount(table[table >= 0], minlength=k)
  _LOG.info("clustering for %s (%s%s): %d super-voxels into %d clusters in %.1f s; "
            "super-voxels per cluster min %d / median %d / max %d", when, svc.assign,
            ", augmented pass" if augment_seed is not None else "", rows.size, k,
            time.perf_counter() - start, sizes.min(), int(np.median(sizes)), sizes.max())
  return {"centroids": centroids.astype(np.float32), "labels": table, "offsets": sv.offsets}


def _classifier(svc: ml_collections.ConfigDict, learned_head: bool,
                centroids: np.ndarray) -> dict[str, jax.Array]:
  """The step's `extra`: which classifier the loss applies and how. learned_head: the
  learnable params['seg_head'] with logits cos(f, w); otherwise the frozen centroids
  (f32 [K, D]) with logits svc.logit_scale * ||f|| cos (or cos, with svc.normalize_features)."""
  return {"centroids": jnp.asarray(centroids, jnp.float32),
          "learned_head": jnp.asarray(learned_head),
          "logit_scale": jnp.asarray(1.0 if learned_head else svc.logit_scale, jnp.float32),
          "normalize_features": jnp.asarray(learned_head or bool(svc.normalize_features))}


def _loss_fn(ctx: RunContext):
  """Cross-entropy (Eq. 11) of the cosine classifier that `extra` describes (`_classifier`)
  against the pseudo-labels."""

  def loss_fn(params, model_state, batch, extra, axis_name):
    net = ctx.net(axis_name=axis_name)
    encoder = {k: v for k, v in params.items() if k != "seg_head"}
    out, updates = net.apply({"params": encoder, **model_state}, batch, train=True,
                             mutable=["batch_stats"])
    head = jnp.where(extra["learned_head"], params["seg_head"], extra["centroids"])
    logits = cosine_logits(out["voxel_features"], head, extra["logit_scale"],
                           normalize_features=extra["normalize_features"])
    loss_sum, count, correct = losses.voxel_cross_entropy_loss(
        logits, batch["pseudo_labels"], batch["point_to_voxel"], batch["point_mask"])
    return loss_sum, count, (updates, {"pseudo_label_accuracy": correct})
  return loss_fn


def _with_seg_head(ctx: RunContext, variables: Mapping[str, Any]) -> dict[str, Any]:
  """Encoder variables plus a [K, D] cosine head, N(0, 1) as torch.randn (learnable in the
  warm-up with svc.warmup_head='learned', unused otherwise)."""
  key = jax.random.key(trainer.phase_seed(ctx.config.seed, "seg_head"))
  head = jax.random.normal(key, (num_clusters(ctx), int(ctx.config.model.out_dim)),
                           jnp.float32)
  return {"params": {**variables["params"], "seg_head": head},
          "batch_stats": variables["batch_stats"]}


def phase_optimizer(svc: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """The optimizer section of phase `name`: svc.optimizer, at a constant rate in the warm-up
  unless svc.warmup_lr_decay (the reference never steps the warm-up's StepLR)."""
  optimizer = svc.optimizer.copy_and_resolve_references()
  if name == "svc_warmup" and not svc.warmup_lr_decay:
    optimizer.schedule = "constant"
  return optimizer


def _phase(ctx: RunContext, name: str, epochs: int, recluster_every: int,
           start_arrays: Mapping[str, np.ndarray] | None) -> trainer.Phase:
  """The warm-up (recluster_every 0) or iterative phase."""
  svc = ctx.config.svc
  learned_head = name == "svc_warmup" and svc.warmup_head == "learned"
  round_base = _ITERATIVE_ROUNDS if recluster_every else 0

  def begin_epoch(epoch, state, arrays, resumed_inside):
    due = recluster_every and epoch % recluster_every == 0 and not resumed_inside
    if due or "labels" not in arrays:
      arrays.update(cluster_round(ctx, trainer.network_variables(state), round_base + epoch,
                                  f"{name} epoch {epoch + 1}"))
    return replicate(_classifier(svc, learned_head, arrays["centroids"]), ctx.mesh)

  return trainer.Phase(
      name=name, epochs=epochs, optimizer=phase_optimizer(svc, name),
      optimizer_key="svc.optimizer",
      loss_fn=_loss_fn(ctx), fields=ctx.net_fields + ("pseudo_labels",),
      begin_epoch=begin_epoch, host_fields=trainer.supervoxel_labels(svc.gt_ignore_mask),
      invariance=svc.invariance.to_dict(), start_arrays=start_arrays)


def run(ctx: RunContext, variables: Mapping[str, Any], resume: bool, writer: ScalarWriter,
        validate: trainer.Validate | None = None) -> dict[str, Any]:
  """Warm-up then iterative SVC from any network's encoder variables; returns the final
  encoder variables."""
  svc = ctx.config.svc
  start = time.perf_counter()
  _LOG.info("SVC: %d warm-up (%s head) + %d epochs, re-clustering every %d, K=%d, assign=%s, "
            "parallel mode %s on %d devices", svc.warmup_epochs, svc.warmup_head, svc.epochs,
            svc.recluster_every, num_clusters(ctx), svc.assign, ctx.config.parallel.mode,
            jax.device_count())
  variables, arrays = encoder_variables(variables), None
  if svc.warmup_epochs:
    warmup = _phase(ctx, "svc_warmup", svc.warmup_epochs, 0, None)
    variables, arrays = trainer.run_phase(ctx, warmup, _with_seg_head(ctx, variables),
                                          resume=resume, writer=writer, validate=validate)
    variables = encoder_variables(variables)
  if svc.epochs:
    # The iterative phase re-clusters at its first epoch; it keeps the warm-up's clustering
    # only when it never re-clusters.
    keep = None if svc.recluster_every else arrays
    iterative = _phase(ctx, "svc", svc.epochs, svc.recluster_every, keep)
    variables, _ = trainer.run_phase(ctx, iterative, _with_seg_head(ctx, variables),
                                     resume=resume, writer=writer, validate=validate)
  _LOG.info("SVC finished in %.1f s", time.perf_counter() - start)
  return encoder_variables(variables)
