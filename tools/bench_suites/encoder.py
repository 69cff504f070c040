"""Res16FPN18 forward+backward on surface-like 3 cm room scans (see sparse_conv.py).

Coarse-level capacities come from the scene's own voxel counts rounded up to 1024 (what a
data pipeline bucketing by level_voxel_counts would use). Reported: the pyramid build (5
levels of key sorts, parent maps and kernel maps) and a training step (forward with batch
statistics, loss, backward), in voxels per second.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from bench_suites.sparse_conv import padded_batch
from bench_suites.sparse_conv import surface_scene
from bench_suites.sparse_conv import timed
from jaxseg.models.res16fpn import Res16FPN18
from jaxseg.ops.sparse import kernel_map


def _round_up(n: int, multiple: int = 1024) -> int:
  return max(multiple, -(-int(n) // multiple) * multiple)


def run(quick: bool) -> dict:
  sizes = (5_000, 10_000) if quick else (50_000, 100_000, 200_000)
  rng = np.random.default_rng(0)
  results = []
  for target in sizes:
    voxels = surface_scene(rng, target)
    coords, feats, mask = padded_batch(voxels, _round_up(len(voxels)), 6)
    counts = kernel_map.level_voxel_counts(coords, mask, 5)[0]
    capacities = tuple(_round_up(c) for c in counts[1:])
    model = Res16FPN18(coarse_capacities=capacities)
    variables = model.init(jax.random.key(0), coords, feats, mask, False)
    pyramid = jax.jit(lambda c, m, caps=(mask.shape[1],) + capacities: kernel_map.build_pyramid(
        c, m, [(5,)] + [(3,)] * 4, caps))

    def loss_fn(params, batch_stats):
      out, state = model.apply({"params": params, "batch_stats": batch_stats}, coords, feats,
                               mask, True, mutable=["batch_stats"])
      return jnp.mean(out ** 2), state

    step = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    forward = jax.jit(lambda v: model.apply(v, coords, feats, mask, False))
    _, pyramid_s = timed(pyramid, coords, mask, repeats=2)
    _, forward_s = timed(forward, variables, repeats=1)
    step_first, step_s = timed(step, variables["params"], variables["batch_stats"], repeats=1)
    row = {"voxels": len(voxels), "level_voxels": counts.tolist(),
           "capacities": [int(mask.shape[1])] + list(capacities),
           "pyramid_build_s": round(pyramid_s, 4), "forward_eval_s": round(forward_s, 3),
           "train_step_s": round(step_s, 3), "train_step_first_call_s": round(step_first, 1),
           "forward_voxels_per_s": round(len(voxels) / forward_s),
           "train_voxels_per_s": round(len(voxels) / step_s)}
    print(row, flush=True)
    results.append(row)
  return {"model": "res16fpn18 (6 input features, 128-d output), float32, batch 1",
          "backend": jax.default_backend(), "rows": results}
