"""COARSE3D's pieces on one pack of voxels: labels per voxel, confident pseudo-labels,
entropy-driven anchors and the anchor-to-prototype contrastive loss.

Every function works on one pack (vmap over the packs of a batch): V voxels, each in a scene
slot `scene` (int32 [V], -1 = padding) with logits [V, C].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def entropy(logits: jax.Array) -> jax.Array:
  """f32 [V] Shannon entropy (nats) of softmax(logits [V, C])."""
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


def voxel_labels(counts: jax.Array) -> jax.Array:
  """int32 [V]: the most frequent label of each voxel's labelled points (lowest class on a
  tie), -1 for voxels without one; counts f32 [V, C] from `losses.voxel_label_counts`."""
  return jnp.where(counts.sum(-1) > 0, jnp.argmax(counts, -1), -1).astype(jnp.int32)


def _weak_classes(weak: jax.Array, scene: jax.Array, num_slots: int, num_classes: int
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(valid bool [V] non-padding voxels, slot int32 [V] their scene slot (0 for padding),
  present bool [S, C] the classes among each scene's weak labels)."""
  valid = scene >= 0
  slot = jnp.where(valid, scene, 0)
  present = jnp.zeros((num_slots, num_classes), bool).at[
      jnp.where(weak >= 0, slot, num_slots), jnp.maximum(weak, 0)].set(True, mode="drop")
  return valid, slot, present


def pseudo_label_fraction(epoch: int, epochs: int) -> float:
  """r = 0.5 log2(1 + (epoch + 1) / epochs): the reference's schedule (epochs = 100 there),
  stretched over the run's epochs; 0.29 after the first tenth, 0.5 at the end."""
  return float(0.5 * np.log2(1.0 + (epoch + 1) / max(int(epochs), 1)))


def confident_pseudo_labels(logits: jax.Array, weak: jax.Array, scene: jax.Array,
                            num_slots: int, fraction: jax.Array, key: jax.Array) -> jax.Array:
  """Contrast targets int32 [V]: the weak label where there is one; else, for each scene and
  each class among that scene's weak labels, floor(fraction x n) of the n voxels predicted as
  that class (the reference's int(n * r)), drawn without replacement with weights exp(-H)
  (Gumbel top-k); -1 elsewhere.

  Args:
    logits: f32 [V, C]; weak: int32 [V] (-1 none); scene: int32 [V] slot (-1 padding).
    fraction: f32 [] in [0, 1].
  """
  num_voxels, num_classes = logits.shape
  pred = jnp.argmax(logits, -1).astype(jnp.int32)
  valid, slot, present = _weak_classes(weak, scene, num_slots, num_classes)
  candidate = valid & present[slot, pred]
  groups = num_slots * num_classes
  group = jnp.where(candidate, slot * num_classes + pred, groups)
  key_value = -entropy(logits) + jax.random.gumbel(key, (num_voxels,))
  order = jnp.lexsort((-key_value, group))            # by group, best key first
  sorted_group = group[order]
  first = jnp.searchsorted(sorted_group, sorted_group, side="left")
  rank = jnp.zeros(num_voxels, jnp.int32).at[order].set(
      (jnp.arange(num_voxels) - first).astype(jnp.int32))
  size = jax.ops.segment_sum(candidate.astype(jnp.float32), group, num_segments=groups + 1)
  chosen = candidate & (rank < jnp.floor(fraction * size[group]))
  return jnp.where(weak >= 0, weak, jnp.where(chosen, pred, -1)).astype(jnp.int32)


def sample_anchors(targets: jax.Array, scene: jax.Array, weak: jax.Array, logits: jax.Array,
                   num_slots: int, per_class: int, key: jax.Array
                   ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Entropy-driven anchors: for each scene and each class among its weak labels,
  `per_class` voxels of that target class drawn with replacement with probability
  proportional to exp(-H^2) (the reference's anchor_sampling).

  Returns (rows int32 [S * C * per_class] voxel of each anchor, classes int32 [same], valid
  bool [same]: the group's class is among the scene's weak labels and the drawn voxel is one
  of the group's, which also drops a draw that float rounding put past the group's last
  voxel).
  """
  num_voxels, num_classes = logits.shape
  weight = jnp.exp(-entropy(logits) ** 2)
  valid, slot, present = _weak_classes(weak, scene, num_slots, num_classes)
  slots, classes = jnp.meshgrid(jnp.arange(num_slots), jnp.arange(num_classes), indexing="ij")
  slots, classes = slots.reshape(-1), classes.reshape(-1)              # [S * C] groups

  def draw(group_slot, group_class, group_key):
    member = valid & (slot == group_slot) & (targets == group_class)
    cumulative = jnp.cumsum(jnp.where(member, weight, 0.0))
    total = cumulative[-1]
    u = jax.random.uniform(group_key, (per_class,)) * total
    rows = jnp.clip(jnp.searchsorted(cumulative, u, side="right"), 0, num_voxels - 1)
    ok = (total > 0) & present[group_slot, group_class] & member[rows]
    return rows.astype(jnp.int32), ok

  rows, ok = jax.vmap(draw)(slots, classes, jax.random.split(key, slots.shape[0]))
  anchor_classes = jnp.repeat(classes, per_class).astype(jnp.int32)
  return rows.reshape(-1), anchor_classes, ok.reshape(-1)


def prototype_contrast(anchors: jax.Array, classes: jax.Array, valid: jax.Array,
                       bank: jax.Array, temperature: float = 0.07
                       ) -> tuple[jax.Array, jax.Array]:
  """SupCon-style InfoNCE of anchors against the prototypes (the reference's form): for an
  anchor a of class y and each of y's J prototypes p,
    -log( exp(a.p / t) / (exp(a.p / t) + sum over other classes' prototypes n of exp(a.n / t)) ),
  averaged over the J positives.

  Args:
    anchors: f32 [A, D] unit features; classes: int32 [A]; valid: bool [A].
    bank: f32 [C, J, D] unit prototypes (no gradient reaches them).
  Returns:
    (loss_sum f32 [] over valid anchors, count f32 []).
  """
  num_classes, num_prototypes, _ = bank.shape
  logits = jnp.einsum("ad,cjd->acj", anchors, jax.lax.stop_gradient(bank)) / temperature
  positive = jax.nn.one_hot(classes, num_classes, dtype=bool)                   # [A, C]
  # log-sum-exp of the negatives, stabilised by the anchor's largest logit.
  top = jnp.max(logits, axis=(1, 2), keepdims=True)
  negatives = jnp.sum(jnp.where(positive[..., None], 0.0, jnp.exp(logits - top)), axis=(1, 2))
  own = jnp.take_along_axis(logits, classes[:, None, None], axis=1)[:, 0, :] - top[:, 0]
  per_positive = -(own - jnp.log(jnp.exp(own) + negatives[:, None]))            # [A, J]
  per_anchor = per_positive.mean(-1)
  return jnp.sum(jnp.where(valid, per_anchor, 0.0)), jnp.sum(valid).astype(jnp.float32)
