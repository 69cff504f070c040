"""PointDC's distillation losses (stage 1), chosen by `cmd.loss`.

  'voxel' (the reference code's MseMaskLoss): every voxel's prediction is regressed onto the
    target of its super-voxel, mean squared error over the Dt dims of the unit vectors
    (= (2 - 2 cos) / Dt), averaged over the voxels with a target. Every voxel is constrained,
    so the loss also pulls the voxels of one super-voxel together.
  'segment' (the paper's Eq. 7): one term per super-voxel, on the mean prediction of its
    points: || normalize(mean_j pred_j) - normalize(F[k]) ||^2 summed over the dims, averaged
    over the super-voxels with a target. Points of a super-voxel may disagree as long as
    their mean points the right way.

Both return (loss_sum f32 [], count f32 []) for the trainer to psum and divide. Padding rows may
hold NaN: they reach neither the loss nor the gradients. A target that is all zeros is
"unobserved" (the reference's mask) and is left out, as is a super-voxel without a target.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxseg.ops import pooling
from jaxseg.ops.features import l2_normalize, point_segment_ids

LOSSES = ("voxel", "segment")


def _used_targets(targets: jax.Array, has_target: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(targets with unused rows zeroed, bool [B, S] used) of [B, S, Dt] targets."""
  targets = jnp.where(has_target[..., None], targets, jnp.zeros((), targets.dtype))
  return targets, has_target & jnp.any(targets != 0, axis=-1)


def segment_distillation_loss(point_pred: jax.Array, point_segments: jax.Array,
                              point_mask: jax.Array, targets: jax.Array, has_target: jax.Array,
                              sorted_ids: bool = False) -> tuple[jax.Array, jax.Array]:
  """Eq. 7, one term per super-voxel (see the module docstring).

  Args:
    point_pred: f32 [B, P, Dt] point predictions after the alignment head.
    point_segments: int32 [B, P] super-voxel id of each point (-1 = none; ids >= S dropped).
    point_mask: bool [B, P], False for padding points.
    targets: f32 [B, S, Dt] teacher feature F[k] of each super-voxel.
    has_target: bool [B, S].
    sorted_ids: the valid ids are ascending along P (`jaxseg.ops.pooling`).

  Returns:
    loss_sum f32 [] over the used super-voxels, count f32 [] = their number.
  """
  num_segments = targets.shape[-2]
  ids = point_segment_ids(point_segments, point_mask)
  pred = jnp.where(point_mask[..., None], point_pred, jnp.zeros((), point_pred.dtype))
  means = pooling.segment_mean(pred, ids, num_segments, sorted_ids=sorted_ids)
  counts = pooling.segment_counts(ids, num_segments, sorted_ids=sorted_ids)
  targets, used = _used_targets(targets, has_target & (counts > 0))
  diff = l2_normalize(means) - l2_normalize(targets)
  per_segment = jnp.sum(diff * diff, axis=-1)
  return jnp.sum(jnp.where(used, per_segment, 0.0)), jnp.sum(used).astype(jnp.float32)


def voxel_distillation_loss(point_pred: jax.Array, point_segments: jax.Array,
                            point_mask: jax.Array, point_to_voxel: jax.Array, num_voxels: int,
                            targets: jax.Array, has_target: jax.Array
                            ) -> tuple[jax.Array, jax.Array]:
  """The reference's per-voxel loss (see the module docstring).

  Each point carries its voxel's prediction and its super-voxel's target and weighs 1 / (points
  of its voxel), so every voxel counts once (a voxel whose points lie in several super-voxels
  is regressed onto their point-weighted targets).

  Args:
    point_pred: f32 [B, P, Dt] each point's voxel prediction.
    point_segments: int32 [B, P] super-voxel id (-1 = none; ids >= S dropped).
    point_mask: bool [B, P].
    point_to_voxel: int32 [B, P] voxel row of each point (num_voxels for padding).
    num_voxels: static voxel capacity C.
    targets: f32 [B, S, Dt]; has_target: bool [B, S].

  Returns:
    loss_sum f32 [] = sum over voxels of mean_d (n(pred) - n(F))^2, count f32 [] = the voxels
    with a target.
  """
  num_segments = targets.shape[-2]
  targets, used_segment = _used_targets(targets, has_target)
  segments = point_segment_ids(point_segments, point_mask)
  inside = (segments >= 0) & (segments < num_segments)
  safe = jnp.where(inside, segments, 0)
  point_targets = jnp.take_along_axis(targets, safe[..., None], axis=1)
  used = inside & jnp.take_along_axis(used_segment, safe, axis=1)
  voxels = jnp.where(point_mask, point_to_voxel, -1)
  per_voxel = pooling.segment_counts(voxels, num_voxels)
  points_in_voxel = jnp.take_along_axis(per_voxel, jnp.clip(voxels, 0, num_voxels - 1), axis=1)
  weight = jnp.where(used, 1.0 / jnp.maximum(points_in_voxel, 1).astype(jnp.float32), 0.0)
  pred = jnp.where(used[..., None], point_pred, jnp.zeros((), point_pred.dtype))
  diff = l2_normalize(pred) - l2_normalize(point_targets)
  per_point = jnp.mean(diff * diff, axis=-1)
  return jnp.sum(weight * per_point), jnp.sum(weight)
