"""The engine's programs compiled for one TPU v5e chip on this CPU-only machine.

JAX compiles ahead of time for a TPU topology with the TPU compiler alone (libtpu), no TPU
needed: `bash tools/setup_tpu_compiler.sh` puts the libtpu that jax pins into .tpu-compiler/
(outside requirements.txt). The suite runs in a subprocess with TPU_LIBRARY_PATH pointing
there and JAX_PLATFORMS=cpu. Without .tpu-compiler it reports itself skipped.

Per program, from the compiled TPU executable:
  compile_s          TPU compile seconds on this machine;
  gflops, gbytes     XLA's TPU cost analysis (bytes include the TPU's tile padding: a
                     [rows, 32] float32 array is stored in (8, 128) tiles, so 4x its size);
  roofline_ms        max(bytes / 819 GB/s, FLOPs / 197 TFLOP/s) for one v5e chip (on a TPU,
                     float32 matmuls at default precision take bfloat16 operands too);
  while_loops        `while` instructions: serial loops the compiler emitted; a scatter that
                     the TPU cannot do natively becomes one, with one iteration per row;
  while_iterations   per loop, the largest constant its condition compares the counter with;
  scatters, gathers  native scatter and gather instructions.
The cost analysis counts a while loop's body once, not once per iteration, so a program with a
loop looks cheaper than it runs. libtpu holds a lock file while it compiles: one run at a time.
Programs:
  scatter_window_form / scatter_per_row_form: one scatter-add of the Res16FPN18 stem's size on
    scene0000_00 at 5 cm (597,168 rows x 32 into 54,288), in the [1, F]-window form the CPU
    backend prefers and in the per-row form `jaxseg.ops.rows` lowers for accelerators;
  res16fpn18_<size>_<dtype>: Res16FPN18 forward+backward on scene0000_00 (as the sparse_engine
    suite's network, BatchNorm in training mode) at 5 cm and 2 cm, float32 and bfloat16;
  svc_loss_grad_5cm: the gradient of PointDC's clustering loss on the same scene (VoxelNet with
    Res16FPN18, point features, cosine logits against 20 centroids, cross-entropy on pseudo
    labels), as the pointdc suite's train step computes it;
  others: the other hot programs at the pooling, pointdc and clurender suites' sizes (super-voxel
    mean and max pooling, Sinkhorn labels, the K-means Lloyd fit, one rendered view), to check
    that their only loops are their iterations.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench_suites import sparse_engine

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LIBTPU = os.path.join(_ROOT, ".tpu-compiler", "libtpu", "libtpu.so")
_V5E_BYTES_PER_S, _V5E_BF16_FLOPS = 819e9, 197e12


def _while_trip_bounds(text: str) -> list[int]:
  """Per `while` instruction of compiled HLO text, the largest constant its condition compares
  the counter with (the iteration count of the loops the scatter expander writes)."""
  bounds = []
  for condition in re.findall(r" while\(.*?condition=%?([\w.\-]+)", text):
    body = re.search(rf"^%?{re.escape(condition)} .*?^}}", text, re.M | re.S)
    constants = re.findall(r"s32\[\]\S* constant\((\d+)\)", body.group(0) if body else "")
    bounds.append(max(map(int, constants), default=0))
  return bounds


def _compile(fn, *abstract_args) -> dict:
  """Compiles jit(fn) for the abstract arguments' device: its costs (module docstring)."""
  import jax
  start = time.perf_counter()
  compiled = jax.jit(fn).lower(*abstract_args).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops, moved = float(cost.get("flops", 0)), float(cost.get("bytes accessed", 0))
  text = compiled.as_text()
  return {"compile_s": round(compile_s, 1), "gflops": round(flops / 1e9, 2),
          "gbytes": round(moved / 1e9, 3),
          "roofline_ms": round(1e3 * max(moved / _V5E_BYTES_PER_S, flops / _V5E_BF16_FLOPS), 2),
          "while_loops": text.count(" while("), "while_iterations": _while_trip_bounds(text),
          "scatters": text.count(" scatter("), "gathers": text.count(" gather(")}


def _on_chip(tree, chip):
  """The arrays of `tree` as abstract arguments placed on `chip` (a sharding)."""
  import jax
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=chip), tree)


def _scatter_forms(chip) -> dict:
  """One scatter-add of the stem's size on scene0000_00 at 5 cm, in each of rows.py's forms."""
  import jax
  import jax.numpy as jnp

  from jaxseg.ops import rows
  capacity, pairs, features = 54_288, 597_168, 32
  args = _on_chip((jax.ShapeDtypeStruct((capacity, features), jnp.float32),
                   jax.ShapeDtypeStruct((pairs,), jnp.int32),
                   jax.ShapeDtypeStruct((pairs, features), jnp.float32)), chip)
  return {"scatter_window_form": _compile(rows._scatter_windows, *args),
          "scatter_per_row_form": _compile(rows._scatter_per_row, *args)}


def _network(chip, voxel_size: float, rng) -> dict:
  """Res16FPN18 forward+backward on scene0000_00 at `voxel_size`, float32 and bfloat16."""
  import jax
  import jax.numpy as jnp

  from jaxseg.models.res16fpn import Res16FPN18
  from jaxseg.ops.sparse import geometry as geo
  spec = geo.GeometrySpec(((5,), (3,), (3,), (3,), (3,)))
  voxels, source = sparse_engine.scene_voxels(voxel_size)
  feats = rng.normal(size=(len(voxels), 6)).astype(np.float32)
  host, _, _ = sparse_engine.packed_batch([voxels], spec, [feats])
  batch = {k: jnp.asarray(v) for k, v in host.items()}
  variables = sparse_engine.init_network(batch, spec)
  cotangent = jax.ShapeDtypeStruct(batch["voxel_feats"].shape[:2] + (128,), jnp.float32)
  out = {}
  for dtype in (jnp.float32, jnp.bfloat16):
    loss = sparse_engine.network_loss(Res16FPN18(dtype=dtype), spec)
    name = f"res16fpn18_{int(voxel_size * 100)}cm_{jnp.dtype(dtype).name}"
    out[name] = {"scene": source, "voxels": len(voxels), **_compile(
        jax.grad(loss), *_on_chip((variables["params"], variables["batch_stats"], batch,
                                   cotangent), chip))}
    print(name, out[name], flush=True)
  return out


def _worker(out_path: str, quick: bool) -> None:
  from jax.experimental import topologies
  from jax.sharding import SingleDeviceSharding
  # Every program is compiled for the first chip of a v5e:2x2 topology.
  chip = SingleDeviceSharding(topologies.get_topology_desc(
      platform="tpu", topology_name="v5e:2x2").devices[0])
  rng = np.random.default_rng(0)
  result = {"chip": "TPU v5e (the first chip of a v5e:2x2 topology)",
            "roofline": {"bytes_per_s": _V5E_BYTES_PER_S, "bf16_flops_per_s": _V5E_BF16_FLOPS},
            **_scatter_forms(chip)}
  for voxel_size in ((0.05,) if quick else (0.05, 0.02)):
    result.update(_network(chip, voxel_size, rng))
  result["svc_loss_grad_5cm"] = _svc_loss_grad(chip, rng)
  print("svc_loss_grad_5cm", result["svc_loss_grad_5cm"], flush=True)
  result["others"] = _other_programs(chip)
  with open(out_path, "w") as f:
    json.dump(result, f)


def _svc_loss_grad(chip, rng) -> dict:
  """PointDC's clustering loss on scene0000_00 at 5 cm, differentiated, compiled for the chip."""
  import jax
  import jax.numpy as jnp

  from jaxseg import losses
  from jaxseg.models.voxel_net import VoxelNet, geometry_spec, net_fields
  from jaxseg.ops.features import cosine_logits

  spec = geometry_spec("res16fpn18")
  voxels, _ = sparse_engine.scene_voxels(0.05)
  batch, _, _ = sparse_engine.packed_batch(
      [voxels], spec, [rng.normal(size=(len(voxels), 6)).astype(np.float32)])
  batch["pseudo_labels"] = np.where(batch["point_mask"],
                                    rng.integers(0, 20, batch["point_mask"].shape),
                                    -1).astype(np.int32)
  batch = {k: jnp.asarray(v) for k, v in batch.items()
           if k in net_fields(spec) + ("pseudo_labels",)}
  net = VoxelNet(spec)
  variables = jax.jit(lambda b: net.init(jax.random.key(0), b, train=False))(batch)
  centroids = jax.ShapeDtypeStruct((20, 128), jnp.float32)

  def loss(params, stats, batch, centroids):
    out, _ = net.apply({"params": params, "batch_stats": stats}, batch, train=True,
                       mutable=["batch_stats"])
    logits = cosine_logits(out["features"], centroids, 1.0, normalize_features=False)
    total, count = losses.cross_entropy_loss(logits, batch["pseudo_labels"],
                                             batch["point_mask"])
    return total / count
  return _compile(jax.grad(loss), *_on_chip((variables["params"], variables["batch_stats"],
                                             batch, centroids), chip))


def run(quick: bool) -> dict:
  if not os.path.isfile(_LIBTPU):
    return {"skipped": "no TPU compiler: run bash tools/setup_tpu_compiler.sh"}
  env = dict(os.environ, TPU_LIBRARY_PATH=_LIBTPU, JAX_PLATFORMS="cpu",
             TPU_ACCELERATOR_TYPE="v5litepod-4", TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=os.pathsep.join([_ROOT, os.path.join(_ROOT, "tools")]))
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "tpu.json")
    subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", out,
                    "--quick" if quick else "--full"], check=True, env=env)
    with open(out) as f:
      return json.load(f)


def _other_programs(chip) -> dict:
  """Pooling, Sinkhorn, K-means and splatting compiled for the chip at benchmark sizes."""
  import jax
  import jax.numpy as jnp

  from jaxseg.methods.clurender import splatting
  from jaxseg.ops import kmeans, pooling, sinkhorn
  shape = lambda *s, dtype=jnp.float32: jax.ShapeDtypeStruct(s, dtype)
  points, ids = shape(1_000_000, 32), shape(1_000_000, dtype=jnp.int32)
  rows = 98_304   # 100k super-voxels padded to 12 blocks of 8,192 rows
  programs = {
      "segment_mean_1M_x_32_into_50k": (lambda f, i: pooling.segment_mean(f, i, 50_000),
                                        points, ids),
      "segment_max_1M_x_32_into_50k": (lambda f, i: pooling.segment_max(f, i, 50_000),
                                       points, ids),
      "sinkhorn_labels_100k_x_128_k20_100_iterations": (
          lambda f, p: sinkhorn.sinkhorn_labels(f, p, num_iters=100).labels,
          shape(100_000, 128), shape(20, 128)),
      "kmeans_lloyd_98k_x_128_k20_80_iterations": (
          lambda x, w, c: kmeans._fit_jit(x, w, c, num_iters=80, metric="cosine",
                                          chunk_size=8192, sum_method="onehot",
                                          algorithm="lloyd", mesh=None, axis_name=None),
          shape(rows, 128), shape(rows), shape(20, 128)),
      "render_view_53k_points_320x240": (
          lambda p, c, v, w, k: splatting.render_view(p, c, v, w, k, (320, 240),
                                                      max_points=15_040)[0],
          shape(53_520, 3), shape(53_520, 3), shape(53_520, dtype=bool), shape(4, 4),
          shape(3, 3)),
  }
  out = {}
  for name, (fn, *args) in programs.items():
    out[name] = _compile(fn, *_on_chip(args, chip))
    print(name, out[name], flush=True)
  return out


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--worker":
  _worker(sys.argv[2], sys.argv[3] == "--quick")
