"""PointDC stage kernels, each measured side by side with a reference in one process.

- projection: jaxseg.methods.pointdc.projection.project_points (jitted, all views at once, cell z-buffer)
  vs a float64 numpy implementation of the same rule (np.minimum.at z-buffer per view).
- pseudo-labels: the SVC labelling of all training super-voxels: Sinkhorn transport labels
  (OTT-JAX, equipartition) vs plain nearest-centroid labels (cluster sizes of each), plus the
  spherical K-means round (k-means++ and 80 Lloyd iterations; the kmeans suite compares
  Lloyd iterations with scikit-learn).
- train step: one SVC training step of res16fpn18 (frozen cosine classifier, cross-entropy)
  through jaxseg.train.parallel in the 'jit', 'shard_map' and 'pmap' modes on the same batch
  and devices: the cost of each parallel mode's plumbing.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench_suites.sparse_engine import packed_batch
from jaxseg import losses
from jaxseg.methods.pointdc import projection
from jaxseg.data.sharding import data_mesh, to_global_arrays
from jaxseg.models.voxel_net import VoxelNet, geometry_spec, net_fields
from jaxseg.ops import kmeans
from jaxseg.ops.clustering import cluster_supervoxels
from jaxseg.ops.features import cosine_logits
from jaxseg.methods.pointdc.pseudo_labels import sinkhorn_pseudo_labels
from jaxseg.testing import look_at
from jaxseg.train import optim
from jaxseg.train.parallel import make_train_step, replicate
from jaxseg.train.state import TrainState


def _timed(fn, *args, repeats: int):
  """(output, median seconds of `repeats` calls after one warm-up call)."""
  out = jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return out, float(np.median(times))


def _numpy_projection(points, w2c, k, size, stride, tolerance):
  """float64 reference of project_points' rule without a depth image: visible [V, N]."""
  width, height = size
  cells_x = -(-width // stride)
  visible = np.zeros((len(w2c), len(points)), bool)
  homogeneous = np.c_[points, np.ones(len(points))]
  for v, t in enumerate(w2c):
    cam = homogeneous @ t.T
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
      u = k[0, 0] * cam[:, 0] / z + k[0, 2]
      w = k[1, 1] * cam[:, 1] / z + k[1, 2]
    inside = (z > 1e-3) & (u >= -0.5) & (u < width - 0.5) & (w >= -0.5) & (w < height - 0.5)
    cell = (np.round(w).astype(np.int64) // stride) * cells_x + np.round(u).astype(np.int64) // stride
    zmin = np.full(cells_x * (-(-height // stride)), np.inf)
    np.minimum.at(zmin, cell[inside], z[inside])
    visible[v, inside] = z[inside] <= zmin[cell[inside]] + tolerance
  return visible


def _projection(quick: bool) -> dict:
  rng = np.random.default_rng(0)
  num_points, num_views = (20_000, 8) if quick else (100_000, 60)
  points = np.c_[rng.uniform(-3, 3, (num_points, 2)), rng.uniform(0, 2.5, num_points)]
  angles = np.linspace(0, 2 * np.pi, num_views, endpoint=False)
  poses = np.stack([look_at(np.array([4 * np.cos(a), 4 * np.sin(a), 1.5]), [0, 0, 1])
                    for a in angles])
  w2c = np.linalg.inv(poses)
  k = np.array([[280.0, 0, 160], [0, 280.0, 120], [0, 0, 1]])
  size, stride, tolerance = (320, 240), 4, 0.05
  fn = jax.jit(functools.partial(projection.project_points, image_size=size,
                                 zbuffer_stride=stride, occlusion_tolerance=tolerance))
  args = (points.astype(np.float32), np.ones(num_points, bool), w2c.astype(np.float32),
          k.astype(np.float32))
  out, ours_s = _timed(fn, *args, repeats=3)
  start = time.perf_counter()
  reference = _numpy_projection(points, w2c, k, size, stride, tolerance)
  numpy_s = time.perf_counter() - start
  agreement = float(np.mean(np.asarray(out.visible) == reference))
  return {"points": num_points, "views": num_views, "image": list(size), "zbuffer_stride": stride,
          "ours_s": round(ours_s, 4), "numpy_float64_s": round(numpy_s, 3),
          "speedup_vs_numpy": round(numpy_s / ours_s, 1),
          "visibility_agreement": round(agreement, 5),
          "ours_point_views_per_s": round(num_points * num_views / ours_s)}


def _pseudo_labels(quick: bool) -> dict:
  rng = np.random.default_rng(1)
  rows, dim, k = (20_000, 64, 20) if quick else (100_000, 128, 20)
  centres = rng.normal(size=(k, dim))
  feats = centres[rng.integers(0, k, rows)] + 0.8 * rng.normal(size=(rows, dim))
  feats = (feats / np.linalg.norm(feats, axis=1, keepdims=True)).astype(np.float32)
  weights = np.ones(rows, np.float32)
  counts = rng.integers(30, 3000, rows).astype(np.float32)

  cluster = lambda: cluster_supervoxels(feats, weights, k, num_iters=80, seed=0)
  centroids, kmeans_s = _timed(cluster, repeats=1)
  # The same fit without Hamerly's bounds ("auto" takes them on CPU from 65,536 rows).
  lloyd = lambda: kmeans.kmeans(feats, k, num_iters=80, metric="cosine", weights=weights,
                                seed=0, algorithm="lloyd").centroids
  _, lloyd_s = _timed(lloyd, repeats=1)

  sinkhorn = lambda: sinkhorn_pseudo_labels(feats, weights > 0, counts,
                                            centroids=centroids, num_iters=100)
  labels, sinkhorn_s = _timed(sinkhorn, repeats=2)
  nearest = jax.jit(lambda f, c: jnp.argmax(f @ c.T, axis=1))
  nearest_labels, nearest_s = _timed(nearest, feats, centroids, repeats=3)
  sizes = np.bincount(np.asarray(labels), minlength=k)
  nearest_sizes = np.bincount(np.asarray(nearest_labels), minlength=k)
  return {"supervoxels": rows, "dim": dim, "clusters": k,
          "kmeans_algorithm": kmeans.resolve_algorithm("auto", rows, None),
          "kmeans_seeding_and_80_iters_s": round(kmeans_s, 3),
          "kmeans_lloyd_seeding_and_80_iters_s": round(lloyd_s, 3),
          "sinkhorn_100_iters_s": round(sinkhorn_s, 3), "nearest_centroid_s": round(nearest_s, 4),
          "sinkhorn_cluster_size_min_max": [int(sizes.min()), int(sizes.max())],
          "nearest_cluster_size_min_max": [int(nearest_sizes.min()), int(nearest_sizes.max())]}


def _train_step(quick: bool) -> dict:
  rng = np.random.default_rng(2)
  target = 5_000 if quick else 30_000
  devices = jax.devices()
  spec = geometry_spec("res16fpn18")
  scenes = [_surface_voxels(rng, target) for _ in range(len(devices) * 2)]
  batch, _, _ = packed_batch(scenes, spec, [rng.normal(size=(len(v), 6)).astype(np.float32)
                                           for v in scenes], num_packs=len(devices))
  batch["pseudo_labels"] = np.where(batch["point_mask"],
                                    rng.integers(0, 20, batch["point_mask"].shape),
                                    -1).astype(np.int32)
  centroids = rng.normal(size=(20, 128)).astype(np.float32)
  centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)

  def loss_fn(params, model_state, batch, extra, axis_name):
    net = VoxelNet(spec, axis_name=axis_name)
    out, updates = net.apply({"params": params, **model_state}, batch, train=True,
                             mutable=["batch_stats"])
    logits = cosine_logits(out["features"], extra["centroids"], 1.0, normalize_features=False)
    loss_sum, count = losses.cross_entropy_loss(logits, batch["pseudo_labels"],
                                                batch["point_mask"])
    return loss_sum, count, (updates, {})

  fields = net_fields(spec) + ("pseudo_labels",)
  batch = {k: v for k, v in batch.items() if k in fields}
  net = VoxelNet(spec)
  variables = jax.jit(lambda b: net.init(jax.random.key(0), b, train=False))(
      {k: jnp.asarray(v[:1]) for k, v in batch.items()})
  tx = optim.make_optimizer({"name": "sgd", "lr": 0.03, "momentum": 0.9, "dampening": 0.1,
                             "weight_decay": 1e-4})
  mesh = data_mesh()
  device_batch = to_global_arrays(batch, mesh)
  extra = {"centroids": replicate(jnp.asarray(centroids), mesh)}
  voxels = int(batch["level0_mask"].sum())
  rows = []
  for mode in ("jit", "shard_map", "pmap"):
    state = replicate(TrainState.create(variables["params"],
                                        {"batch_stats": variables["batch_stats"]}, tx), mesh)
    step = make_train_step(loss_fn, mesh, mode)
    start = time.perf_counter()
    state, metrics = step(state, device_batch, extra)
    jax.block_until_ready(metrics)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(2):
      state, metrics = step(state, device_batch, extra)
    jax.block_until_ready(metrics)
    step_s = (time.perf_counter() - start) / 2
    rows.append({"mode": mode, "step_s": round(step_s, 3), "first_call_s": round(first_s, 1),
                 "voxels_per_s": round(voxels / step_s),
                 "loss": round(float(metrics["loss"]), 4)})
    print(rows[-1], flush=True)
  return {"model": "res16fpn18 + frozen cosine classifier, SGD (torch rules)",
          "devices": len(devices), "scenes": len(scenes), "voxels": voxels,
          "voxels_per_scene": target, "modes": rows}


def _surface_voxels(rng, target: int) -> np.ndarray:
  """About `target` voxels on the floor, walls and box tops of a room, sorted, unique."""
  side = int(np.sqrt(target / 3)) + 2
  cells = rng.integers(0, side, (target * 2, 3))
  face = rng.integers(0, 3, len(cells))
  cells[np.arange(len(cells)), face] = 0
  voxels = np.unique(cells, axis=0)[:target]
  return voxels[np.lexsort(voxels.T[::-1])].astype(np.int32)


def run(quick: bool) -> dict:
  return {"backend": jax.default_backend(), "projection": _projection(quick),
          "pseudo_labels": _pseudo_labels(quick), "train_step": _train_step(quick)}
