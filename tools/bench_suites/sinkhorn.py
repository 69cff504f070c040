"""Sinkhorn labelling: jaxseg.ops.sinkhorn (OTT-JAX, float32) vs a float64 numpy log-domain
Sinkhorn with the same cost (-<x, p>), epsilon and iteration count, side by side.

Our time excludes compilation (warm-up call first). Also reports the largest difference between
the two transport plans and the label agreement. POT (`ot.sinkhorn`, log-domain, same epsilon
and iteration count, early stopping off) is timed too when `import ot` works.
"""

from __future__ import annotations

import time
import warnings

import jax
import numpy as np
from scipy.special import logsumexp

from jaxseg.ops import sinkhorn as sk

_EPS = 0.05


def _numpy_sinkhorn(cost, a, b, eps, iters):
  f, g = np.zeros(len(a)), np.zeros(len(b))
  for _ in range(iters):
    g = eps * np.log(b) - eps * logsumexp((f[:, None] - cost) / eps, axis=0)
    f = eps * np.log(a) - eps * logsumexp((g[None, :] - cost) / eps, axis=1)
  return np.exp((f[:, None] + g[None, :] - cost) / eps)


def _pot_case(cost, a, b, iters, reference_plan) -> dict:
  import ot  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  with warnings.catch_warnings():  # "did not converge": a fixed iteration count is the point.
    warnings.simplefilter("ignore", UserWarning)
    plan = ot.sinkhorn(a, b, cost, _EPS, method="sinkhorn_log", numItermax=iters, stopThr=0.0)
  pot_s = time.perf_counter() - start
  return {"pot_s": round(pot_s, 3),
          "pot_max_rel_plan_diff": float(np.max(np.abs(plan - reference_plan)) /
                                         reference_plan.max())}


def _case(num_rows, dim, k, iters, with_pot: bool) -> dict:
  rng = np.random.default_rng(0)
  feats = rng.normal(size=(num_rows, dim)).astype(np.float32)
  feats /= np.linalg.norm(feats, axis=1, keepdims=True)
  protos = rng.normal(size=(k, dim)).astype(np.float32)
  protos /= np.linalg.norm(protos, axis=1, keepdims=True)
  solve = jax.jit(lambda f, p: sk.sinkhorn_labels(f, p, epsilon=_EPS, num_iters=iters))
  jax.block_until_ready(solve(feats, protos))
  start = time.perf_counter()
  ours = jax.block_until_ready(solve(feats, protos))
  ours_s = time.perf_counter() - start

  cost = -(feats.astype(np.float64) @ protos.astype(np.float64).T)
  start = time.perf_counter()
  plan = _numpy_sinkhorn(cost, np.full(num_rows, 1 / num_rows), np.full(k, 1 / k), _EPS, iters)
  numpy_s = time.perf_counter() - start
  ours_plan = np.asarray(ours.transport, np.float64)
  pot = _pot_case(cost, np.full(num_rows, 1 / num_rows), np.full(k, 1 / k), iters, plan) if (
      with_pot) else {}
  if pot:
    pot["speedup_vs_pot"] = round(pot["pot_s"] / ours_s, 1)
  return {**pot, "rows": num_rows, "dim": dim, "k": k, "iterations": iters, "epsilon": _EPS,
          "ours_s": round(ours_s, 4), "numpy_f64_s": round(numpy_s, 3),
          "speedup_vs_numpy": round(numpy_s / ours_s, 1),
          "max_rel_plan_diff": float(np.max(np.abs(ours_plan - plan)) / plan.max()),
          "label_agreement": float(np.mean(np.asarray(ours.labels) == plan.argmax(1)))}


def run(quick: bool) -> dict:
  try:
    import ot  # pylint: disable=g-import-not-at-top
    pot = f"POT {ot.__version__}"
  except ImportError:
    pot = None
  rows, iters = (2_000, 20) if quick else (20_000, 50)
  return {"device": str(jax.devices()[0]), "pot": pot or "POT not installed",
          "cases": [_case(rows, 128, k, iters, pot is not None) for k in (20, 300)]}
