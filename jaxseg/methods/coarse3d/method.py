"""COARSE3D indoors: segmentation from a few labelled points with a class-prototype bank.

One phase ('coarse3d', `coarse3d.epochs`) on the voxel encoder with two heads per voxel: a
linear classifier (C logits) and a projection head (256-d unit rows). Each step:
1. the supervised loss of the labelled points (the weak labels: `weak_labels`) against
   their voxel's logits: cross-entropy (`coarse3d.loss='cross_entropy'`, the default) or the
   reference's focal (gamma 2, class weights from the weak labels' class shares) + Lovasz-
   softmax (`'focal_lovasz'`; Lovasz per pack, weighted by its labelled points);
2. contrast targets: the voxels' weak labels, plus a growing share r(epoch) of the voxels
   confidently predicted as a class the scene's weak labels hold (`contrast`);
3. entropy-driven anchors (per scene and class, drawn with weights exp(-H^2)) against the
   prototype bank (SupCon-style InfoNCE, tau 0.07), weight `coarse3d.contrast_weight` from
   epoch `coarse3d.contrast_start_epoch`;
4. from that epoch on, the bank moves toward the projections of the weakly labelled voxels
   the classifier gets right (Sinkhorn + momentum, `prototypes`); it lives in the train state
   and its checkpoints.
`coarse3d.contrast=False` trains the same network with step 1 only: the baseline on the
same labels; `weak.ratio=1 weak.by=point` gives full supervision; `init=RUN`
starts the encoder from a PointDC or GrowSP run. Evaluation is supervised segmentation
(`jaxseg.eval.supervised`).
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxseg import distributed
from jaxseg.eval.report import ScalarWriter
from jaxseg import losses
from jaxseg.logging_utils import get_logger
from jaxseg.methods import TrainOutcome, with_encoder_of
from jaxseg.methods.coarse3d import contrast, prototypes, weak_labels
from jaxseg.models.point_voxel import voxel_scene_slots
from jaxseg.train import trainer
from jaxseg.train.context import RunContext

_LOG = get_logger("methods.coarse3d")
PHASE = "coarse3d"
NETWORK_PHASES = (PHASE,)
_BANK = "prototypes"
_STEP = "coarse3d_step"
LOSSES = ("cross_entropy", "focal_lovasz")


def checkpoint_phases(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  return (PHASE,) if config.coarse3d.epochs else ()


def config_problems(config: ml_collections.ConfigDict) -> list[str]:
  """Problems with the coarse3d and weak sections."""
  problems = []
  weak = config.weak
  if weak.by not in weak_labels.BY:
    problems.append(f"unknown weak.by {weak.by!r}; choose one of {list(weak_labels.BY)}")
  if not (0 < float(weak.ratio) <= 1) and not int(weak.points_per_scene) > 0:
    problems.append(f"weak.ratio={weak.ratio} must lie in (0, 1] (0.001 = 0.1%), or set "
                    "weak.points_per_scene")
  if int(weak.points_per_scene) < 0:
    problems.append("weak.points_per_scene must be 0 (use weak.ratio) or positive")
  c = config.coarse3d
  if c.loss not in LOSSES:
    problems.append(f"unknown coarse3d.loss {c.loss!r}; choose one of {list(LOSSES)}")
  for key in ("focal_gamma", "lovasz_weight"):
    if float(c[key]) < 0:
      problems.append(f"coarse3d.{key}={c[key]} must be >= 0")
  if not 0 <= float(c.momentum) < 1:
    problems.append(f"coarse3d.momentum={c.momentum} must lie in [0, 1)")
  for key in ("prototypes_per_class", "projection_dim", "anchors_per_class"):
    if int(c[key]) <= 0:
      problems.append(f"coarse3d.{key}={c[key]} must be positive")
  return problems


def _supervised_loss(c: ml_collections.ConfigDict, alpha: jax.Array, logits: jax.Array,
                     counts: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(loss_sum, labelled points, correctly classified labelled points) of the labelled points
  of packs [G, V, C] with label counts [G, V, C], by `coarse3d.loss`."""
  ce_sum, count, correct = losses.counts_cross_entropy_loss(logits, counts)
  if c.loss == "cross_entropy":
    return ce_sum, count, correct
  focal_sum, _ = losses.counts_focal_loss(logits, counts, alpha, float(c.focal_gamma))
  lovasz = jax.vmap(losses.counts_lovasz_softmax)(logits, counts)               # [G]
  # Per pack (Lovasz does not add up over points), weighted by the pack's labelled points so
  # the step's division by the labelled count makes it their weighted mean.
  lovasz_sum = jnp.sum(lovasz * jnp.sum(counts, axis=(1, 2)))
  return focal_sum + float(c.lovasz_weight) * lovasz_sum, count, correct


def class_weights(source, num_classes: int) -> jax.Array:
  """f32 [K] focal class weights (`losses.focal_class_weights`) from the labelled points of
  a split's records (labels -1 = unlabelled)."""
  counts = np.zeros(num_classes, np.int64)
  for index in range(len(source)):
    labels = np.asarray(source[index]["labels"]).reshape(-1)
    counts += np.bincount(labels[(labels >= 0) & (labels < num_classes)],
                          minlength=num_classes)
  return jnp.asarray(losses.focal_class_weights(counts))


def _bank_rows_bound(chosen: dict | None, batch_size: int) -> int | None:
  """A bound on the weakly labelled voxels of one device's batch, the rows of a bank update:
  batch_size scenes of at most the most weak labels of one scene (a voxel holds one or more
  labelled points), rounded up to a multiple of 128; None for every label (no bound kept)."""
  if chosen is None:
    return None
  most = max((len(indices) for indices in chosen.values()), default=0)
  return max(128, -(-int(batch_size) * most // 128) * 128)


def _loss_fn(ctx: RunContext, alpha: jax.Array, bank_rows: int | None):
  config, c = ctx.config, ctx.config.coarse3d
  num_classes = ctx.num_classes

  def loss_fn(params, model_state, batch, extra, axis_name):
    net = ctx.net(axis_name=axis_name, class_dim=num_classes,
                  projection_dim=int(c.projection_dim))
    out, new_vars = net.apply({"params": params, "batch_stats": model_state["batch_stats"]},
                              batch, train=True, mutable=["batch_stats"])
    logits, projection = out["voxel_logits"], out["voxel_projection"]
    num_voxels = logits.shape[1]
    counts = losses.voxel_label_counts(batch["point_labels"], batch["point_to_voxel"],
                                       batch["point_mask"], num_voxels, num_classes)
    supervised_sum, count, correct = _supervised_loss(c, alpha, logits, counts)
    new_state = {**model_state, "batch_stats": new_vars["batch_stats"]}
    metrics = {c.loss: supervised_sum, "accuracy": correct}
    if not c.contrast:
      return supervised_sum, count, (new_state, metrics)

    step = model_state[_STEP]
    num_slots = batch["scene_index"].shape[1]
    scene = voxel_scene_slots(batch)
    weak = jax.vmap(contrast.voxel_labels)(counts)
    # Each pack's draws come from (seed, step, its first scene), so they do not depend on how
    # the batch is laid out over devices or processes.
    step_key = jax.random.fold_in(jax.random.key(config.seed), step.astype(jnp.int32))
    keys = jax.vmap(lambda first: jax.random.split(jax.random.fold_in(step_key, first), 3))(
        batch["scene_index"][:, 0])                                          # [G, 3]
    detached = jax.lax.stop_gradient(logits)
    targets = jax.vmap(lambda lg, w, s, k: contrast.confident_pseudo_labels(
        lg, w, s, num_slots, extra["fraction"], k))(detached, weak, scene, keys[:, 0])
    rows, classes, valid = jax.vmap(lambda t, s, w, lg, k: contrast.sample_anchors(
        t, s, w, lg, num_slots, int(c.anchors_per_class), k))(targets, scene, weak, detached,
                                                               keys[:, 1])
    anchors = jax.vmap(lambda p, r: p[r])(projection, rows)
    bank = model_state[_BANK]
    contrast_sum, anchor_count = contrast.prototype_contrast(
        anchors.reshape(-1, anchors.shape[-1]), classes.reshape(-1), valid.reshape(-1), bank,
        float(c.temperature))
    # The step divides the summed loss by the global count of labelled points: the contrastive
    # term is the mean over all anchors of the batch, scaled by that count.
    anchors_total = anchor_count if axis_name is None else jax.lax.psum(anchor_count, axis_name)
    counted = count if axis_name is None else jax.lax.psum(count, axis_name)
    contrast_term = (contrast_sum / jnp.maximum(jax.lax.stop_gradient(anchors_total), 1.0)
                     * jax.lax.stop_gradient(counted))
    loss_sum = supervised_sum + extra["contrast_weight"] * contrast_term
    # The bank learns from the weakly labelled voxels (the reference passes the weak labels),
    # the correctly classified ones moving it, once the contrastive loss is on.
    noise = jax.vmap(lambda k: jax.random.gumbel(k, (num_voxels, bank.shape[1])))(keys[:, 2])
    updated = prototypes.update_bank(
        bank, jax.lax.stop_gradient(projection).reshape(-1, projection.shape[-1]),
        weak.reshape(-1), (jnp.argmax(detached, -1) == weak).reshape(-1),
        noise.reshape(-1, bank.shape[1]), momentum=float(c.momentum),
        epsilon=float(c.sinkhorn_epsilon), iterations=int(c.sinkhorn_iterations),
        axis_name=axis_name, max_rows=bank_rows)
    new_state[_BANK] = jnp.where(extra["contrast_weight"] > 0, updated, bank)
    new_state[_STEP] = step + 1.0
    metrics["contrast"] = contrast_term
    return loss_sum, count, (new_state, metrics)

  return loss_fn


def _weak_labels(ctx: RunContext, resume: bool) -> tuple[dict | None, str]:
  """This run's weak labels ({scene: indices}; None: every label, nothing thinned), drawn
  (or read from weak.labels_from, or on --resume the run's own) and saved in the work
  directory, and a one-line summary."""
  weak = ctx.config.weak
  source = ctx.data.source(ctx.config.data.train_split)
  path = ctx.path(weak_labels.FILE_NAME)
  settings = {k: weak[k] for k in ("ratio", "by", "voxel_size", "points_per_scene", "seed")}
  if weak.labels_from:
    chosen, settings = weak_labels.load(os.path.abspath(os.path.expanduser(weak.labels_from)))
    origin = f"read from {weak.labels_from} ({settings})"
  elif resume and os.path.isfile(path):
    chosen, settings = weak_labels.load(path)     # a resumed run keeps its draw
    origin = f"this run's draw ({settings})"
  elif float(weak.ratio) >= 1 and weak.by == "point" and not int(weak.points_per_scene):
    return None, "every label of the training scenes (full supervision)"
  else:
    chosen = weak_labels.select_for_records(source, settings)
    origin = f"drawn ({settings})"
  if distributed.is_main():
    weak_labels.save(path, chosen, settings)
  return chosen, f"{weak_labels.summary(chosen, source)}, {origin}"


def train(ctx: RunContext, resume: bool, writer: ScalarWriter,
          validate: trainer.Validate | None = None) -> TrainOutcome:
  """Runs the COARSE3D phase; returns the network with its classifier head."""
  config, c = ctx.config, ctx.config.coarse3d
  chosen, labels_summary = _weak_labels(ctx, resume)
  _LOG.info("COARSE3D weak labels: %s", labels_summary)
  variables, provenance = with_encoder_of(config.init, ctx.init_variables(
      class_dim=ctx.num_classes, projection_dim=int(c.projection_dim)))
  epochs = int(c.epochs)
  source = ctx.data.source(config.data.train_split)
  if chosen is not None:
    source = weak_labels.WeakLabelSource(source, chosen)
  alpha = jnp.ones(ctx.num_classes, jnp.float32)
  if c.loss == "focal_lovasz":
    alpha = class_weights(source, ctx.num_classes)
    _LOG.info("COARSE3D focal class weights: %s", np.round(np.asarray(alpha), 3).tolist())

  def begin_epoch(epoch, state, arrays, resumed_inside):
    del state, arrays, resumed_inside
    on = bool(c.contrast) and epoch >= int(c.contrast_start_epoch)
    return {"fraction": jnp.float32(contrast.pseudo_label_fraction(epoch, epochs)),
            "contrast_weight": jnp.float32(float(c.contrast_weight) if on else 0.0)}

  model_state = {}
  if c.contrast:
    model_state = {_BANK: prototypes.init_bank(jax.random.key(config.seed), ctx.num_classes,
                                               int(c.prototypes_per_class),
                                               int(c.projection_dim)),
                   _STEP: jnp.zeros((), jnp.float32)}
  phase = trainer.Phase(
      name=PHASE, epochs=epochs, optimizer=c.optimizer, optimizer_key="coarse3d.optimizer",
      loss_fn=_loss_fn(ctx, alpha, _bank_rows_bound(chosen, config.data.batch_size)),
      fields=tuple(dict.fromkeys(
          ctx.net_fields + ("point_labels", "point_scene", "scene_index"))),
      begin_epoch=begin_epoch, model_state=model_state,
      source=None if chosen is None else source)
  start = time.perf_counter()
  variables, _ = trainer.run_phase(ctx, phase, variables, resume=resume, writer=writer,
                                   validate=validate)
  loss_name = {"cross_entropy": "cross-entropy", "focal_lovasz": "focal + Lovasz"}[c.loss]
  name = "COARSE3D" if c.contrast else f"{loss_name} on the weak labels"
  provenance.update({"weak_labels": labels_summary, "training": (
      f"{epochs} epochs, {loss_name}, contrast weight {c.contrast_weight} from epoch "
      f"{c.contrast_start_epoch}, {c.prototypes_per_class} prototypes per class"
      if c.contrast else f"{epochs} epochs, {loss_name} only")})
  return TrainOutcome(variables, name, provenance, {PHASE: time.perf_counter() - start})
