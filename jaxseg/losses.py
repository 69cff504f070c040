"""Classification losses the methods share: point and per-voxel cross-entropy (PointDC
Eq. 11), and the focal and Lovasz-softmax losses COARSE3D's reference trains with.

The per-voxel losses read the labelled points through their counts per voxel and class
(`voxel_label_counts`): every point of a voxel has its voxel's logits, so a sum over points is
a count-weighted sum over voxels, with no point-level logits gathered. The summed losses return
(loss_sum f32 [], count f32 []) so the caller can psum both over devices and divide once
(loss = psum(sum) / max(psum(count), 1)). Padding rows may hold NaN: they reach neither the
loss nor the gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

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


def voxel_label_counts(point_labels: jax.Array, point_to_voxel: jax.Array,
                       point_mask: jax.Array, num_voxels: int, num_classes: int) -> jax.Array:
  """f32 [G, C, K]: how many labelled points of each voxel carry each class.

  Args:
    point_labels: int32 [G, P]; -1 (or outside [0, K)) = unlabelled.
    point_to_voxel: int32 [G, P] voxel row of each point (C for padding points).
    point_mask: bool [G, P].
  """
  used = point_mask & (point_labels >= 0) & (point_labels < num_classes)
  rows = jnp.where(used, point_to_voxel, num_voxels)
  one_hot = jax.nn.one_hot(jnp.where(used, point_labels, 0), num_classes, dtype=jnp.float32)
  return per_pack(lambda r, h: scatter_add_rows(r, h, num_voxels), rows, one_hot)


def _labelled_log_probs(voxel_logits: jax.Array, counts: jax.Array) -> jax.Array:
  """f32 log-softmax of the voxels that hold a labelled point, 0 logits elsewhere (so NaN in
  padding voxels reaches neither a loss nor its gradient). [..., C, K] in and out."""
  labelled = jnp.sum(counts, axis=-1, keepdims=True) > 0
  logits = jnp.where(labelled, voxel_logits.astype(jnp.float32), 0.0)
  return jax.nn.log_softmax(logits, axis=-1)


def counts_cross_entropy_loss(voxel_logits: jax.Array, counts: jax.Array
                              ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Point-wise cross-entropy through voxel label counts: sum over voxels v and classes c of
  -n[v, c] * log softmax(logits[v])[c].

  Args:
    voxel_logits: f32 [G, C, K]; counts: f32 [G, C, K] (`voxel_label_counts`).
  Returns:
    loss_sum f32 [], count f32 [] (labelled points), correct f32 [] (labelled points whose
    voxel's arg-max logit is their label).
  """
  num_classes = voxel_logits.shape[-1]
  log_probs = _labelled_log_probs(voxel_logits, counts)
  best = jax.nn.one_hot(jnp.argmax(voxel_logits, axis=-1), num_classes, dtype=jnp.float32)
  return -jnp.sum(counts * log_probs), jnp.sum(counts), jnp.sum(counts * best)


def voxel_cross_entropy_loss(voxel_logits: jax.Array, point_labels: jax.Array,
                             point_to_voxel: jax.Array, point_mask: jax.Array
                             ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`cross_entropy_loss` of point labels whose logits are their voxels', computed per voxel
  (`counts_cross_entropy_loss` of `voxel_label_counts`). Equal to the point-wise sum.

  Args:
    voxel_logits: f32 [G, C, K].
    point_labels: int32 [G, P]; -1 (or outside [0, K)) = ignore.
    point_to_voxel: int32 [G, P] voxel row of each point (C for padding points).
    point_mask: bool [G, P].
  Returns:
    loss_sum f32 [], count f32 [], correct f32 [] as `counts_cross_entropy_loss`.
  """
  num_voxels, num_classes = voxel_logits.shape[1:]
  counts = voxel_label_counts(point_labels, point_to_voxel, point_mask, num_voxels,
                              num_classes)
  return counts_cross_entropy_loss(voxel_logits, counts)


def focal_class_weights(class_counts: np.ndarray) -> np.ndarray:
  """The reference's focal alpha: log(1 + w) / max(log(1 + w)) with w = 1 / (f + 1e-3) and f
  each class's share of the labelled points (float [K] counts in, float32 [K] out; a class
  without labels gets the largest weight, 1)."""
  counts = np.asarray(class_counts, np.float64)
  weights = np.log1p(1.0 / (counts / max(counts.sum(), 1.0) + 1e-3))
  return (weights / weights.max()).astype(np.float32)


def counts_focal_loss(voxel_logits: jax.Array, counts: jax.Array, alpha: jax.Array,
                      gamma: float = 2.0) -> tuple[jax.Array, jax.Array]:
  """Focal loss (Lin et al.) of the labelled points: sum over voxels v and classes c of
  -n[v, c] * alpha[c] * (1 - p[v, c])^gamma * log p[v, c], p = softmax(logits[v]).

  Args:
    voxel_logits: f32 [G, C, K]; counts: f32 [G, C, K] (`voxel_label_counts`);
    alpha: f32 [K] class weights (`focal_class_weights`).
  Returns:
    loss_sum f32 [], count f32 [] (labelled points).
  """
  log_probs = _labelled_log_probs(voxel_logits, counts)
  # 1 - p as -expm1(log p), kept above 0 so that fractional gammas keep finite gradients.
  modulation = jnp.maximum(-jnp.expm1(log_probs), 1e-12) ** gamma
  return (-jnp.sum(counts * alpha * modulation * log_probs), jnp.sum(counts))


def _lovasz_one_class(errors: jax.Array, foreground: jax.Array, weights: jax.Array
                      ) -> jax.Array:
  """Lovasz extension of the Jaccard loss of one class over weighted entries.

  errors f32 [E] (|fg - p|), foreground bool [E], weights f32 [E] (points per entry). An entry
  of weight w stands for w points with the same error: the loss is sum_k e_k (J_k - J_{k-1})
  over entries sorted by falling error, J_k the Jaccard loss once the first k entries are
  predicted wrong, which is the point-wise Lovasz loss with ties in any order."""
  order = jnp.argsort(-jax.lax.stop_gradient(errors))
  errors, foreground, weights = errors[order], foreground[order], weights[order]
  fg_weight = jnp.where(foreground, weights, 0.0)
  total = jnp.sum(fg_weight)
  intersection = total - jnp.cumsum(fg_weight)
  union = total + jnp.cumsum(weights - fg_weight)
  jaccard = 1.0 - intersection / jnp.maximum(union, 1e-12)
  steps = jnp.diff(jaccard, prepend=0.0)
  return jnp.sum(errors * steps)


def counts_lovasz_softmax(voxel_logits: jax.Array, counts: jax.Array) -> jax.Array:
  """Lovasz-softmax (Berman et al., classes='present') of one pack's labelled points: the
  mean over the classes among its labels of the Lovasz extension of that class's Jaccard loss
  on the errors |[label = c] - p_c|; 0 when the pack holds no label.

  Per voxel v and class c two weighted entries stand for its n[v, c] points of class c (error
  1 - p[v, c]) and its other labelled points (error p[v, c]), which equals the loss over the
  points themselves.

  Args:
    voxel_logits: f32 [C, K] one pack; counts: f32 [C, K] (`voxel_label_counts` of the pack).
  Returns:
    f32 [] the loss.
  """
  probs = jnp.exp(_labelled_log_probs(voxel_logits, counts))                # [C, K]
  labelled = jnp.sum(counts, axis=-1, keepdims=True)                         # [C, 1]
  errors = jnp.concatenate([1.0 - probs, probs], axis=0).T                   # [K, 2C]
  weights = jnp.concatenate([counts, labelled - counts], axis=0).T           # [K, 2C]
  foreground = jnp.concatenate([jnp.ones_like(counts, bool), jnp.zeros_like(counts, bool)],
                               axis=0).T
  per_class = jax.vmap(_lovasz_one_class)(errors, foreground, weights)       # [K]
  present = jnp.sum(counts, axis=0) > 0
  return (jnp.sum(jnp.where(present, per_class, 0.0))
          / jnp.maximum(jnp.sum(present), 1).astype(jnp.float32))
