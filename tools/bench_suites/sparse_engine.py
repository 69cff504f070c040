"""The sparse engine on a real scan, side by side in one run: the pair-list engine, the
dense-offset engine it replaced (at that engine's old bucket capacities, and at tight ones),
and the peers spconv and plain PyTorch on the same voxels.

Scene: ScanNet scene0000_00's mesh vertices (`$JAXSEG_SCANNET_MINI/points/scene0000_00.bin`,
else ../shared/data/scannet_mini), voxelised at 2 cm and 5 cm. Without the mini set the suite
falls back to a synthetic surface room and says so.

Per voxel size:
  host_maps_s         kernel maps of the scene on the host (numpy), packed and padded;
  layers              one submanifold layer 32->32 and 64->64 (level 0, k3): forward and
                      forward+backward seconds per engine, executed and useful multiply-adds;
  network             Res16FPN18 forward and forward+backward (BatchNorm in training mode,
                      loss sum(out * cotangent)): pairs float32 / bfloat16, dense at the old
                      bucket capacities ("before": the engine of the previous release) and at
                      tight capacities; executed vs useful multiply-adds per level; XLA's cost
                      analysis of the compiled forward+backward (FLOPs, bytes) and the roofline
                      time on one H100 and one TPU v5e chip;
  peers               `tools/peer_bench.py` run with `.venv-peers` (bash tools/setup_peers.sh)
                      at 1 thread (spconv's 2-thread CPU scatter is wrong, traveller59/spconv#679)
                      on the same voxels, features and weights, and our pair-list layers pinned
                      to one core (taskset) for the like-for-like ratio.
Times are medians after a warm-up call (compilation excluded).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.data import capacity
from jaxseg.data import packing
from jaxseg.models.res16fpn import Res16FPN18
from jaxseg.ops.sparse import geometry as geo
from jaxseg.ops.sparse import host_maps
from jaxseg.ops.sparse import pairs
from jaxseg.testing import scannet_mini_root

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PEERS_PYTHON = os.path.join(_ROOT, ".venv-peers", "bin", "python")
_PLANES, _OUT = (32, 64, 128, 256), 128
# Roofline machines: HBM bytes/s and dense bf16 / f32 FLOP/s.
_MACHINES = {"h100_sxm": (3.35e12, 989e12, 67e12), "tpu_v5e": (819e9, 197e12, 197e12 / 4)}
# The previous release's bucket capacities: the smallest voxel bucket holding the scene, coarse
# levels as fixed fractions of it (2 cm: configs' level_fractions; 5 cm: coarse_voxels()).
_OLD_BUCKETS = {0.02: ((65536, 131072, 262144, 524288), (1.0, 0.5, 0.25, 0.125)),
                0.05: ((32768, 65536, 131072, 262144), (0.35, 0.1, 0.03, 0.01))}


def scene_voxels(voxel_size: float) -> tuple[np.ndarray, str]:
  """The benchmark scene's voxels int32 [V, 3] (from 0) at `voxel_size` metres, and its name:
  scene0000_00 of the mini set, else a synthetic surface room (module docstring)."""
  root = scannet_mini_root()
  if root is not None:
    points = np.fromfile(os.path.join(root, "points", "scene0000_00.bin"),
                         np.float32).reshape(-1, 6)[:, :3]
    source = "ScanNet scene0000_00 (vh_clean_2 vertices)"
  else:
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 3, 80_000)
    points = rng.random((80_000, 3)) * [6.0, 5.0, 3.0]
    points[np.arange(80_000), faces] = 0.0
    source = "synthetic surface room (the mini set is absent)"
  voxels = np.unique(np.floor(points / voxel_size).astype(np.int64), axis=0)
  return (voxels - voxels.min(0)).astype(np.int32), source


def voxel_element(voxels, spec, feats, index=0):
  """A `pipeline.process_scene`-like element of one voxel set: one point per voxel."""
  n = len(voxels)
  geometry = host_maps.build_scene_geometry(voxels, spec.level_kernels)
  return {"point_coords": voxels.astype(np.float32),
          "point_colors": np.zeros((n, 3), np.float32),
          "point_normals": np.zeros((n, 3), np.float32), "point_labels": np.zeros(n, np.int32),
          "point_segments": np.zeros(n, np.int32), "point_index": np.arange(n, dtype=np.int32),
          "point_to_voxel": np.arange(n, dtype=np.int32), "voxel_coords": voxels,
          "voxel_feats": feats, "transform": np.eye(4, dtype=np.float32), "scene_index": index,
          "num_segments": 1, "level_counts": geometry.counts, "geometry": geometry}


def packed_batch(scenes, spec, feats, num_packs=1, signature=None):
  """Voxel sets as a padded batch of `num_packs` packs (tight capacities, or `signature`):
  (batch, needs, signature)."""
  elements = [voxel_element(v, spec, f, i) for i, (v, f) in enumerate(zip(scenes, feats))]
  packs = packing.pack_batch(elements, num_packs, -(-len(scenes) // num_packs), spec)
  needs = packing.batch_needs(packs)
  signature = {**capacity.tight(needs), **(signature or {})}
  return packing.pad_packs(packs, signature, spec), needs, signature


def _batch(voxels, spec, feats, signature=None):
  """The scene as a padded one-pack batch: tight capacities, or `signature`."""
  return packed_batch([voxels], spec, [feats], 1, signature)


def _timed(fn, *args, repeats=3):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def _band_rows(signature, name, num_offsets, num_bands):
  """Rows a banded layout executes: sum over bands of offsets x padded width."""
  sizes = [len(m) for m in np.array_split(np.arange(num_offsets), num_bands)]
  return sum(size * signature[f"{name}_b{b}"] for b, size in enumerate(sizes))


def _layer_macs(needs, signature, level, spec, c_in, c_out, kernel=3):
  """(useful, executed by pair lists, executed by the dense-offset layout) of one conv."""
  half = needs[f"half_pairs{level}_k{kernel}"]
  n, cap = needs[f"voxels{level}"], signature[f"voxels{level}"]
  rows = _band_rows(signature, f"pairs{level}_k{kernel}", kernel ** 3 // 2,
                    spec.num_bands(kernel))
  return ((n + 2 * half) * c_in * c_out, (cap + 2 * rows) * c_in * c_out,
          cap * kernel ** 3 * c_in * c_out)


def _pair_counts(voxels, spec) -> dict[str, int]:
  geometry = host_maps.build_scene_geometry(voxels, spec.level_kernels)
  return {f"half_pairs{l}_k{k}": int(p.counts.sum()) for (l, k), p in geometry.pairs.items()}


def _layers(voxels, spec, needs, signature, rng) -> dict:
  out = {}
  for c in (32, 64):
    feats = rng.normal(size=(len(voxels), c)).astype(np.float32)
    kernel = jnp.asarray(rng.normal(size=(27, c, c)).astype(np.float32) * 0.1)
    host, _, _ = _batch(voxels, spec, np.zeros((len(voxels), 6), np.float32), signature)
    dense_spec = geo.GeometrySpec(spec.level_kernels, engine="dense")
    row = {}
    for name, s in (("pairs", spec), ("dense_tight", dense_spec)):
      batch = {k: jnp.asarray(v) for k, v in host.items()}
      x = jnp.zeros(batch["voxel_feats"].shape[:2] + (c,)).at[0, :len(voxels)].set(feats)

      def forward(x, w, batch=batch, s=s):
        geometry = geo.from_batch(batch, s)
        return geo.submanifold_conv(x, geometry.levels[0], w)

      def train(x, w, forward=forward):
        return jax.grad(lambda x, w: jnp.sum(forward(x, w) ** 2), (0, 1))(x, w)
      row[name] = {"forward_s": _timed(jax.jit(forward), x, kernel),
                   "forward_backward_s": _timed(jax.jit(train), x, kernel)}
    useful, pairs_exec, dense_exec = _layer_macs(needs, signature, 0, spec, c, c)
    row["macs"] = {"useful": useful, "pairs": pairs_exec, "dense": dense_exec}
    row["pairs_speedup_over_dense"] = round(row["dense_tight"]["forward_backward_s"] /
                                            row["pairs"]["forward_backward_s"], 2)
    out[f"{c}->{c}"] = row
  return out


def _network_macs(needs, signature, spec) -> dict:
  """Executed and useful multiply-adds of one Res16FPN18 forward, per level."""
  per_level = {}
  def add(level, macs):
    entry = per_level.setdefault(level, [0, 0, 0])
    for i, m in enumerate(macs):
      entry[i] += m
  add(0, _layer_macs(needs, signature, 0, spec, 6, 32, kernel=5))
  c_prev = 32
  for s, planes in enumerate(_PLANES):
    level = s + 1
    n_fine, n = needs[f"voxels{s}"], needs[f"voxels{level}"]
    cap_fine, cap = signature[f"voxels{s}"], signature[f"voxels{level}"]
    children = _band_rows(signature, f"children{s}", 8, spec.child_bands)
    add(level, (n_fine * c_prev * c_prev, children * c_prev * c_prev, cap * 8 * c_prev * c_prev))
    for c_in, c_out in ((c_prev, planes), (planes, planes), (planes, planes), (planes, planes)):
      add(level, _layer_macs(needs, signature, level, spec, c_in, c_out))
    if c_prev != planes:
      add(level, (n * c_prev * planes, cap * c_prev * planes, cap * c_prev * planes))
    add(level, (n * planes * _OUT, cap * planes * _OUT, cap * planes * _OUT))
    c_prev = planes
  return {f"level{l}": {"useful_gmac": round(v[0] / 1e9, 3),
                        "pairs_executed_over_useful": round(v[1] / v[0], 2),
                        "dense_executed_over_useful": round(v[2] / v[0], 2)}
          for l, v in sorted(per_level.items())}


def init_network(batch, spec):
  """Res16FPN18's initial variables for a device batch built for `spec`."""
  return jax.jit(lambda b: Res16FPN18().init(jax.random.key(0), geo.from_batch(b, spec),
                                             b["voxel_feats"], False))(batch)


def network_forward(net, spec):
  """(params, batch_stats, batch) -> the network's training-mode output [G, C, 128]."""
  def forward(params, stats, batch):
    out, _ = net.apply({"params": params, "batch_stats": stats}, geo.from_batch(batch, spec),
                       batch["voxel_feats"], True, mutable=["batch_stats"])
    return out
  return forward


def network_loss(net, spec):
  """(params, batch_stats, batch, cotangent) -> sum(output * cotangent), the benchmarks' loss."""
  forward = network_forward(net, spec)
  return lambda params, stats, batch, cotangent: jnp.sum(forward(params, stats, batch) *
                                                          cotangent)


def _network(voxels, voxel_size, spec, needs, signature, rng) -> dict:
  feats = rng.normal(size=(len(voxels), 6)).astype(np.float32)
  host, _, _ = _batch(voxels, spec, feats, signature)
  caps, fractions = _OLD_BUCKETS[voxel_size]
  bucket = next(c for c in caps if c >= len(voxels))
  old = {f"voxels{l + 1}": max(8, -(-int(np.ceil(bucket * f)) // 8) * 8)
         for l, f in enumerate(fractions)}
  old_host, _, _ = _batch(voxels, spec, feats, {**signature, "voxels0": bucket, **old})
  dense_spec = geo.GeometrySpec(spec.level_kernels, engine="dense")
  variables = init_network({k: jnp.asarray(v) for k, v in host.items()}, spec)
  stats = variables["batch_stats"]
  rows, costs = {}, {}
  for name, s, h, dtype in (("pairs_f32", spec, host, jnp.float32),
                            ("pairs_bf16", spec, host, jnp.bfloat16),
                            ("dense_tight", dense_spec, host, jnp.float32),
                            ("dense_old_buckets (before)", dense_spec, old_host, jnp.float32)):
    batch = {k: jnp.asarray(v) for k, v in h.items()}
    net = Res16FPN18(dtype=dtype)
    cot = jnp.asarray(rng.normal(size=batch["voxel_feats"].shape[:2] + (_OUT,)), jnp.float32)

    forward, loss = network_forward(net, s), network_loss(net, s)
    fwd = jax.jit(lambda params, forward=forward, batch=batch: forward(params, stats, batch))
    gradient = jax.grad(lambda params, loss=loss, batch=batch, cot=cot:
                        loss(params, stats, batch, cot))
    train = jax.jit(gradient)
    rows[name] = {"forward_s": _timed(fwd, variables["params"], repeats=2),
                  "forward_backward_s": _timed(train, variables["params"], repeats=2),
                  "capacities": [int(h[geo.mask_key(l)].shape[1]) for l in range(5)]}
    if name.startswith("pairs"):
      with pairs.whole_bands():   # The accelerators' form; CPU loops count their body once.
        fresh = lambda params, gradient=gradient: gradient(params)   # jit caches traces
        cost = jax.jit(fresh).lower(variables["params"]).compile().cost_analysis()
      cost = cost[0] if isinstance(cost, (list, tuple)) else cost
      flops, bytes_moved = float(cost.get("flops", 0)), float(cost.get("bytes accessed", 0))
      costs[name] = {"gflops": round(flops / 1e9, 2), "gbytes": round(bytes_moved / 1e9, 3),
                     "roofline_ms": {m: round(1e3 * max(bytes_moved / bw, flops / (
                         bf16 if dtype == jnp.bfloat16 else f32)), 3)
                                     for m, (bw, bf16, f32) in _MACHINES.items()}}
  before = rows["dense_old_buckets (before)"]["forward_backward_s"]
  return {"rows": rows, "speedup_over_before": round(
      before / rows["pairs_f32"]["forward_backward_s"], 2),
          "bf16_bytes_over_f32": round(costs["pairs_bf16"]["gbytes"] /
                                       costs["pairs_f32"]["gbytes"], 3),
          "cost_analysis": costs, "macs": _network_macs(needs, signature, spec)}


def _peers(voxels, rng, quick: bool) -> dict:
  """peer_bench.py on the same voxels and weights, and our layers on one core."""
  if not os.path.exists(_PEERS_PYTHON):
    return {"skipped": "no .venv-peers: run bash tools/setup_peers.sh"}
  with tempfile.TemporaryDirectory() as tmp:
    case = os.path.join(tmp, "case.npz")
    arrays = {"coords": voxels}
    for c in (32, 64):
      arrays[f"feats_c{c}"] = rng.normal(size=(len(voxels), c)).astype(np.float32)
      arrays[f"weight_c{c}"] = (rng.normal(size=(27, c, c)) * 0.1).astype(np.float32)
    if not quick:
      arrays["network"] = np.asarray("res16fpn18")
    np.savez(case, **arrays)
    out = {}
    result = os.path.join(tmp, "peers.json")
    subprocess.run([_PEERS_PYTHON, os.path.join(_ROOT, "tools", "peer_bench.py"), "--input",
                    case, "--out", result, "--threads", "1"], check=True)
    with open(result) as f:
      out["peers_1_thread"] = json.load(f)
    ours = os.path.join(tmp, "ours.json")
    if shutil.which("taskset"):
      subprocess.run(["taskset", "-c", "0", sys.executable, os.path.abspath(__file__),
                      "--one-core", case, ours], check=True,
                     env=dict(os.environ, PYTHONPATH=_ROOT))
      with open(ours) as f:
        out["jaxseg_pairs_1_core"] = json.load(f)
    return out


def _one_core_layers(case: str, out: str) -> None:
  """Our pair-list layers on the case's voxels and weights (run under taskset -c 0)."""
  data = np.load(case)
  voxels = data["coords"]
  spec = geo.GeometrySpec(((3,),))
  host, _, _ = _batch(voxels, spec, np.zeros((len(voxels), 6), np.float32))
  batch = {k: jnp.asarray(v) for k, v in host.items()}
  result = {}
  for c in (32, 64):
    x = jnp.zeros(batch["voxel_feats"].shape[:2] + (c,)).at[0, :len(voxels)].set(
        data[f"feats_c{c}"])
    kernel = jnp.asarray(data[f"weight_c{c}"])
    forward = lambda x, w: geo.submanifold_conv(x, geo.from_batch(batch, spec).levels[0], w)
    train = jax.grad(lambda x, w: jnp.sum(forward(x, w) ** 2), (0, 1))
    result[f"c{c}"] = {"forward_s": _timed(jax.jit(forward), x, kernel),
                       "forward_backward_s": _timed(jax.jit(train), x, kernel)}
  with open(out, "w") as f:
    json.dump(result, f)


def run(quick: bool) -> dict:
  spec = geo.GeometrySpec(((5, 3), (3,), (3,), (3,), (3,)))
  network_spec = geo.GeometrySpec(((5,), (3,), (3,), (3,), (3,)))
  rng = np.random.default_rng(0)
  results = {}
  for voxel_size in ((0.05,) if quick else (0.02, 0.05)):
    voxels, source = scene_voxels(voxel_size)
    start = time.perf_counter()
    _, needs, signature = _batch(voxels, spec, np.zeros((len(voxels), 6), np.float32))
    host_s = time.perf_counter() - start
    needs.update(_pair_counts(voxels, spec))
    entry = {"scene": source, "voxels": len(voxels),
             "level_voxels": [needs[f"voxels{l}"] for l in range(5)],
             "host_maps_s": round(host_s, 3),
             "layers": _layers(voxels, spec, needs, signature, rng)}
    _, net_needs, net_signature = _batch(voxels, network_spec,
                                         np.zeros((len(voxels), 6), np.float32))
    net_needs.update(_pair_counts(voxels, network_spec))
    entry["network"] = _network(voxels, voxel_size, network_spec, net_needs, net_signature, rng)
    if voxel_size == 0.02 or quick:
      entry["peers"] = _peers(voxels, rng, quick)
    print(json.dumps({voxel_size: entry}, indent=1), flush=True)
    results[f"{int(voxel_size * 100)}cm"] = entry
  return {"backend": jax.default_backend(), "cpu_count": os.cpu_count(), **results}


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--one-core":
  _one_core_layers(sys.argv[2], sys.argv[3])
