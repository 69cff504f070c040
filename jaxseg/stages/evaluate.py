"""Evaluation of unsupervised point features (PointDC's protocol).

For each clustering seed: spherical K-means over the super-voxel features of the training split
(K = eval.num_clusters, merged to C classes when K > C), then every labelled point of the
evaluation split is assigned to its nearest class centroid, either from its own feature
('point') or from its super-voxel's mean feature ('supervoxel_pooled', test-time pooling).
Clusters are matched to classes by the Hungarian algorithm; mIoU / oAcc / mAcc are reported
per seed, with mean and standard deviation over the seeds. The linear probe trains a linear
classifier on frozen point features of the training split with the ground-truth labels.
Evaluation never crops or augments a scene.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.eval import metrics
from jaxseg.eval.probe import LinearProbe, probe_predict, train_linear_probe
from jaxseg.logging_utils import get_logger, progress
from jaxseg.models.pointdc import PointDCNet
from jaxseg.stages import passes
from jaxseg.stages.context import RunContext, class_names
from jaxseg.svc.clustering import cluster_supervoxels, merge_primitives
from jaxseg.svc.features import l2_normalize, supervoxel_features

_LOG = get_logger("stages.evaluate")
VARIANTS = ("point", "supervoxel_pooled")
_LABEL_FIELDS = ("point_segments", "point_labels", "point_mask", "segment_scene")


def class_centroids(ctx: RunContext, train_sv: passes.SupervoxelTable, seed: int
                    ) -> np.ndarray:
  """f32 [C, D] unit class centroids from the training super-voxels for one seed."""
  config = ctx.config
  rows = np.flatnonzero(train_sv.counts > 0)
  k = int(config.eval.num_clusters or config.svc.num_clusters or ctx.num_classes)
  centroids = cluster_supervoxels(train_sv.feats[rows], np.ones(rows.size, np.float32), k,
                                  num_iters=config.eval.kmeans_iters, seed=seed, mesh=ctx.mesh)
  _, merged = merge_primitives(np.asarray(centroids), ctx.num_classes, seed=seed,
                               num_iters=config.eval.kmeans_iters)
  return np.asarray(merged, np.float32)


@functools.partial(jax.jit, static_argnames=("kind", "net", "num_classes"))
def _confusion(variables, centroids, batch, *, kind: str, net: PointDCNet | None,
               num_classes: int):
  """int32 [seeds, 2 variants, C, C] of one batch (centroids f32 [seeds, C, D])."""
  point_feats = l2_normalize(passes.point_features(kind, net, variables, batch))
  sv = supervoxel_features(point_feats, batch["point_segments"], batch["point_mask"],
                           batch["segment_scene"].shape[1], sorted_ids=True)
  point_pred = jnp.argmax(jnp.einsum("gpd,skd->sgpk", point_feats, centroids), -1)
  sv_pred = jnp.argmax(jnp.einsum("gnd,skd->sgnk", sv.feats, centroids), -1)
  segments = batch["point_segments"]
  safe = jnp.where(segments >= 0, segments, sv_pred.shape[-1])   # take() wraps negatives
  pooled = jax.vmap(lambda pred: jax.vmap(
      lambda p, s: jnp.take(p, s, mode="fill", fill_value=-1))(pred, safe))(sv_pred)
  pooled = jnp.where(segments >= 0, pooled, point_pred)
  zeros = jnp.zeros((num_classes, num_classes), jnp.int32)
  update = jax.vmap(lambda pred: metrics.confusion_update(zeros, batch["point_labels"], pred,
                                                          batch["point_mask"]))
  return jnp.stack([update(point_pred), update(pooled)], 1)


def confusion_pass(ctx: RunContext, split: str, kind: str, variables,
                   centroids: np.ndarray) -> np.ndarray:
  """int64 [seeds, 2 variants, C, C] confusion (ground truth x predicted class) on `split`."""
  net = ctx.net() if kind == "model" else None
  fields = passes.feature_fields(ctx, kind) + _LABEL_FIELDS
  total = np.zeros((centroids.shape[0], len(VARIANTS), ctx.num_classes, ctx.num_classes),
                   np.int64)
  centroids = jnp.asarray(centroids)
  with ctx.loader(split, train=False, seed=0, fields=fields) as loader:
    for _, device in progress(loader, desc=f"evaluating ({split})",
                              total=ctx.eval_batches(split)):
      total += np.asarray(_confusion(variables, centroids, device, kind=kind, net=net,
                                     num_classes=ctx.num_classes))
  return total


@functools.partial(jax.jit, static_argnames=("kind", "net"))
def _gather_features(variables, batch, rows, *, kind: str, net: PointDCNet | None):
  """Point features of the chosen rows int32 [G, R] of each pack: f32 [G, R, D]."""
  feats = passes.point_features(kind, net, variables, batch)
  return jax.vmap(lambda f, r: jnp.take(f, r, axis=0))(feats, rows)


def probe_features(ctx: RunContext, split: str, kind: str, variables, per_scene: int
                   ) -> tuple[np.ndarray, np.ndarray]:
  """A seeded random subset of up to `per_scene` labelled points per scene: (f32 [N, D],
  int [N])."""
  net = ctx.net() if kind == "model" else None
  rng = np.random.default_rng(ctx.config.seed)
  feats, labels = [], []
  fields = passes.feature_fields(ctx, kind)
  with ctx.loader(split, train=False, seed=0, fields=fields) as loader:
    for host, device in loader:
      chosen = [[] for _ in host["point_mask"]]
      for g, z, _, _, _ in passes.scene_rows(host):
        rows = np.flatnonzero(host["point_mask"][g] & (host["point_scene"][g] == z) &
                              (host["point_labels"][g] >= 0))
        chosen[g].append(rng.choice(rows, min(per_scene, rows.size), replace=False))
      chosen = [np.concatenate(c) if c else np.zeros(0, np.int64) for c in chosen]
      width = max(1, max(len(c) for c in chosen))
      padded = np.stack([np.pad(c, (0, width - len(c))) for c in chosen]).astype(np.int32)
      gathered = np.asarray(_gather_features(variables, device, ctx.to_device(
          {"rows": padded})["rows"], kind=kind, net=net))
      for g, c in enumerate(chosen):
        feats.append(gathered[g, :len(c)])
        labels.append(host["point_labels"][g, c])
  return np.concatenate(feats), np.concatenate(labels)


@functools.partial(jax.jit, static_argnames=("kind", "net", "num_classes"))
def _probe_confusion(variables, probe: LinearProbe, batch, *, kind: str,
                     net: PointDCNet | None, num_classes: int):
  pred = probe_predict(probe, passes.point_features(kind, net, variables, batch))
  return metrics.confusion_update(jnp.zeros((num_classes, num_classes), jnp.int32),
                                  batch["point_labels"], pred, batch["point_mask"])


def probe_confusion(ctx: RunContext, split: str, kind: str, variables, probe: LinearProbe
                    ) -> np.ndarray:
  """int64 [C, C] confusion of the linear probe's predictions on `split`."""
  net = ctx.net() if kind == "model" else None
  fields = passes.feature_fields(ctx, kind) + ("point_labels",)
  total = np.zeros((ctx.num_classes, ctx.num_classes), np.int64)
  with ctx.loader(split, train=False, seed=0, fields=fields) as loader:
    for _, device in loader:
      total += np.asarray(_probe_confusion(variables, probe, device, kind=kind, net=net,
                                           num_classes=ctx.num_classes))
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
  train_sv = passes.supervoxel_pass(ctx, train_split, kind, variables)
  centroids = np.stack([class_centroids(ctx, train_sv, seed) for seed in config.eval.seeds])
  conf = confusion_pass(ctx, eval_split, kind, variables, centroids)
  result: dict[str, Any] = {"variants": {}}
  for v, variant in enumerate(VARIANTS):
    per_seed = [metrics.clustering_scores(conf[s, v], names) for s in range(len(centroids))]
    result["variants"][variant] = metrics.seed_summary(per_seed)
  if linear_probe:
    feats, labels = probe_features(ctx, train_split, kind, variables,
                                   config.eval.probe.points_per_scene)
    probe = train_linear_probe(feats, labels, ctx.num_classes,
                               steps=config.eval.probe.steps, lr=config.eval.probe.lr,
                               weight_decay=config.eval.probe.weight_decay,
                               batch_size=config.eval.probe.batch_size, seed=config.seed)
    result["linear_probe"] = metrics.segmentation_scores(
        probe_confusion(ctx, eval_split, kind, variables, probe))
  result["seconds"] = time.perf_counter() - start
  result["splits"] = {"clusters_fitted_on": train_split, "evaluated_on": eval_split}
  return result
