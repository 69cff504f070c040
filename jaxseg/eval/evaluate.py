"""Evaluation of unsupervised point features (PointDC's protocol).

For each clustering seed: spherical K-means over the super-voxel features of the training split
(the super-voxels training clusters: svc.min_segment_points and svc.gt_ignore_mask apply; K =
eval.num_clusters, merged to C classes when K > C), then every labelled point of the
evaluation split is assigned to its nearest class centroid, either from its own feature
('point') or from its super-voxel's mean feature ('supervoxel_pooled', test-time pooling).
Clusters are matched to classes by the Hungarian algorithm; mIoU / oAcc / mAcc are reported
per seed, with mean and standard deviation over the seeds. The linear probe trains a linear
classifier on frozen unit point features of the training split with the ground-truth labels.
Evaluation never crops or augments a scene.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import distributed
from jaxseg.eval import classifier, metrics, renders
from jaxseg.eval.probe import LinearProbe, probe_predict, train_linear_probe
from jaxseg.logging_utils import get_logger, progress
from jaxseg.models.voxel_net import VoxelNet, encoder_variables
from jaxseg.eval import passes
from jaxseg.io.labels import class_names
from jaxseg.ops.clustering import cluster_supervoxels, merge_primitives
from jaxseg.ops.features import l2_normalize, supervoxel_features
from jaxseg.train.context import RunContext

_LOG = get_logger("eval.evaluate")
VARIANTS = ("point", "supervoxel_pooled")
_LABEL_FIELDS = ("point_segments", "point_labels", "point_mask", "segment_scene")


def class_centroids(ctx: RunContext, train_sv: passes.SceneTable, seed: int) -> np.ndarray:
  """f32 [C, D] unit class centroids from the training super-voxels for one seed."""
  config = ctx.config
  rows = passes.clustered_rows(train_sv, config.svc.min_segment_points,
                               config.svc.gt_ignore_mask)
  k = int(config.eval.num_clusters or config.svc.num_clusters or ctx.num_classes)
  centroids = cluster_supervoxels(train_sv.feats[rows], np.ones(rows.size, np.float32), k,
                                  num_iters=config.eval.kmeans_iters, seed=seed, mesh=ctx.mesh,
                                  max_points_per_centroid=(
                                      config.svc.kmeans_max_points_per_centroid or None))
  _, merged = merge_primitives(np.asarray(centroids), ctx.num_classes, seed=seed,
                               num_iters=config.eval.kmeans_iters)
  return np.asarray(merged, np.float32)


@functools.partial(jax.jit, static_argnames=("kind", "net", "num_classes"))
def _confusion(variables, centroids, probe: LinearProbe, batch, *, kind: str,
               net: VoxelNet | None, num_classes: int):
  """Of one batch: int32 [seeds, 2 variants, C, C] for the clusters (centroids f32
  [seeds, C, D]), int32 [C, C] for the linear probe, and int32 [G, P] the first seed's
  point-wise cluster of every point (for renders)."""
  raw = passes.point_features(kind, net, variables, batch)
  point_feats = l2_normalize(raw)
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
  update = lambda pred: metrics.confusion_update(zeros, batch["point_labels"], pred,
                                                 batch["point_mask"])
  clusters = jnp.stack([jax.vmap(update)(point_pred), jax.vmap(update)(pooled)], 1)
  return clusters, update(probe_predict(probe, point_feats)), point_pred[0].astype(jnp.int32)


def confusion_pass(ctx: RunContext, split: str, kind: str, variables, centroids: np.ndarray,
                   probe: LinearProbe, keep_scenes: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, list[renders.ScenePrediction]]:
  """On `split`: int64 [seeds, 2 variants, C, C] cluster confusions (ground truth x predicted
  class), int64 [C, C] of the linear probe (both summed over every process's scenes), and the
  first seed's point-wise clusters of the first `keep_scenes` scenes of this process."""
  net = passes.feature_net(ctx, kind)
  fields = passes.feature_fields(ctx, kind) + _LABEL_FIELDS
  clusters = np.zeros((centroids.shape[0], len(VARIANTS), ctx.num_classes, ctx.num_classes),
                      np.int64)
  probe_total = np.zeros((ctx.num_classes, ctx.num_classes), np.int64)
  centroids, kept = jnp.asarray(centroids), []
  with ctx.data.loader(split, train=False, seed=0, fields=fields) as loader:
    for host, device in progress(loader, desc=f"evaluating ({split})",
                                 total=ctx.data.eval_batches(split)):
      batch_clusters, batch_probe, point_pred = _confusion(
          variables, centroids, probe, device, kind=kind, net=net, num_classes=ctx.num_classes)
      batch_clusters, batch_probe = distributed.gather((batch_clusters, batch_probe))
      clusters += batch_clusters
      probe_total += batch_probe
      if len(kept) < keep_scenes:      # the main process's own scenes (it draws the renders)
        kept += renders.scene_predictions(host, distributed.local_rows(point_pred)
                                          )[:keep_scenes - len(kept)]
  return clusters, probe_total, kept


def evaluate(ctx: RunContext, variables: Mapping[str, Any] | None, kind: str,
             linear_probe: bool, seeds: Sequence[int] | None = None,
             primitives: np.ndarray | None = None, final: bool = False) -> dict[str, Any]:
  """Scores of one feature source: {'variants': {variant: seed summary}, 'linear_probe': scores,
  'seconds': ..., 'renders': [PNG paths]}. variables: network variables (unused for raw
  descriptors); seeds: the clustering seeds (default eval.seeds); primitives: f32 [K, D]
  trained primitives merged into the classes for each seed (GrowSP's protocol) instead of
  K-means of the training super-voxels; final: the run's final evaluation, which draws the
  first eval.render_scenes scenes (ground truth, the first seed's matched point-wise
  prediction, errors; `renders`) and, for network features, saves the first seed's classifier
  for inference (`jaxseg.eval.classifier`)."""
  config = ctx.config
  seeds = tuple(config.eval.seeds if seeds is None else seeds)
  start = time.perf_counter()
  names = class_names(ctx.num_classes)
  train_split = config.data.train_split
  eval_split = config.eval.split or config.data.val_split
  train = passes.scene_pass(ctx, train_split, kind, variables, probe=linear_probe)
  if primitives is None:
    centroids = np.stack([class_centroids(ctx, train, seed) for seed in seeds])
  else:
    centroids = np.stack([np.asarray(merge_primitives(
        np.asarray(primitives), ctx.num_classes, seed=seed,
        num_iters=config.eval.kmeans_iters)[1], np.float32) for seed in seeds])
  dim = centroids.shape[-1]
  probe = LinearProbe(jnp.zeros((dim, ctx.num_classes)), jnp.zeros(ctx.num_classes),
                      jnp.zeros(dim), jnp.ones(dim))
  if linear_probe:
    probe = train_linear_probe(train.probe_feats, train.probe_labels, ctx.num_classes,
                               steps=config.eval.probe.steps, lr=config.eval.probe.lr,
                               weight_decay=config.eval.probe.weight_decay,
                               batch_size=config.eval.probe.batch_size, seed=config.seed)
  conf, probe_conf, kept = confusion_pass(
      ctx, eval_split, kind, variables, centroids, probe,
      keep_scenes=int(config.eval.render_scenes) if final and distributed.is_main() else 0)
  result: dict[str, Any] = {"variants": {}}
  matched = metrics.hungarian_match(conf[0, 0])
  if kept:
    result["renders"] = renders.write_renders(ctx, eval_split, kept, matched)
  if final and kind == "model" and distributed.is_main():
    classifier.save(ctx.workdir, centroids[0], matched, names,
                    metrics.hungarian_match(conf[0, VARIANTS.index("supervoxel_pooled")]))
  for v, variant in enumerate(VARIANTS):
    per_seed = [metrics.clustering_scores(conf[s, v], names) for s in range(len(centroids))]
    result["variants"][variant] = metrics.seed_summary(per_seed)
  if linear_probe:
    result["linear_probe"] = metrics.segmentation_scores(probe_conf)
  result["seconds"] = time.perf_counter() - start
  result["splits"] = {"clusters_fitted_on": train_split, "evaluated_on": eval_split}
  return result


def validation_scalars(ctx: RunContext, variables: Mapping[str, Any]) -> dict[str, float]:
  """Periodic validation during training (eval.every_epochs): clustering scores of the
  network's encoder for the first evaluation seed, point-wise and with super-voxel pooling."""
  result = evaluate(ctx, encoder_variables(variables), "model", linear_probe=False,
                    seeds=tuple(ctx.config.eval.seeds)[:1])
  scalars = {}
  for variant, suffix in (("point", ""), ("supervoxel_pooled", "_pooled")):
    for key in ("miou", "oacc"):
      scalars[key + suffix] = float(result["variants"][variant][key]["mean"])
  return scalars
