"""CluRender's cost on a real scan: the training step with rendering against the step without.

On ScanNet scene0000_00 (the mini set's posed scan: its raw mesh vertices with their 60 posed
frames), through the training pipeline (5 cm voxels, no augmentation; `views.ViewSampler`
draws 8 of the frames at 320x240 and the voxels each can see), side by side in one process on
the same padded batch, the 'jit' train step of `method.make_loss_fn` (res16fpn18, the cluster
head J = 64 with both transport terms, Adam):
- SoftClu: clurender.views = 0;
- CluRender: the same plus the colour head splatted into the 8 views (r = 4 px, K = 128, each
  view's visible voxels only) and the image loss on 2,048 covered pixels a view: the paper's
  RGB+XY transport (the defaults: 40 over-relaxed Sinkhorn iterations, omega 1.5, the
  'scaling' solver, which 'auto' picks on CPU) or the code's sliced Wasserstein distance
  (1,000 directions). For the comparison the transport also runs the same iterations with
  OTT's log-domain solver, and as before the relaxed default (100 plain iterations, OTT's
  solver).
Per step: the median wall time, XLA's cost analysis (FLOPs, bytes) and a roofline time for one
H100 SXM (3.35 TB/s, 989 dense bf16 TFLOP/s); the ratios are CluRender / SoftClu.

XLA's cost analysis counts the body of a loop once. Two kinds of loop matter here:
- Every Sinkhorn is a loop, so the bytes of its other iterations are added. Each log-domain
  iteration reads its [n, m] f32 cost matrix twice (one soft-min per marginal); each
  'scaling' iteration reads its two stored [n, m] kernels once each. That is
  (iterations - 1) x 2 x n x m x 4 bytes per problem, in the forward pass only (the plans
  carry no gradient). 'scaling' also absorbs its potentials every 8 iterations, in a loop
  too: each absorption after the first reads the cost matrix and its transpose and writes
  the two kernels, 4 x n x m x 4 bytes more. A solver's fall-back branch (`lax.cond`)
  is not added: XLA counts the larger of a conditional's branches. It assumes the matrix is read from HBM each time; an H100's 50 MB L2
  would hold a 2,048-pixel view's 16 MB and make it cheaper.
- The step renders its views in a loop (`lax.map`). So CluRender's roofline is SoftClu's
  plus the number of views times the cost of one view. That cost is the forward and backward
  pass of one view's render and image loss, measured alone, with its Sinkhorn loop added.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bench_suites.sparse_engine import _timed  # pylint: disable=protected-access
from jaxseg import config_defaults
from jaxseg.data import capacity, packing, pipeline
from jaxseg.data.augment import AugmentConfig
from jaxseg.data.sharding import data_mesh, to_global_arrays
from jaxseg.io import mmdet3d
from jaxseg.methods.clurender import method, transport
from jaxseg.methods.clurender.views import ViewSampler
from jaxseg.models.voxel_net import VoxelNet, geometry_spec, net_fields
from jaxseg.ops import pooling
from jaxseg.ops.sparse import pairs
from jaxseg.testing import scannet_mini_root
from jaxseg.train import optim
from jaxseg.train.parallel import make_train_step, replicate
from jaxseg.train.state import TrainState

_SIZE = (320, 240)
_H100_BYTES_PER_S, _H100_FLOPS = 3.35e12, 989e12


def _batch(num_views: int):
  """The padded batch of scene0000_00 with `num_views` drawn views (capacities on the ladder)
  and its geometry spec."""
  scene = mmdet3d.read_mmdet3d_scene(scannet_mini_root(), "scene0000_00")
  record = {"name": b"scene0000_00", "coords": scene.coords, "colors": scene.colors,
            "labels": np.zeros(scene.num_points, np.int32),
            "segments": np.zeros(scene.num_points, np.int32), "num_segments": 1,
            "frames": scene.frames}
  spec = geometry_spec("res16fpn18")
  config = pipeline.PipelineConfig(voxel_size=0.05, augment=AugmentConfig.none(),
                                   geometry=spec)
  element = pipeline.process_scene(record, 0, np.random.default_rng(0), config, train=True,
                                   views=ViewSampler(num_views, _SIZE))
  packs = packing.pack_batch([element], 1, 1, spec)
  needs = packing.batch_needs(packs)
  signature = {q: capacity.rungs(q, max(1, n))[-1] for q, n in needs.items()}
  return packing.pad_packs(packs, signature, spec), spec, needs


def _roofline(cost) -> dict:
  """GFLOP, GB moved and the H100 roofline time (ms) of an XLA cost analysis."""
  flops, moved = float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))
  return {"gflops": round(flops / 1e9, 2), "gbytes_moved": round(moved / 1e9, 2),
          "h100_roofline_ms": round(1e3 * max(flops / _H100_FLOPS, moved / _H100_BYTES_PER_S),
                                    2)}


def _sinkhorn_loop_bytes(batch, c) -> float:
  """Bytes of SoftClu's Sinkhorn iterations XLA's cost analysis leaves out (module
  docstring)."""
  voxels = int(np.sum(batch["level0_mask"]))
  return (len(tuple(c.terms)) * (int(c.sinkhorn_iterations) - 1) * 8.0 * voxels
          * int(c.clusters))


def _per_view_cost(batch, c) -> dict:
  """XLA's cost of one view's render and image loss, forward and backward (as the step runs
  it: `method.view_losses` on a single view), its Sinkhorn iterations added."""
  num_voxels = batch["voxel_feats"].shape[1]
  centres = pooling.segment_mean(jnp.asarray(batch["point_coords"][0]),
                                 jnp.asarray(batch["point_to_voxel"][0]), num_voxels)[None]
  one = {k: jnp.asarray(batch[k][:1, :1, :1]) for k in method.VIEW_FIELDS}
  grad = jax.jit(jax.grad(lambda colours: jnp.sum(method.view_losses(
      colours, centres, one, c.render, c.image_loss))))
  cost = grad.lower(jnp.full((1, num_voxels, 3), 0.5, jnp.float32)).compile().cost_analysis()
  cost = dict(cost[0] if isinstance(cost, (list, tuple)) else cost)
  if c.image_loss == "rgbxy_ot":
    iterations, pixels = int(c.render.ot_iterations), int(c.render.pixels)
    absorptions = ((iterations - 1) // transport.ABSORB_EVERY
                   if c.render.ot_solver == "scaling" else 1)
    cost["bytes accessed"] = (float(cost.get("bytes accessed", 0.0))
                              + (iterations - 1) * 8.0 * pixels ** 2
                              + max(absorptions - 1, 0) * 16.0 * pixels ** 2)
  return _roofline(cost)


def _step(batch, spec, c, repeats: int) -> dict:
  """Median seconds and cost of the 'jit' train step for clurender config `c`."""
  render = int(c.views) > 0
  fields = net_fields(spec) + ("voxel_coords", "point_scene", "scene_index")
  if render:
    fields += ("point_coords",) + method.VIEW_FIELDS
  host = {k: batch[k] for k in dict.fromkeys(fields)}
  net = VoxelNet(spec, cluster_dim=int(c.clusters), color_head=render)
  variables = jax.jit(lambda b: net.init(jax.random.key(0), b, train=False))(
      {k: jnp.asarray(host[k]) for k in net_fields(spec)})
  mesh = data_mesh()
  tx = optim.make_optimizer({"name": "adam", "lr": 1e-3, "weight_decay": 1e-4})
  state = replicate(TrainState.create(variables["params"],
                                      {"batch_stats": variables["batch_stats"]}, tx), mesh)
  network = lambda **heads: VoxelNet(spec, **heads)   # pylint: disable=unnecessary-lambda-assignment
  step = make_train_step(method.make_loss_fn(network, c), mesh, "jit", donate=False)
  device = to_global_arrays(host, mesh)
  cost = {}
  if not render:
    with pairs.whole_bands():   # The accelerators' form; CPU loops count their body once.
      cost = make_train_step(method.make_loss_fn(network, c), mesh, "jit", donate=False).lower(
          state, device, {}).compile().cost_analysis()
    cost = dict(cost[0] if isinstance(cost, (list, tuple)) else cost)
    loop_bytes = _sinkhorn_loop_bytes(batch, c)
    cost["bytes accessed"] = float(cost.get("bytes accessed", 0.0)) + loop_bytes
    cost = {**_roofline(cost), "sinkhorn_loop_gbytes_added": round(loop_bytes / 1e9, 2)}
  holder = {"state": state}

  def run_step():
    holder["state"], metrics = step(holder["state"], device, {})
    return metrics["loss"]

  return {"step_s": round(_timed(run_step, repeats=repeats), 3), **cost}


def run(quick: bool) -> dict:
  repeats = 1 if quick else 3
  views = 2 if quick else 8
  batch, spec, needs = _batch(views)
  c = config_defaults.clurender_config()
  if quick:
    c.render.pixels, c.render.ot_iterations = 512, 30
  c.views = 0
  softclu = _step(batch, spec, c, repeats)
  print({"softclu": softclu}, flush=True)
  rows = []
  plain = (100, 1.0, "log")        # the transport's solver before the relaxed default
  # 'auto' is 'scaling' on CPU and 'log' elsewhere: both run, named.
  default = (int(c.render.ot_iterations), float(c.render.ot_relaxation), "scaling")
  logged = default[:2] + ("log",)   # OTT's log-domain solver, the same iterates
  for kind, pixels, (iterations, relaxation, solver) in (
      ("rgbxy_ot", c.render.pixels, default), ("rgbxy_ot", c.render.pixels, logged),
      ("rgbxy_ot", c.render.pixels, plain), ("rgbxy_ot", c.render.pixels // 2, default),
      ("sliced_wasserstein", c.render.pixels, default)):
    c.views, c.image_loss = views, kind
    config = _with_pixels(c, pixels)
    config.render.ot_iterations, config.render.ot_relaxation = iterations, relaxation
    config.render.ot_solver = solver
    row = {"image_loss": kind, "pixels_per_view": int(pixels),
           **({"ot_iterations": iterations, "ot_relaxation": relaxation, "ot_solver": solver}
              if kind == "rgbxy_ot" else {}),
           **_step(batch, spec, config, repeats), "per_view": _per_view_cost(batch, config)}
    row["step_ratio"] = round(row["step_s"] / softclu["step_s"], 2)
    row["h100_roofline_ms"] = round(softclu["h100_roofline_ms"]
                                    + views * row["per_view"]["h100_roofline_ms"], 2)
    row["h100_roofline_step_ratio"] = round(row["h100_roofline_ms"]
                                            / softclu["h100_roofline_ms"], 2)
    rows.append(row)
    print(row, flush=True)
  return {"scene": "scene0000_00 (mini set, raw mesh vertices, its posed frames)",
          "h100_roofline": "max(FLOPs / 989 TFLOP/s, bytes / 3.35 TB/s), Sinkhorn loop bytes "
                           "added; CluRender: SoftClu's + views x one view's (module "
                           "docstring)",
          "voxel_size_m": 0.05, "voxels": int(needs["voxels0"]),
          "most_voxels_in_one_view": int(needs["view_points"]),
          "view_points_capacity": int(batch["view_rows"].shape[-1]), "views": views,
          "image_size": list(_SIZE), "softclu_step": softclu, "clurender_steps": rows}


def _with_pixels(c, pixels: int):
  """A copy of the clurender config `c` comparing `pixels` pixels a view."""
  c = c.copy_and_resolve_references()
  c.render.pixels = int(pixels)
  return c
