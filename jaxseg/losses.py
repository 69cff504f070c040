"""Training losses of PointDC: cross-modal distillation (Eq. 7) and clustering cross-entropy
(Eq. 11).

Both return (loss_sum f32 [], count f32 []) so the caller can psum both over devices and
divide once (loss = psum(sum) / max(psum(count), 1)). Padding rows may hold NaN: they reach
neither the loss nor the gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxseg.ops import pooling
from jaxseg.ops.rows import per_pack, scatter_add_rows
from jaxseg.svc import features as svc_features


def distillation_loss(point_pred: jax.Array, point_segments: jax.Array, point_mask: jax.Array,
                      targets: jax.Array, has_target: jax.Array,
                      sorted_ids: bool = False) -> tuple[jax.Array, jax.Array]:
  """Super-voxel distillation loss, Eq. 7.

  For each super-voxel k with a target: || normalize(mean_{j in k} pred_j) - normalize(F[k]) ||^2,
  the squared L2 distance summed over the Dt dims (= 2 - 2 cos). The reference's MseMaskLoss
  takes the mean over the dims instead, i.e. this value / Dt.

  Args:
    point_pred: f32 [B, P, Dt] point predictions after the alignment head.
    point_segments: int32 [B, P] super-voxel id of each point (-1 = none; ids >= S are
      dropped).
    point_mask: bool [B, P], False for padding points.
    targets: f32 [B, S, Dt] teacher feature F[k] of each super-voxel.
    has_target: bool [B, S]; super-voxels without a target, without a valid point or with an
      all-zero target (the reference's "unobserved") are left out.
    sorted_ids: the valid ids are ascending along P (`jaxseg.ops.pooling`).

  Returns:
    loss_sum f32 [] over the used super-voxels, count f32 [] = their number.
  """
  num_segments = targets.shape[-2]
  ids = svc_features.point_segment_ids(point_segments, point_mask)
  pred = jnp.where(point_mask[..., None], point_pred, jnp.zeros((), point_pred.dtype))
  means = pooling.segment_mean(pred, ids, num_segments, sorted_ids=sorted_ids)
  counts = pooling.segment_counts(ids, num_segments, sorted_ids=sorted_ids)
  used = has_target & (counts > 0)
  targets = jnp.where(used[..., None], targets, jnp.zeros((), targets.dtype))
  used = used & jnp.any(targets != 0, axis=-1)
  diff = svc_features.l2_normalize(means) - svc_features.l2_normalize(targets)
  per_segment = jnp.sum(diff * diff, axis=-1)
  return (jnp.sum(jnp.where(used, per_segment, 0.0)),
          jnp.sum(used).astype(jnp.float32))


def cross_entropy_loss(logits: jax.Array, labels: jax.Array,
                       mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One-hot cross-entropy (Eq. 11) with a stable log-softmax.

  Args:
    logits: f32 [B, P, K].
    labels: int32 [B, P] target cluster; -1 (or any id outside [0, K)) = ignore.
    mask: bool [B, P], False for padding points.

  Returns:
    loss_sum f32 [] = sum over used points of -log softmax(logits)[label], count f32 [].
  """
  num_classes = logits.shape[-1]
  used = mask & (labels >= 0) & (labels < num_classes)
  logits = jnp.where(used[..., None], logits, jnp.zeros((), logits.dtype))
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  picked = jnp.take_along_axis(log_probs, jnp.where(used, labels, 0)[..., None].astype(jnp.int32),
                               axis=-1)[..., 0]
  return jnp.sum(jnp.where(used, -picked, 0.0)), jnp.sum(used).astype(jnp.float32)


def voxel_cross_entropy_loss(voxel_logits: jax.Array, point_labels: jax.Array,
                             point_to_voxel: jax.Array, point_mask: jax.Array
                             ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`cross_entropy_loss` of point labels whose logits are their voxels' (every point of a
  voxel has its voxel's feature), computed per voxel: sum over voxels v and classes c of
  -n[v, c] * log softmax(logits[v])[c], with n[v, c] the points of v labelled c. Equal to the
  point-wise sum, without gathering point-level logits or features.

  Args:
    voxel_logits: f32 [G, C, K].
    point_labels: int32 [G, P]; -1 (or outside [0, K)) = ignore.
    point_to_voxel: int32 [G, P] voxel row of each point (C for padding points).
    point_mask: bool [G, P].
  Returns:
    loss_sum f32 [], count f32 [] (labelled points), correct f32 [] (labelled points whose
    voxel's arg-max logit is their label).
  """
  num_voxels, num_classes = voxel_logits.shape[1:]
  used = point_mask & (point_labels >= 0) & (point_labels < num_classes)
  rows = jnp.where(used, point_to_voxel, num_voxels)
  one_hot = jax.nn.one_hot(jnp.where(used, point_labels, 0), num_classes, dtype=jnp.float32)
  counts = per_pack(lambda r, h: scatter_add_rows(r, h, num_voxels), rows, one_hot)
  log_probs = jax.nn.log_softmax(voxel_logits.astype(jnp.float32), axis=-1)
  best = jax.nn.one_hot(jnp.argmax(voxel_logits, axis=-1), num_classes, dtype=jnp.float32)
  return (-jnp.sum(counts * log_probs), jnp.sum(used).astype(jnp.float32),
          jnp.sum(counts * best))
