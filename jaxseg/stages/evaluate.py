"""Evaluation of unsupervised point features (PointDC's protocol).

For each clustering seed: spherical K-means over the super-voxel features of the training split
(K = eval.num_clusters, merged to C classes when K > C), then every labelled point of the
evaluation split is assigned to its nearest class centroid, either from its own feature
('point') or from its super-voxel's mean feature ('supervoxel_pooled', test-time pooling).
Clusters are matched to classes by the Hungarian algorithm; mIoU / oAcc / mAcc are reported
per seed, with mean and standard deviation over the seeds. The linear probe trains a linear
classifier on frozen point features of the training split with the ground-truth labels.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.eval import metrics
from jaxseg.eval.probe import probe_predict, train_linear_probe
from jaxseg.logging_utils import get_logger
from jaxseg.ops import pooling
from jaxseg.stages import passes
from jaxseg.stages.context import RunContext, class_names
from jaxseg.svc.clustering import cluster_supervoxels, merge_primitives
from jaxseg.svc.features import l2_normalize, supervoxel_features

_LOG = get_logger("stages.evaluate")
CAP_KEY = "svc.segment_cap"
VARIANTS = ("point", "supervoxel_pooled")


def class_centroids(ctx: RunContext, train_sv: Mapping[str, np.ndarray], seed: int
                    ) -> np.ndarray:
  """f32 [C, D] unit class centroids from the training super-voxels for one seed."""
  config = ctx.config
  flat = train_sv["feats"].reshape(-1, train_sv["feats"].shape[-1])
  weights = (train_sv["counts"].reshape(-1) > 0).astype(np.float32)
  k = int(config.eval.num_clusters or config.svc.num_clusters or ctx.num_classes)
  centroids = cluster_supervoxels(flat, weights, k, num_iters=config.eval.kmeans_iters,
                                  seed=seed, mesh=ctx.mesh)
  _, merged = merge_primitives(np.asarray(centroids), ctx.num_classes, seed=seed,
                               num_iters=config.eval.kmeans_iters)
  return np.asarray(merged, np.float32)


def confusion_pass(ctx: RunContext, split: str, features, fields, variables,
                   centroids: np.ndarray) -> np.ndarray:
  """int64 [seeds, 2 variants, C, C] confusion (ground truth x predicted class) on `split`."""
  segment_cap = ctx.config.svc.segment_cap
  num_classes = ctx.num_classes
  fields = tuple(fields) + ("point_segments", "point_labels", "point_mask")

  @jax.jit
  def confusion(variables, centroids, batch):
    point_feats = l2_normalize(features(variables, batch))
    sv_feats, _, overflow = supervoxel_features(point_feats, batch["point_segments"],
                                                batch["point_mask"], segment_cap)
    point_pred = jnp.argmax(jnp.einsum("bpd,skd->sbpk", point_feats, centroids), -1)
    sv_pred = jnp.argmax(jnp.einsum("bnd,skd->sbnk", sv_feats, centroids), -1)
    segments = batch["point_segments"]
    pooled = jax.vmap(lambda pred: pooling.unpool(pred[..., None], segments)[..., 0])(
        sv_pred.astype(jnp.float32)).astype(jnp.int32)
    pooled = jnp.where(segments >= 0, pooled, point_pred)
    out = []
    for pred in (point_pred, pooled):
      out.append(jax.vmap(lambda p: metrics.confusion_update(
          jnp.zeros((num_classes, num_classes), jnp.int32), batch["point_labels"], p,
          batch["point_mask"]))(pred))
    return jnp.stack(out, 1), overflow

  total = np.zeros((centroids.shape[0], len(VARIANTS), num_classes, num_classes), np.int64)
  centroids = jnp.asarray(centroids)
  for batch in ctx.pass_batches(split, f"evaluating ({split})"):
    conf, overflow = jax.device_get(confusion(variables, centroids,
                                              ctx.to_device(batch, set(fields))))
    passes.check_overflow(overflow, batch["scene_index"], segment_cap, CAP_KEY)
    total += conf
  return total


def probe_features(ctx: RunContext, split: str, features, fields, variables, per_scene: int
                   ) -> tuple[np.ndarray, np.ndarray]:
  """A seeded random subset of up to `per_scene` labelled points per scene: (f32 [N, D], int [N])."""
  fields = tuple(fields) + ("point_labels", "point_mask")
  jitted = jax.jit(features)
  rng = np.random.default_rng(ctx.config.seed)
  feats, labels = [], []
  for batch in ctx.batches(split, train=False):
    point_feats = np.asarray(jitted(variables, ctx.to_device(batch, set(fields))))
    for b in np.flatnonzero(batch["scene_index"] >= 0):
      rows = np.flatnonzero(batch["point_mask"][b] & (batch["point_labels"][b] >= 0))
      rows = rng.choice(rows, min(per_scene, rows.size), replace=False)
      feats.append(point_feats[b, rows])
      labels.append(batch["point_labels"][b, rows])
  return np.concatenate(feats), np.concatenate(labels)


def probe_confusion(ctx: RunContext, split: str, features, fields, variables, probe
                    ) -> np.ndarray:
  """int64 [C, C] confusion of the linear probe's predictions on `split`."""
  fields = tuple(fields) + ("point_labels", "point_mask")
  num_classes = ctx.num_classes

  @jax.jit
  def confusion(variables, batch):
    pred = probe_predict(probe, features(variables, batch))
    return metrics.confusion_update(jnp.zeros((num_classes, num_classes), jnp.int32),
                                    batch["point_labels"], pred, batch["point_mask"])

  total = np.zeros((num_classes, num_classes), np.int64)
  for batch in ctx.batches(split, train=False):
    total += np.asarray(confusion(variables, ctx.to_device(batch, set(fields))))
  return total


def evaluate(ctx: RunContext, variables: Mapping[str, Any] | None, kind: str,
             linear_probe: bool) -> dict[str, Any]:
  """Scores of one feature source: {'variants': {variant: seed summary}, 'linear_probe': scores,
  'seconds': ...}. variables: network variables (unused for raw descriptors)."""
  config = ctx.config
  start = time.perf_counter()
  names = class_names(ctx.num_classes)
  train_split = config.data.train_split
  eval_split = config.eval.split or config.data.val_split
  features, fields = passes.feature_fn(ctx, kind)
  train_sv = passes.supervoxel_pass(ctx, train_split, kind, variables, config.svc.segment_cap,
                                    CAP_KEY)
  centroids = np.stack([class_centroids(ctx, train_sv, seed) for seed in config.eval.seeds])
  conf = confusion_pass(ctx, eval_split, features, fields, variables, centroids)
  result: dict[str, Any] = {"variants": {}}
  for v, variant in enumerate(VARIANTS):
    per_seed = [metrics.clustering_scores(conf[s, v], names) for s in range(len(centroids))]
    result["variants"][variant] = metrics.seed_summary(per_seed)
  if linear_probe:
    feats, labels = probe_features(ctx, train_split, features, fields, variables,
                                   config.eval.probe.points_per_scene)
    probe = train_linear_probe(feats, labels, ctx.num_classes,
                               steps=config.eval.probe.steps, lr=config.eval.probe.lr,
                               weight_decay=config.eval.probe.weight_decay,
                               batch_size=config.eval.probe.batch_size, seed=config.seed)
    result["linear_probe"] = metrics.segmentation_scores(
        probe_confusion(ctx, eval_split, features, fields, variables, probe))
  result["seconds"] = time.perf_counter() - start
  result["splits"] = {"clusters_fitted_on": train_split, "evaluated_on": eval_split}
  return result
