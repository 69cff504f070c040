"""K-means Lloyd throughput (rows/s per iteration): jaxseg.ops.kmeans vs scikit-learn KMeans.

Same float32 blob data, same initial centroids (our k-means++), same iteration count, n_init=1,
algorithm="lloyd", tol=0, measured side by side in one process. Our time excludes compilation
(one warm-up call with identical shapes first) and includes the final assignment step, as
scikit-learn's does. The k-means++ seeding is timed separately.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from jaxseg.ops import kmeans as km


def _case(num_rows: int, dim: int, k: int, iters: int) -> dict:
  x, _ = make_blobs(n_samples=num_rows, n_features=dim, centers=k, cluster_std=4.0,
                    random_state=0)
  x = x.astype(np.float32)
  start = time.perf_counter()
  init = jax.block_until_ready(km.kmeans_plus_plus(jax.random.key(0), x, k))
  seeding_first_call_s = time.perf_counter() - start
  init = np.asarray(init)

  jax.block_until_ready(km.kmeans(x, k, num_iters=iters, init=init))  # compile
  start = time.perf_counter()
  ours = jax.block_until_ready(km.kmeans(x, k, num_iters=iters, init=init))
  ours_s = time.perf_counter() - start

  model = KMeans(n_clusters=k, init=init, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd")
  start = time.perf_counter()
  model.fit(x)
  sklearn_s = time.perf_counter() - start
  sklearn_iters = int(model.n_iter_)

  agree = float(np.mean(np.asarray(ours.assignments) == model.labels_))
  ours_rate = num_rows * iters / ours_s
  sklearn_rate = num_rows * sklearn_iters / sklearn_s
  return {"rows": num_rows, "dim": dim, "k": k, "iterations": iters,
          "sklearn_iterations_run": sklearn_iters,
          "ours_s": round(ours_s, 3), "sklearn_s": round(sklearn_s, 3),
          "ours_rows_per_s_per_iter": round(ours_rate), "sklearn_rows_per_s_per_iter":
          round(sklearn_rate), "speedup_vs_sklearn": round(ours_rate / sklearn_rate, 2),
          "assignment_agreement": round(agree, 5),
          "inertia_rel_diff": round(abs(float(ours.inertia) - model.inertia_) / model.inertia_, 7),
          "kmeanspp_seeding_first_call_s": round(seeding_first_call_s, 2)}


def run(quick: bool) -> dict:
  rows, dim, iters = (20_000, 32, 5) if quick else (200_000, 128, 10)
  return {"device": str(jax.devices()[0]),
          "cases": [_case(rows, dim, k, iters) for k in (20, 300)]}
