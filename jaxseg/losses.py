"""Classification losses the methods share: point and per-voxel cross-entropy (PointDC
Eq. 11).

Each returns (loss_sum f32 [], count f32 []) so the caller can psum both over devices and
divide once (loss = psum(sum) / max(psum(count), 1)). Padding rows may hold NaN: they reach
neither the loss nor the gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxseg.ops.rows import per_pack, scatter_add_rows


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
