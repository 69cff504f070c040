"""Forward passes over a split that reduce on the devices and return small host arrays.

Point features never leave the devices: each jitted pass reduces a batch to per-super-voxel
features, pseudo-labels or confusion counts before copying to the host.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.errors import InputError
from jaxseg.eval.descriptors import raw_point_descriptors
from jaxseg.ops import pooling
from jaxseg.stages.context import NET_FIELDS, RunContext
from jaxseg.svc.features import supervoxel_features
from jaxseg.svc.pseudo_labels import pooled_pseudo_labels

FeatureFn = Callable[[Any, Mapping[str, jax.Array]], jax.Array]
FEATURE_KINDS = ("model", "raw_descriptors")


def feature_fn(ctx: RunContext, kind: str) -> tuple[FeatureFn, tuple[str, ...]]:
  """(fn(variables, batch) -> point features f32 [B, P, D], the batch fields fn reads).

  'model': the network's per-point features in evaluation mode; 'raw_descriptors': mean-free
  xyz, colour and normal per point (the no-learning baseline; variables unused).
  """
  if kind == "model":
    def model_features(variables, batch):
      net = ctx.net(voxel_cap=batch["voxel_coords"].shape[1])
      return net.apply(variables, batch, train=False)["features"]
    return model_features, NET_FIELDS
  if kind == "raw_descriptors":
    def raw_features(variables, batch):
      del variables
      return raw_point_descriptors(batch["point_coords"], batch["point_colors"],
                                   batch["point_normals"], batch["point_mask"])
    return raw_features, ("point_coords", "point_colors", "point_normals", "point_mask")
  raise InputError("eval.features", f"unknown feature kind {kind!r}",
                   f"use one of {list(FEATURE_KINDS)}")


def check_overflow(overflow: np.ndarray, scene_index: np.ndarray, segment_cap: int,
                    key: str) -> None:
  if overflow.any():
    scene = int(scene_index[np.argmax(overflow)])
    raise InputError(f"scene record {scene}", f"a scene has more than {segment_cap} "
                     "super-voxels", f"raise --config.{key}")


def supervoxel_pass(ctx: RunContext, split: str, kind: str, variables, segment_cap: int,
                    cap_key: str) -> dict[str, np.ndarray]:
  """Per-scene super-voxel features of `split` (records in order, unaugmented) from the
  features of `kind` (see `feature_fn`).

  Returns feats f32 [N, S, D] (unit rows, zeros for empty super-voxels), counts f32 [N, S]
  (points), labelled f32 [N, S] (points with a ground-truth label) for the N records.
  """
  features, fields = feature_fn(ctx, kind)
  fields = tuple(fields) + ("point_segments", "point_labels", "point_mask")

  def build():
    def reduce(variables, batch):
      point_feats = features(variables, batch)
      sv_feats, counts, overflow = supervoxel_features(
          point_feats, batch["point_segments"], batch["point_mask"], segment_cap)
      ids = jnp.where(batch["point_mask"], batch["point_segments"], -1)
      labelled = pooling.segment_counts(jnp.where(batch["point_labels"] >= 0, ids, -1),
                                        segment_cap)
      return sv_feats, counts, labelled, overflow
    return reduce

  reduce = ctx.jitted(("supervoxel_pass", kind, segment_cap), build)
  num_scenes = len(ctx.source(split))
  out = {}
  for batch in ctx.pass_batches(split, f"super-voxel features ({split})"):
    sv_feats, counts, labelled, overflow = jax.device_get(
        reduce(variables, ctx.to_device(batch, set(fields))))
    check_overflow(overflow, batch["scene_index"], segment_cap, cap_key)
    if not out:
      out = {"feats": np.zeros((num_scenes,) + sv_feats.shape[1:], np.float32),
             "counts": np.zeros((num_scenes, segment_cap), np.float32),
             "labelled": np.zeros((num_scenes, segment_cap), np.float32)}
    rows = batch["scene_index"] >= 0
    index = batch["scene_index"][rows]
    out["feats"][index], out["counts"][index] = sv_feats[rows], counts[rows]
    out["labelled"][index] = labelled[rows]
  return out


def pseudo_label_pass(ctx: RunContext, split: str, variables, centroids: np.ndarray, *,
                      temperature: float, segment_cap: int) -> np.ndarray:
  """Eq. 9-10 over `split`: int32 [N, S] super-voxel pseudo-labels (-1 = empty)."""
  features, fields = feature_fn(ctx, "model")
  fields = tuple(fields) + ("point_segments",)

  def build():
    def labels_of(variables, centroids, batch):
      point_feats = features(variables, batch)
      sv_labels, _ = pooled_pseudo_labels(point_feats, batch["point_segments"],
                                          batch["point_mask"], centroids,
                                          temperature=temperature, segment_cap=segment_cap)
      return sv_labels
    return labels_of

  labels_of = ctx.jitted(("pseudo_label_pass", temperature, segment_cap), build)
  num_scenes = len(ctx.source(split))
  table = np.full((num_scenes, segment_cap), -1, np.int32)
  centroids = jnp.asarray(centroids)
  for batch in ctx.pass_batches(split, f"pseudo-labels ({split})"):
    sv_labels = np.asarray(labels_of(variables, centroids, ctx.to_device(batch, set(fields))))
    rows = batch["scene_index"] >= 0
    table[batch["scene_index"][rows]] = sv_labels[rows]
  return table
