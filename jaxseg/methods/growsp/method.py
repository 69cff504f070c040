"""GrowSP (CVPR 2023) as its reference code runs: no 2D features; primitives learnt from
growing super-points.

Each round (every growsp.round_epochs epochs, from the first):
  1. super-voxel features of every training scene (an unaugmented pass);
  2. growing (stage 2 only): per scene, K-means of its super-voxels on [unit neural feature,
     colour, 0.2 position, 0.8 normal] into M super-points, M falling linearly from
     growsp.grow_start to growsp.grow_end over the stage (stage 1 keeps the super-voxels);
  3. primitives: K-means of every super-point of the training set into growsp.primitives on
     normalize([unit feature, 3 colour, 3 normal histogram]); a primitive's classifier weight
     is the normalised mean unit feature of its super-points;
  4. pseudo-labels: each super-voxel takes its super-point's primitive.
Training fits temperature * cos(f, primitive) to them (cross-entropy), SGD with PolyLR per
stage. Evaluation merges the last round's primitives into C classes (K-means of the
primitives) and predicts point-wise.

  config.init = '' or 'random'   from a randomly initialised network (the reference)
  config.init = RUN              from another run's network, e.g. a PointDC distillation run
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
from jaxseg.methods import TrainOutcome
from jaxseg.methods.growsp import superpoints
from jaxseg.models.voxel_net import encoder_variables
from jaxseg.ops.clustering import cluster_supervoxels
from jaxseg.ops.features import cosine_logits
from jaxseg.train import restore, trainer
from jaxseg.train.context import RunContext
from jaxseg.train.parallel import replicate

_LOG = get_logger("methods.growsp")
PHASES = ("growsp_fixed", "growsp_growing")
NETWORK_PHASES = ("growsp_growing", "growsp_fixed")


def checkpoint_phases(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  epochs = (config.growsp.fixed_epochs, config.growsp.growing_epochs)
  return tuple(name for name, count in zip(PHASES, epochs) if count)


def config_problems(config: ml_collections.ConfigDict) -> list[str]:
  """Checks across growsp keys (each key's own range is checked with every config's, in
  jaxseg.modes.checks)."""
  g, problems = config.growsp, []
  if isinstance(g.grow_start, int) and isinstance(g.grow_end, int) and g.grow_end > g.grow_start:
    problems.append(f"growsp.grow_end={g.grow_end} is above growsp.grow_start={g.grow_start}; "
                    "super-points grow (their number falls) from start to end")
  if isinstance(g.primitives, int) and g.primitives < config.data.num_classes:
    problems.append(f"growsp.primitives={g.primitives} is below data.num_classes="
                    f"{config.data.num_classes}; primitives are merged into the classes")
  return problems


def num_grown(g: ml_collections.ConfigDict, epoch: int) -> int:
  """M of the growing stage at `epoch` (of that stage): the reference's
  int(start - epoch / epochs * (start - end)), at least end."""
  m = int(g.grow_start - epoch / max(g.growing_epochs, 1) * (g.grow_start - g.grow_end))
  return max(int(g.grow_end), m)


def _unit(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _segment_sum(values: np.ndarray, ids: np.ndarray, count: int) -> np.ndarray:
  out = np.zeros((count,) + values.shape[1:], np.float64)
  np.add.at(out, ids, values)
  return out


def _histograms(ctx: RunContext, stats: superpoints.SupervoxelStats, group: np.ndarray,
                num_groups: int, seed: int) -> np.ndarray:
  """f32 [num_groups, bins] normal histogram of each super-point, from the points of its
  super-voxels (at most growsp.histogram_points of them, a seeded choice)."""
  source = ctx.data.source(ctx.config.data.train_split)
  cap = int(ctx.config.growsp.histogram_points)
  rng = np.random.default_rng(seed)
  hists = np.zeros((num_groups, superpoints.HISTOGRAM_BINS), np.float32)
  for index in range(len(source)):
    start, stop = stats.offsets[index], stats.offsets[index + 1]
    local = group[start:stop]
    if not np.any(local >= 0):
      continue
    record = source[index]
    if not bool(record.get("has_normals", "normals" in record)):
      normals = np.zeros((len(record["segments"]), 3), np.float32)
    else:
      normals = np.asarray(record["normals"], np.float32)
    segments = np.asarray(record["segments"], np.int64)
    point_group = np.where(segments >= 0, local[np.maximum(segments, 0)], -1)
    order = np.argsort(point_group, kind="stable")
    groups = np.unique(point_group[point_group >= 0])
    bounds = np.searchsorted(point_group[order], groups)
    ends = np.append(bounds[1:], len(order))
    for g, lo, hi in zip(groups, bounds, ends):
      members = order[lo:hi]
      if members.size > cap:
        members = rng.choice(members, cap, replace=False)
      hists[g] = superpoints.normal_histogram(normals[members])
  return hists


def growsp_round(ctx: RunContext, variables: Mapping[str, Any],
                 stats: superpoints.SupervoxelStats, grown: int | None, round_index: int
                 ) -> tuple[dict[str, np.ndarray], float]:
  """One round -> ({'centroids' f32 [K, D], 'labels' int32 [M], 'offsets'}, primitive purity:
  the fraction of labelled points whose primitive's majority class is their class)."""
  g, start = ctx.config.growsp, time.perf_counter()
  sv = passes.scene_pass(ctx, ctx.config.data.train_split, "model", variables)
  rows = passes.clustered_rows(sv, g.min_segment_points, g.gt_ignore_mask)
  weights = g.growing_weights
  growing = np.concatenate([sv.feats, weights.rgb * stats.rgb, weights.xyz * stats.xyz,
                            weights.normal * stats.normal], axis=1)
  group, base = np.full(len(sv.counts), -1, np.int64), 0
  for index in range(len(stats.offsets) - 1):
    lo, hi = stats.offsets[index], stats.offsets[index + 1]
    scene_rows = rows[(rows >= lo) & (rows < hi)]
    if not scene_rows.size:
      continue
    local = (superpoints.grow_scene(growing[scene_rows], grown) if grown
             else np.arange(scene_rows.size))
    group[scene_rows] = base + local
    base += int(local.max()) + 1
  counts = sv.counts[rows].astype(np.float64)[:, None]
  feats = _unit(_segment_sum(sv.feats[rows] * counts, group[rows], base))
  rgb = _segment_sum(stats.rgb[rows] * counts, group[rows], base) / np.maximum(
      _segment_sum(counts, group[rows], base), 1)
  hists = _histograms(ctx, stats, group, base, seed=ctx.config.seed + round_index)
  weights = g.primitive_weights
  descriptors = _unit(np.concatenate([feats, weights.rgb * rgb, weights.shape * hists], 1))
  k = int(g.primitives)
  centres = np.asarray(cluster_supervoxels(
      descriptors.astype(np.float32), np.ones(base, np.float32), k, num_iters=g.kmeans_iters,
      seed=ctx.config.seed + round_index, mesh=ctx.mesh))
  primitive = np.asarray(jnp.argmax(jnp.asarray(descriptors, jnp.float32) @ centres.T, axis=1))
  centroids = _unit(_segment_sum(feats, primitive, k)).astype(np.float32)
  table = np.full(len(sv.counts), -1, np.int32)
  table[rows] = primitive[group[rows]]
  per_primitive = _segment_sum(stats.class_counts[rows], table[rows], k)
  purity = float(per_primitive.max(1).sum() / max(per_primitive.sum(), 1))
  _LOG.info("round %d: %d super-voxels -> %d super-points%s -> %d primitives in %.1f s; "
            "primitive purity %.3f", round_index, rows.size, base,
            f" (M={grown} per scene)" if grown else " (fixed)", k,
            time.perf_counter() - start, purity)
  return {"centroids": centroids, "labels": table, "offsets": sv.offsets}, purity


def _loss_fn(ctx: RunContext):
  temperature = float(ctx.config.growsp.temperature)

  def loss_fn(params, model_state, batch, extra, axis_name):
    net = ctx.net(axis_name=axis_name)
    out, updates = net.apply({"params": params, **model_state}, batch, train=True,
                             mutable=["batch_stats"])
    logits = cosine_logits(out["voxel_features"], extra["centroids"], temperature)
    loss_sum, count, correct = losses.voxel_cross_entropy_loss(
        logits, batch["pseudo_labels"], batch["point_to_voxel"], batch["point_mask"])
    return loss_sum, count, (updates, {"pseudo_label_accuracy": correct})
  return loss_fn


def _phase(ctx: RunContext, name: str, epochs: int, stats, writer: ScalarWriter,
           start_arrays) -> trainer.Phase:
  g = ctx.config.growsp
  growing = name == "growsp_growing"
  round_base = 1000 if growing else 0

  def begin_epoch(epoch, state, arrays, resumed_inside):
    due = epoch % g.round_epochs == 0 and not resumed_inside
    if due or "labels" not in arrays:
      grown = num_grown(g, epoch) if growing else None
      new, purity = growsp_round(ctx, trainer.network_variables(state), stats, grown,
                                 round_base + epoch)
      arrays.update(new)
      writer.scalars(int(state.step), {f"{name}/primitive_purity": purity})
    return {"centroids": replicate(jnp.asarray(arrays["centroids"]), ctx.mesh)}

  return trainer.Phase(
      name=name, epochs=epochs, optimizer=g.optimizer, optimizer_key="growsp.optimizer",
      loss_fn=_loss_fn(ctx), fields=ctx.net_fields + ("pseudo_labels",),
      begin_epoch=begin_epoch, host_fields=trainer.supervoxel_labels(g.gt_ignore_mask),
      mixup=bool(g.mixup), start_arrays=start_arrays)


def train(ctx: RunContext, resume: bool, writer: ScalarWriter,
          validate: trainer.Validate | None = None) -> TrainOutcome:
  """Runs GrowSP's two stages; returns the encoder, the last primitives and what ran."""
  config, g = ctx.config, ctx.config.growsp
  if config.init and config.init != "random":
    variables = restore.load_variables(config.init, ("svc", "svc_warmup", "cmd") +
                                       NETWORK_PHASES)
    start_name, provenance = "init from a run", {"init": f"network of the run {config.init}"}
    teacher = restore.distilled_teacher(config.init)
    if teacher:
      provenance["teacher"] = f"{teacher} (distilled by that run)"
  else:
    variables = ctx.init_variables()
    start_name, provenance = "random init", {"init": "randomly initialised network"}
  variables = encoder_variables(variables)
  stats = superpoints.SupervoxelStats.from_source(ctx.data.source(config.data.train_split),
                                                  ctx.num_classes)
  _LOG.info("GrowSP: %d fixed + %d growing epochs, a round every %d, %d primitives, "
            "super-points %d -> %d per scene, parallel mode %s on %d devices",
            g.fixed_epochs, g.growing_epochs, g.round_epochs, g.primitives, g.grow_start,
            g.grow_end, config.parallel.mode, jax.device_count())
  start, arrays = time.perf_counter(), None
  for name, epochs in zip(PHASES, (g.fixed_epochs, g.growing_epochs)):
    if epochs:
      # Every stage starts with a round of its own; the last round's primitives carry over
      # only to evaluation.
      phase = _phase(ctx, name, int(epochs), stats, writer, None)
      variables, arrays = trainer.run_phase(ctx, phase, variables, resume=resume,
                                            writer=writer, validate=validate)
  provenance["clustering"] = (f"{g.fixed_epochs} fixed + {g.growing_epochs} growing epochs, "
                              f"{g.primitives} primitives, rounds every {g.round_epochs}")
  return TrainOutcome(encoder_variables(variables), f"GrowSP ({start_name})", provenance,
                      {"growsp": time.perf_counter() - start},
                      primitives=None if arrays is None else arrays["centroids"])
