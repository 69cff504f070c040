"""Sinkhorn (optimal transport) pseudo-labels with OTT-JAX, SwAV / PointDC style.

  out = sinkhorn_labels(features, prototypes, mask, epsilon=0.05, num_iters=50)
  out.codes   # f32 [N, K], rows sum to 1 (0 for padding rows)
  out.labels  # int32 [N], argmax of the codes, -1 for padding rows

Rows are points or super-voxels, columns are clusters. The row marginal is `mask * row_weights`
normalised to 1 (padding rows carry zero mass, so they receive no transport); the column
marginal is uniform (equipartition: every cluster receives 1/K of the mass) unless
`col_marginal` is given. Exactly `num_iters` log-domain Sinkhorn updates are run
(`min_iterations == max_iterations`, a fixed-length scan), with an absolute `epsilon`, so the
functions are jittable and vmappable over scenes. Wrap the outputs in `jax.lax.stop_gradient`
when they are used as training targets.
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from ott.geometry import costs
from ott.geometry import geometry
from ott.geometry import pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn

from jaxseg.errors import InputError

Cost = Literal["neg_dot", "cosine"]
_COSTS = {"neg_dot": costs.NegDotProduct, "cosine": costs.Cosine}


class SinkhornLabels(NamedTuple):
  codes: jax.Array      # f32 [N, K], transport rows normalised to sum 1; 0 for padding rows
  labels: jax.Array     # int32 [N], argmax of codes; -1 for padding rows
  transport: jax.Array  # f32 [N, K], the transport plan (total mass 1)


def _marginals(mask, row_weights, col_marginal, num_cols):
  """Normalised row marginal a [N] (0 on padding) and column marginal b [K]."""
  a = mask.astype(jnp.float32)
  if row_weights is not None:
    a = a * jnp.asarray(row_weights, jnp.float32)
  a = a / jnp.maximum(jnp.sum(a), 1e-30)
  if col_marginal is None:
    b = jnp.full((num_cols,), 1.0 / num_cols, jnp.float32)
  else:
    b = jnp.asarray(col_marginal, jnp.float32)
    b = b / jnp.sum(b)
  return a, b


# Jitted: called eagerly, OTT's solver compiles about 20 small programs per problem shape.
@functools.partial(jax.jit, static_argnums=3)
def _solve(geom, a, b, num_iters) -> SinkhornLabels:
  problem = linear_problem.LinearProblem(geom, a=a, b=b)
  solver = sinkhorn.Sinkhorn(min_iterations=num_iters, max_iterations=num_iters,
                             inner_iterations=num_iters)
  transport = solver(problem).matrix
  valid = a > 0
  rows = jnp.sum(transport, axis=1, keepdims=True)
  codes = jnp.where(valid[:, None], transport / jnp.maximum(rows, 1e-30), 0.0)
  labels = jnp.where(valid, jnp.argmax(transport, axis=1).astype(jnp.int32), -1)
  return SinkhornLabels(codes, labels, transport)


def _check(num_iters: int, epsilon: float) -> None:
  if num_iters < 1:
    raise InputError(None, f"num_iters={num_iters} must be >= 1", "use e.g. num_iters=50")
  if not isinstance(epsilon, jax.Array) and epsilon <= 0:
    raise InputError(None, f"epsilon={epsilon} must be > 0", "use e.g. epsilon=0.05")


def sinkhorn_labels(features: jax.Array, prototypes: jax.Array, mask: jax.Array | None = None,
                    *, epsilon: float = 0.05, num_iters: int = 50, cost: Cost = "neg_dot",
                    row_weights: jax.Array | None = None,
                    col_marginal: jax.Array | None = None) -> SinkhornLabels:
  """Soft codes and hard labels by entropic OT between rows and prototypes.

  Args:
    features: float [N, D] point / super-voxel features (or scores).
    prototypes: float [K, D] cluster prototypes.
    mask: bool [N], False for padding rows (zero mass, label -1); None = all valid.
    epsilon: absolute entropic regularisation (cost units).
    num_iters: exact number of Sinkhorn updates (static).
    cost: "neg_dot" (c = -<x, p>, OTT NegDotProduct) or "cosine" (c = 1 - cos, OTT Cosine).
    row_weights: float [N] optional row masses before masking/normalisation, e.g. the point
      count of each super-voxel; None = uniform over valid rows.
    col_marginal: float [K] optional cluster masses (normalised to 1); None = equipartition.

  Returns:
    SinkhornLabels(codes f32 [N, K], labels int32 [N], transport f32 [N, K]).
  """
  if cost not in _COSTS:
    raise InputError(None, f"unknown Sinkhorn cost {cost!r}", f"use one of {sorted(_COSTS)}")
  _check(num_iters, epsilon)
  features = jnp.asarray(features, jnp.float32)
  prototypes = jnp.asarray(prototypes, jnp.float32)
  mask = jnp.ones(features.shape[0], bool) if mask is None else jnp.asarray(mask, bool)
  # Padding rows may hold garbage (NaN); zero them so the cost matrix stays finite.
  features = jnp.where(mask[:, None], features, 0.0)
  a, b = _marginals(mask, row_weights, col_marginal, prototypes.shape[0])
  geom = pointcloud.PointCloud(features, prototypes, cost_fn=_COSTS[cost](), epsilon=epsilon)
  return _solve(geom, a, b, num_iters)


def sinkhorn_labels_from_cost(cost_matrix: jax.Array, mask: jax.Array | None = None, *,
                              epsilon: float = 0.05, num_iters: int = 50,
                              row_weights: jax.Array | None = None,
                              col_marginal: jax.Array | None = None) -> SinkhornLabels:
  """As `sinkhorn_labels` but from a precomputed cost matrix f32 [N, K] (rows = points)."""
  _check(num_iters, epsilon)
  cost_matrix = jnp.asarray(cost_matrix, jnp.float32)
  mask = jnp.ones(cost_matrix.shape[0], bool) if mask is None else jnp.asarray(mask, bool)
  cost_matrix = jnp.where(mask[:, None], cost_matrix, 0.0)
  a, b = _marginals(mask, row_weights, col_marginal, cost_matrix.shape[1])
  geom = geometry.Geometry(cost_matrix=cost_matrix, epsilon=epsilon)
  return _solve(geom, a, b, num_iters)
