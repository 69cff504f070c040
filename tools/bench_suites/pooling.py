"""Super-voxel pooling: jaxseg.ops.pooling (segment_sum / segment_max) vs numpy.

Mean: numpy `np.add.at` and a per-column `np.bincount`; max: `np.maximum.at`. Random ids with
5% padding (-1). Our time excludes compilation (warm-up call first); each timed once.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from jaxseg.ops import pooling


def _time(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def _numpy_mean_add_at(feats, ids, s):
  keep = ids >= 0
  sums = np.zeros((s, feats.shape[1]), np.float32)
  np.add.at(sums, ids[keep], feats[keep])
  counts = np.bincount(ids[keep], minlength=s)
  return sums / np.maximum(counts, 1)[:, None]


def _numpy_mean_bincount(feats, ids, s):
  keep = ids >= 0
  counts = np.bincount(ids[keep], minlength=s)
  sums = np.stack([np.bincount(ids[keep], feats[keep, d], minlength=s)
                   for d in range(feats.shape[1])], axis=1)
  return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def _numpy_max(feats, ids, s):
  keep = ids >= 0
  out = np.full((s, feats.shape[1]), -np.inf, np.float32)
  np.maximum.at(out, ids[keep], feats[keep])
  return np.where(np.isfinite(out), out, 0.0)


def run(quick: bool) -> dict:
  points, segments, dim = (100_000, 5_000, 32) if quick else (1_000_000, 50_000, 32)
  rng = np.random.default_rng(0)
  feats = rng.normal(size=(points, dim)).astype(np.float32)
  ids = rng.integers(0, segments, points).astype(np.int32)
  ids[rng.random(points) < 0.05] = -1
  mean_fn = jax.jit(pooling.segment_mean, static_argnums=2)
  max_fn = jax.jit(pooling.segment_max, static_argnums=2)
  feats_dev, ids_dev = jax.device_put(feats), jax.device_put(ids)
  jax.block_until_ready((mean_fn(feats_dev, ids_dev, segments), max_fn(feats_dev, ids_dev,
                                                                       segments)))
  ours_mean, ours_mean_s = _time(lambda: jax.block_until_ready(
      mean_fn(feats_dev, ids_dev, segments)))
  ours_max, ours_max_s = _time(lambda: jax.block_until_ready(
      max_fn(feats_dev, ids_dev, segments)))
  ref_mean, add_at_s = _time(lambda: _numpy_mean_add_at(feats, ids, segments))
  _, bincount_s = _time(lambda: _numpy_mean_bincount(feats, ids, segments))
  ref_max, max_at_s = _time(lambda: _numpy_max(feats, ids, segments))
  return {"device": str(jax.devices()[0]), "points": points, "segments": segments, "dim": dim,
          "mean": {"ours_s": round(ours_mean_s, 4), "numpy_add_at_s": round(add_at_s, 4),
                   "numpy_bincount_s": round(bincount_s, 4),
                   "speedup_vs_add_at": round(add_at_s / ours_mean_s, 1),
                   "speedup_vs_bincount": round(bincount_s / ours_mean_s, 1),
                   "max_abs_diff": float(np.max(np.abs(np.asarray(ours_mean) - ref_mean)))},
          "max": {"ours_s": round(ours_max_s, 4), "numpy_maximum_at_s": round(max_at_s, 4),
                  "speedup_vs_maximum_at": round(max_at_s / ours_max_s, 1),
                  "max_abs_diff": float(np.max(np.abs(np.asarray(ours_max) - ref_max)))}}
