"""Evaluation of a network with a classifier head as supervised segmentation: every labelled
point of the evaluation split takes the arg-max class of its voxel's logits; no clustering, no
Hungarian matching. mIoU / oAcc / mAcc and per-class IoU from one confusion matrix over the
whole split (never cropped or augmented).
"""

from __future__ import annotations

import functools
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import distributed
from jaxseg.eval import metrics
from jaxseg.io.labels import class_names
from jaxseg.logging_utils import progress
from jaxseg.models.voxel_net import VoxelNet
from jaxseg.train.context import RunContext

VARIANT = "supervised"
_LABEL_FIELDS = ("point_labels", "point_mask", "point_to_voxel")


@functools.partial(jax.jit, static_argnames=("net", "num_classes"))
def _confusion(variables, batch, *, net: VoxelNet, num_classes: int) -> jax.Array:
  """int32 [C, C] (ground truth x predicted class) of one batch's labelled points."""
  logits = net.apply(variables, batch, train=False)["voxel_logits"]
  voxel_pred = jnp.argmax(logits, -1)                                        # [G, V]
  safe = jnp.minimum(batch["point_to_voxel"], voxel_pred.shape[1] - 1)
  point_pred = jnp.take_along_axis(voxel_pred, safe, axis=1)
  zeros = jnp.zeros((num_classes, num_classes), jnp.int32)
  return metrics.confusion_update(zeros, batch["point_labels"], point_pred, batch["point_mask"])


def confusion_pass(ctx: RunContext, split: str, variables: Mapping[str, Any]) -> np.ndarray:
  """int64 [C, C] over every labelled point of `split` (every process's scenes)."""
  net = ctx.net(class_dim=ctx.num_classes)
  fields = tuple(dict.fromkeys(ctx.net_fields + _LABEL_FIELDS))
  total = np.zeros((ctx.num_classes, ctx.num_classes), np.int64)
  with ctx.data.loader(split, train=False, seed=0, fields=fields) as loader:
    for _, device in progress(loader, desc=f"evaluating ({split})",
                              total=ctx.data.eval_batches(split)):
      total += distributed.gather(_confusion(variables, device, net=net,
                                             num_classes=ctx.num_classes))
  return total


def evaluate(ctx: RunContext, variables: Mapping[str, Any]) -> dict[str, Any]:
  """Scores of the classifier network `variables` (encoder and 'class_head') on the
  evaluation split: {'variants': {'supervised': scores with 'class_iou'}, 'seconds',
  'splits'}."""
  start = time.perf_counter()
  split = ctx.config.eval.split or ctx.config.data.val_split
  scores = metrics.segmentation_scores(confusion_pass(ctx, split, variables))
  scores["class_iou"] = dict(zip(class_names(ctx.num_classes), scores["iou"]))
  return {"variants": {VARIANT: scores}, "seconds": time.perf_counter() - start,
          "splits": {"trained_on": ctx.config.data.train_split, "evaluated_on": split}}


def validation_scalars(ctx: RunContext, variables: Mapping[str, Any]) -> dict[str, float]:
  """Periodic validation during training (eval.every_epochs): mIoU and oAcc."""
  scores = evaluate(ctx, variables)["variants"][VARIANT]
  return {"miou": float(scores["miou"]), "oacc": float(scores["oacc"])}
