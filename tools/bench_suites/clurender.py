"""CluRender's cost on a real scan: the SoftClu train step against the rendering it would add.

On ScanNet scene0000_00 (the mini set's posed scan: its raw mesh vertices, voxelised at 5 cm,
and its first 8 posed frames at 320x240), side by side in one process:
- the SoftClu train step: res16fpn18 + the cluster head (J = 64), both transport terms (25
  Sinkhorn iterations each), Adam, one scene ('jit' step);
- the rendering branch alone: splatting the voxels with per-voxel colours into the 8 views
  (r = 4 px, K = 128), 2,048 covered pixels per view, and the RGB+XY transport loss (100
  Sinkhorn iterations) or the sliced Wasserstein distance (1,000 directions), forward and
  backward (gradients for the colours and the voxel positions); every voxel splatted into
  every view, or each view's voxels first gathered into a capacity sized from the host count
  of the voxels it sees (`max_points`, a rung of the capacity ladder);
- XLA's cost analysis of the rendering branch (FLOPs, bytes) and a roofline time for one
  H100 SXM (3.35 TB/s, 989 dense bf16 TFLOP/s).
The ratio (step + rendering) / step estimates a CluRender step against a SoftClu step; the
two are not fused into one step yet (the training step does not render).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from bench_suites.sparse_engine import _timed, packed_batch  # pylint: disable=protected-access
from jaxseg import config_defaults
from jaxseg.data import capacity
from jaxseg.data.sharding import data_mesh, to_global_arrays
from jaxseg.io import frames
from jaxseg.methods.clurender import image_loss, method, splatting
from jaxseg.methods.pointdc import projection
from jaxseg.models.voxel_net import VoxelNet, geometry_spec, net_fields
from jaxseg.testing import scannet_mini_root
from jaxseg.train import optim
from jaxseg.train.parallel import make_train_step, replicate
from jaxseg.train.state import TrainState

_SIZE = (320, 240)
_H100_BYTES_PER_S, _H100_FLOPS = 3.35e12, 989e12


def _scan(voxel_size: float):
  """(voxel cells int32 [V, 3], voxel centres f32 [V, 3] metres, mean colours f32 [V, 3],
  world-to-camera f32 [8, 4, 4], intrinsics f32 [3, 3] at 320x240, photos f32 [8, H, W, 3])."""
  root = scannet_mini_root()
  cloud = np.fromfile(os.path.join(root, "points", "scene0000_00.bin"),
                      np.float32).reshape(-1, 6)
  cells = np.floor(cloud[:, :3] / voxel_size).astype(np.int64)
  cells, inverse = np.unique(cells, axis=0, return_inverse=True)
  inverse = inverse.reshape(-1)
  counts = np.bincount(inverse)
  centres = np.stack([np.bincount(inverse, cloud[:, i]) for i in range(3)], -1) / counts[:, None]
  colours = np.stack([np.bincount(inverse, cloud[:, 3 + i]) for i in range(3)],
                     -1) / counts[:, None] / 255.0
  posed = os.path.join(root, "posed", "scene0000_00")
  ids = sorted(f[:-4] for f in os.listdir(posed) if f.endswith(".jpg"))[:8]
  first = Image.open(os.path.join(posed, ids[0] + ".jpg"))
  intrinsics = frames.scale_intrinsics(frames.read_intrinsics(os.path.join(posed, "intrinsic.txt")),
                                       (first.width, first.height), _SIZE)
  poses = np.stack([frames.read_matrix(os.path.join(posed, i + ".txt"), fix="") for i in ids])
  photos = np.stack([np.asarray(Image.open(os.path.join(posed, i + ".jpg")).resize(
      _SIZE, Image.BILINEAR), np.float32) / 255.0 for i in ids])
  w2c = np.asarray(projection.world_to_camera(poses.astype(np.float32)))
  cells = cells - cells.min(0)
  order = np.lexsort(cells.T[::-1])
  return (cells[order].astype(np.int32), centres[order].astype(np.float32),
          colours[order].astype(np.float32), w2c, intrinsics, photos)


def _softclu_step(cells, colours, repeats):
  spec = geometry_spec("res16fpn18")
  feats = np.concatenate([colours, np.zeros_like(colours)], -1)
  batch, _, _ = packed_batch([cells], spec, [feats], num_packs=len(jax.devices()))
  c = config_defaults.clurender_config()

  def loss_fn(params, model_state, batch, extra, axis_name):
    del extra
    net = VoxelNet(spec, axis_name=axis_name, cluster_dim=int(c.clusters))
    out, updates = net.apply({"params": params, **model_state}, batch, train=True,
                             mutable=["batch_stats"])
    scene = jnp.where(batch["level0_mask"], 0, -1)
    losses, present = jax.vmap(lambda l, f, x, s: method.scene_losses(l, f, x, s, 1, c))(
        out["voxel_cluster_logits"], out["voxel_features"], batch["voxel_coords"], scene)
    return jnp.sum(losses), jnp.sum(present).astype(jnp.float32), (updates, {})

  fields = net_fields(spec)
  batch = {k: v for k, v in batch.items() if k in fields}
  net = VoxelNet(spec, cluster_dim=int(c.clusters))
  variables = jax.jit(lambda b: net.init(jax.random.key(0), b, train=False))(
      {k: jnp.asarray(v[:1]) for k, v in batch.items()})
  mesh = data_mesh()
  tx = optim.make_optimizer({"name": "adam", "lr": 1e-3, "weight_decay": 1e-4})
  state = replicate(TrainState.create(variables["params"],
                                      {"batch_stats": variables["batch_stats"]}, tx), mesh)
  step = make_train_step(loss_fn, mesh, "jit", donate=False)
  device_batch = to_global_arrays(batch, mesh)
  cost = step.lower(state, device_batch, {}).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  holder = {"state": state}

  def run_step():
    holder["state"], metrics = step(holder["state"], device_batch, {})
    return metrics["loss"]

  return _timed(run_step, repeats=repeats), _roofline(cost)


def _roofline(cost) -> dict:
  """GFLOP, GB moved and the H100 roofline time (ms) of an XLA cost analysis."""
  flops, moved = float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))
  return {"gflops": round(flops / 1e9, 2), "gbytes_moved": round(moved / 1e9, 2),
          "h100_roofline_ms": round(1e3 * max(flops / _H100_FLOPS, moved / _H100_BYTES_PER_S),
                                    2)}


def _render_loss(kind: str, w2c, intrinsics, photos, pixels: int, max_points: int | None):
  directions = image_loss.projection_directions(jax.random.key(1), 1000)

  def loss(points, colours):
    total = jnp.zeros((), jnp.float32)
    for view in range(w2c.shape[0]):
      image, coverage = splatting.render_view(points, colours, jnp.ones(len(points), bool),
                                              w2c[view], intrinsics, _SIZE,
                                              max_points=max_points)
      rendered, real, valid = image_loss.pixel_samples(image, coverage, photos[view],
                                                       jax.random.key(view), pixels)
      if kind == "rgbxy_ot":
        total += image_loss.rgbxy_ot_loss(rendered, real, valid)
      else:
        total += image_loss.sliced_wasserstein(rendered, real, directions)
    return total

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def run(quick: bool) -> dict:
  repeats = 1 if quick else 3
  cells, centres, colours, w2c, intrinsics, photos = _scan(0.05)
  views = 2 if quick else 8
  w2c, photos = w2c[:views], photos[:views]
  pixels = 512 if quick else 2048
  step_s, step_cost = _softclu_step(cells, colours, repeats)
  print({"softclu_step_s": step_s, **step_cost}, flush=True)
  seen = max(int(np.sum(splatting.in_view(centres, np.ones(len(centres), bool), w2c[v],
                                             intrinsics, _SIZE))) for v in range(views))
  cap = capacity.rungs("points", seen)[-1]
  rows = []
  for kind, max_points in (("rgbxy_ot", None), ("rgbxy_ot", cap), ("sliced_wasserstein", cap)):
    fn = _render_loss(kind, w2c, intrinsics, photos, pixels, max_points)
    seconds = _timed(fn, centres, colours, repeats=repeats)
    cost = fn.lower(centres, colours).compile().cost_analysis()
    cost = _roofline(cost[0] if isinstance(cost, (list, tuple)) else cost)
    rows.append({"image_loss": kind, "points_per_view": max_points or len(centres),
                 "render_and_loss_fwd_bwd_s": round(seconds, 3),
                 "estimated_step_ratio": round((step_s + seconds) / step_s, 2), **cost,
                 "estimated_h100_roofline_step_ratio": round(
                     (step_cost["h100_roofline_ms"] + cost["h100_roofline_ms"])
                     / step_cost["h100_roofline_ms"], 2)})
    print(rows[-1], flush=True)
  return {"scene": "scene0000_00 (mini set, raw mesh vertices)", "voxel_size_m": 0.05,
          "voxels": int(len(cells)), "most_voxels_in_one_view": seen, "views": views, "image_size": list(_SIZE),
          "pixels_per_view": pixels, "softclu_step_s": round(step_s, 3),
          "softclu_step_cost": step_cost, "rendering": rows}
