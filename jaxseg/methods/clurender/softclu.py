"""SoftClu's soft-clustering loss (the OT clustering part of CluRender), as its code runs.

  loss, parts = cluster_loss(logits, xyz, features, valid)       # one cloud
  jax.vmap(cluster_loss)(...)                                     # a batch of clouds

Per cloud, with scores S = softmax(logits) [N, J] over the valid points:
  * centroids: sum_n S[n, j] x_n / pi_j with pi_j = sum_n S[n, j] held constant (no gradient,
    at least 1e-4), of the xyz (normalised to the unit sphere, `jaxseg.ops.clouds.unit_sphere`)
    and of the unit features (then normalised);
  * two transport problems: xyz to the xyz centroids (squared distance) and features to the
    feature centroids (2 - 2 cos), each solved by log-domain Sinkhorn (OTT-JAX) with uniform
    marginals, absolute epsilon 1e-3 and 25 iterations; the targets N x plan (rows sum to 1)
    carry no gradient;
  * each term's loss: the cross-entropy of log_softmax(logits) against its targets, averaged
    over the valid points; plus the orthogonality penalty mean |C C^T - I| of its centroids
    C [J, .] (weight 1e-4 on the unit feature centroids, 1e-7 on the raw xyz ones).
`terms=('xyz',)` is the paper's single-term form (Eq. 8-12). The reference stops Sinkhorn early
when the mean change of the potentials falls under 1e-3; here it runs its 25 iterations
(fixed-length, so the loss is jittable and vmappable).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from jaxseg.ops.features import l2_normalize
from jaxseg.ops.sinkhorn import sinkhorn_labels_from_cost

TERMS = ("xyz", "feature")


def _orthogonality(centroids: jax.Array) -> jax.Array:
  """mean |C C^T - I| of centroids C [J, D]."""
  gram = centroids @ centroids.T
  return jnp.mean(jnp.abs(gram - jnp.eye(gram.shape[0], dtype=gram.dtype)))


def cluster_loss(logits: jax.Array, xyz: jax.Array, features: jax.Array, valid: jax.Array, *,
                 epsilon: float = 1e-3, iterations: int = 25,
                 terms: Sequence[str] = TERMS,
                 orthogonality: tuple[float, float] = (1e-7, 1e-4)
                 ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """SoftClu's loss of one cloud.

  Args:
    logits: f32 [N, J] the cluster head's outputs.
    xyz: f32 [N, 3] unit-sphere coordinates (`jaxseg.ops.clouds.unit_sphere`).
    features: f32 [N, D] the backbone's point features (normalised here).
    valid: bool [N]; padding rows may hold NaN.
    epsilon, iterations: Sinkhorn's absolute regularisation and iteration count.
    terms: which transport terms to sum ('xyz', 'feature').
    orthogonality: weights of the orthogonality penalty on the (xyz, feature) centroids.
  Returns:
    loss f32 [], and its parts {'<term>': cross-entropy, '<term>_orthogonality': penalty}.
  """
  unknown = set(terms) - set(TERMS)
  if unknown or not terms:
    raise ValueError(f"unknown SoftClu terms {sorted(unknown)}; choose from {list(TERMS)}")
  weight = valid.astype(jnp.float32)[:, None]
  count = jnp.maximum(jnp.sum(weight), 1.0)
  logits = jnp.where(valid[:, None], logits.astype(jnp.float32), 0.0)
  log_scores = jax.nn.log_softmax(logits, axis=-1)
  scores = jnp.exp(log_scores) * weight                                          # [N, J]
  mass = jax.lax.stop_gradient(jnp.maximum(jnp.sum(scores, 0), 1e-4))           # [J]
  rows = {"xyz": jnp.where(valid[:, None], xyz.astype(jnp.float32), 0.0),
          "feature": l2_normalize(jnp.where(valid[:, None], features.astype(jnp.float32), 0.0))}
  total, parts = jnp.zeros((), jnp.float32), {}
  for term, penalty in zip(TERMS, orthogonality):
    if term not in terms:
      continue
    centroids = (scores.T @ rows[term]) / mass[:, None]                          # [J, D]
    if term == "xyz":
      diff = rows[term][:, None, :] - centroids[None]
      cost = jnp.sum(diff * diff, -1)
    else:
      centroids = l2_normalize(centroids)
      cost = 2.0 - 2.0 * rows[term] @ centroids.T
    targets = jax.lax.stop_gradient(sinkhorn_labels_from_cost(
        jax.lax.stop_gradient(cost), valid, epsilon=epsilon, num_iters=iterations).codes)
    cross_entropy = -jnp.sum(targets * log_scores * weight) / count
    orth = _orthogonality(centroids)
    parts[term], parts[f"{term}_orthogonality"] = cross_entropy, orth
    total = total + cross_entropy + penalty * orth
  return total, parts
