"""2D teacher throughput: ms per 240x320 image for the ViT-S teachers and the fallback.

The ViTs carry random weights with the official shapes (speed does not depend on the values).
"""

from __future__ import annotations

import os
import tempfile
import time

import jax.numpy as jnp
import numpy as np

from jaxseg.teachers import build_teacher, fake_checkpoints


def _time(teacher, images, upsample: bool, reps: int) -> dict:
  run = lambda: teacher.features(images, upsample=upsample).block_until_ready()
  start = time.perf_counter()
  run()
  first = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(reps):
    run()
  return {"first_call_s": first,
          "ms_per_image": 1e3 * (time.perf_counter() - start) / reps / images.shape[0]}


def run(quick: bool) -> dict:
  height, width = (112, 160) if quick else (240, 320)
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1, height, width, 3),
                                                         dtype=np.uint8))
  reps = 1 if quick else 3
  results = {"image_size": [height, width]}
  with tempfile.TemporaryDirectory() as tmp:
    for patch, name in ((16, "dino_vits16"), (8, "dino_vits8")):
      path = os.path.join(tmp, f"{name}.pth")
      fake_checkpoints.save_torch_zip(path, fake_checkpoints.dino_state_dict(patch, seed=0))
      teacher = build_teacher(name, path)
      results[name] = {"patch_grid": _time(teacher, images, False, reps),
                       "upsampled": _time(teacher, images, True, reps)}
  results["fallback"] = {"upsampled": _time(build_teacher("fallback"), images, True, reps)}
  return results
