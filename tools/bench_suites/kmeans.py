"""K-means Lloyd: jaxseg.ops.kmeans vs scikit-learn KMeans vs faiss-cpu, side by side.

Two cases (full; --quick runs small sizes): 1,000,000 x 128 rows with K = 20 and 80 iterations,
and 200,000 x 128 with K = 300 and 20 iterations. Float32 blobs; every library starts from the
same initial centroids (K distinct random rows) and runs the same number of Lloyd iterations on
all rows plus the final assignment pass that gives the labels and the inertia:
- ours: `kmeans(x, k, num_iters, init)` on device-resident rows, timed after one warm-up call
  with identical shapes (compilation excluded); `algorithm`, `sum_method` and `chunk_size` are
  the defaults (on CPU with this many rows, "auto" takes Hamerly's bounds; "ours_lloyd" is the
  plain Lloyd pass over every row, the previous default).
  "ours" runs on one CPU device; "ours_mesh" shards the rows over one CPU device per core
  (`mesh=`, psum per iteration). XLA runs each device's program on its own thread, while one
  device does not spread this fine-grained loop over the cores; so the suite runs in a child
  process started with XLA_FLAGS=--xla_force_host_platform_device_count=<cores> (both variants
  measured there, side by side with the others).
- scikit-learn: `KMeans(algorithm="lloyd", n_init=1, tol=0, max_iter=iters, init=init)`. It stops
  early on a strict convergence (no label changes); `iterations` says how many it ran.
  "sklearn_elkan" is its triangle-inequality variant (`algorithm="elkan"`: K lower bounds a row),
  the peer of our bounds.
- faiss (benchmark only, not in requirements.txt; skipped with a note when not importable):
  `faiss.Kmeans(d, k, niter=iters, max_points_per_centroid=<rows>)` trained with
  `init_centroids=init`, plus `index.search(x, 1)` for the final labels and inertia (faiss's own
  objective is that of the last assignment, before the last update).
- subsampling: faiss's default (`max_points_per_centroid=256`: fit on a random K*256 rows) and
  ours with the same option, each followed by a full assignment; `inertia_gap` is relative to
  the full-data run of the same library.
Each timed call runs `repeats` times, interleaved (the full-data faiss run once); the minimum
is reported. The machine may be shared (`load_average_1min` at the start and end of a case):
only ratios measured in the same run are meaningful.

Cost model: XLA's `cost_analysis()` of the compiled single-device Lloyd step
(`kmeans.lloyd_step`, one pass over all rows). XLA counts a while-loop body once, so the step
is compiled for one block and scaled by the number of blocks; its "bytes accessed" counts every
HLO operand and result (block intermediates included), so the row bytes (N * D * 4, read once
per iteration) are reported as the memory floor. The H100 roofline uses 3.35 TB/s HBM,
67 TFLOP/s float32 (no tensor cores: precision=HIGHEST) and 989 TFLOP/s dense bf16 (tensor
cores; a bf16x3 float32 emulation costs 3 passes).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from jaxseg.ops import kmeans as km

try:
  import faiss  # pylint: disable=g-import-not-at-top
except ImportError:  # Benchmark-only dependency.
  faiss = None

_H100 = {"hbm_bytes_per_s": 3.35e12, "f32_flops_per_s": 67e12, "bf16_flops_per_s": 989e12}
_FAISS_DEFAULT_MAX_POINTS = 256
_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def _rel(value: float, ref: float) -> float:
  return float((value - ref) / ref)


def _ours(x, init, k, iters, **options):
  def run():
    result = jax.block_until_ready(km.kmeans(x, k, num_iters=iters, init=init, **options))
    return {"iterations": iters, "inertia": float(result.inertia),
            "labels": np.asarray(result.assignments)}
  return run


def _sklearn(x, init, k, iters, algorithm="lloyd"):
  def run():
    model = KMeans(n_clusters=k, init=init, n_init=1, max_iter=iters, tol=0.0,
                   algorithm=algorithm).fit(x)
    return {"iterations": int(model.n_iter_), "inertia": float(model.inertia_),
            "labels": model.labels_}
  return run


def _faiss(x, init, k, iters, max_points_per_centroid):
  """Train from `init`, then assign every row (faiss's own objective is the last one before
  the last update)."""
  def run():
    model = faiss.Kmeans(x.shape[1], k, niter=iters, seed=0,
                         max_points_per_centroid=max_points_per_centroid)
    model.train(x, init_centroids=init)
    dist, labels = model.index.search(x, 1)
    return {"iterations": iters, "inertia": float(dist.sum(dtype=np.float64)),
            "labels": labels[:, 0]}
  return run


def _contenders(x: np.ndarray, x_dev: jax.Array, init: np.ndarray, k: int, iters: int) -> dict:
  """name -> zero-argument call returning {"iterations", "inertia", "labels"}."""
  sub = {"max_points_per_centroid": _FAISS_DEFAULT_MAX_POINTS}
  calls = {"ours": _ours(x_dev, init, k, iters),
           "ours_lloyd": _ours(x_dev, init, k, iters, algorithm="lloyd")}
  if jax.device_count() > 1:
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    calls["ours_mesh"] = _ours(x_dev, init, k, iters, mesh=mesh)
    calls["ours_lloyd_mesh"] = _ours(x_dev, init, k, iters, mesh=mesh, algorithm="lloyd")
  calls["ours_subsample"] = _ours(x_dev, init, k, iters, **sub)
  calls["sklearn"] = _sklearn(x, init, k, iters)
  calls["sklearn_elkan"] = _sklearn(x, init, k, iters, algorithm="elkan")
  if faiss is not None:
    calls["faiss"] = _faiss(x, init, k, iters, max_points_per_centroid=len(x))
    calls["faiss_subsample"] = _faiss(x, init, k, iters, **sub)
  return calls


def _measure(calls: dict, repeats: int) -> tuple[dict, dict]:
  """(last result, minimum seconds) per call: `repeats` interleaved rounds, so that load
  changes hit every library alike; the full-data faiss run (the slowest by far) only once."""
  for name, fn in calls.items():
    if name.startswith("ours"):
      fn()                     # Compile (warm-up with identical shapes).
  results, seconds = {}, {name: float("inf") for name in calls}
  for rep in range(repeats):
    for name, fn in calls.items():
      if name == "faiss" and rep:
        continue
      start = time.perf_counter()
      results[name] = fn()
      seconds[name] = min(seconds[name], time.perf_counter() - start)
  return results, seconds


def _entries(results: dict, seconds: dict) -> dict:
  """Per library: seconds, iterations, inertia, and the side-by-side ratios and gaps."""
  ref = results["sklearn"]
  out = {}
  for name, result in results.items():
    entry = {"seconds": round(seconds[name], 3), "iterations": result["iterations"],
             "inertia": result["inertia"],
             "inertia_rel_diff_vs_sklearn": _rel(result["inertia"], ref["inertia"]),
             "assignment_agreement_vs_sklearn": float(np.mean(result["labels"] == ref["labels"])),
             "speedup_vs_sklearn": round(seconds["sklearn"] / seconds[name], 2),
             "speedup_vs_sklearn_elkan": round(seconds["sklearn_elkan"] / seconds[name], 2)}
    if "faiss" in seconds:
      entry["speedup_vs_faiss"] = round(seconds["faiss"] / seconds[name], 2)
    if name.endswith("_subsample"):
      full = name[:-len("_subsample")]
      entry["max_points_per_centroid"] = _FAISS_DEFAULT_MAX_POINTS
      entry["inertia_gap_vs_full_data"] = _rel(result["inertia"], results[full]["inertia"])
      if "faiss_subsample" in seconds:
        entry["speedup_vs_faiss_subsample"] = round(
            seconds["faiss_subsample"] / seconds[name], 2)
    out[name] = entry
  return out


def _cost_per_iteration(num_rows: int, dim: int, k: int, sum_method: str) -> dict:
  """XLA cost analysis of one single-device Lloyd iteration over all rows (CPU compile)."""
  chunk = km._chunk_rows(None, k, num_rows, 1, None)  # pylint: disable=protected-access
  blocks = -(-num_rows // chunk)
  step = jax.jit(functools.partial(km.lloyd_step, chunk_size=chunk, sum_method=sum_method))
  spec = jax.ShapeDtypeStruct
  compiled = step.lower(spec((chunk, dim), jnp.float32), spec((chunk,), jnp.float32),
                        spec((k, dim), jnp.float32)).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  flops, xla_bytes = blocks * cost["flops"], blocks * cost["bytes accessed"]
  row_bytes = num_rows * dim * 4
  f32_s = flops / _H100["f32_flops_per_s"]
  return {"sum_method": sum_method, "chunk_size": chunk, "blocks": blocks,
          "flops": flops, "xla_bytes_accessed": xla_bytes, "row_bytes_read_once": row_bytes,
          "analytic_distance_flops": 2 * num_rows * k * dim,
          "h100_memory_floor_s": row_bytes / _H100["hbm_bytes_per_s"],
          "h100_f32_compute_s": f32_s,
          "h100_bf16x3_compute_s": 3 * flops / _H100["bf16_flops_per_s"],
          "h100_estimate_s_f32": max(f32_s, row_bytes / _H100["hbm_bytes_per_s"])}


def _case(num_rows: int, dim: int, k: int, iters: int, repeats: int) -> dict:
  x, _ = make_blobs(n_samples=num_rows, n_features=dim, centers=k, cluster_std=4.0,
                    random_state=0)
  x = x.astype(np.float32)
  init = x[np.random.default_rng(0).choice(num_rows, k, replace=False)]
  start = time.perf_counter()
  x_dev = jax.block_until_ready(jnp.asarray(x))
  put_s = time.perf_counter() - start
  load_start = os.getloadavg()[0]
  results, seconds = _measure(_contenders(x, x_dev, init, k, iters), repeats)
  gpu_method = "onehot" if k <= km.ONEHOT_MAX_K else "segment_sum"
  cpu_method = km.resolve_sum_method("auto", k, None)
  out = {"rows": num_rows, "dim": dim, "k": k, "iterations": iters,
         "init": "k distinct random rows (seed 0), shared",
         "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
         "ours_config": {"sum_method": cpu_method, "mesh_devices": jax.device_count(),
                         "chunk_size": km._chunk_rows(None, k, num_rows, 1, None),  # pylint: disable=protected-access
                         "device_put_s": round(put_s, 3)},
         "results": _entries(results, seconds),
         "cost_per_iteration": {"cpu_" + m: _cost_per_iteration(num_rows, dim, k, m)
                                for m in sorted({cpu_method, gpu_method})},
         "h100_sum_method": gpu_method}
  if faiss is None:
    out["faiss"] = "skipped: faiss is not importable (pip install faiss-cpu; benchmark only)"
  return out


def _run_here(quick: bool) -> dict:
  cases = ([(50_000, 32, 20, 10), (20_000, 32, 100, 5)] if quick
           else [(1_000_000, 128, 20, 80), (200_000, 128, 300, 20)])
  return {"devices": [str(d) for d in jax.devices()], "xla_flags": os.environ.get("XLA_FLAGS"),
          "faiss": None if faiss is None else faiss.__version__,
          "cases": [_case(*case, repeats=3 if quick else 2) for case in cases]}


def _run_in_child(quick: bool, cores: int) -> dict:
  """_run_here in a child process with one CPU device per core."""
  tools = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {_DEVICES_FLAG}={cores}",
             PYTHONPATH=os.pathsep.join([os.path.dirname(tools), tools]))
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "kmeans.json")
    code = ("import json, sys; from bench_suites import kmeans; "
            f"json.dump(kmeans._run_here({quick}), open(sys.argv[1], 'w'))")
    subprocess.run([sys.executable, "-c", code, out], env=env, check=True)
    with open(out) as f:
      return json.load(f)


def run(quick: bool) -> dict:
  cores = os.cpu_count() or 1
  if cores == 1 or jax.device_count() > 1 or _DEVICES_FLAG in os.environ.get("XLA_FLAGS", ""):
    return _run_here(quick)
  return _run_in_child(quick, cores)
