"""Input-pipeline throughput (scenes/s): ArrayRecord read + augment + voxelise + pad + batch.

Builds a small `jaxseg_synthetic` ArrayRecord dataset in a temporary directory from generated
rooms of ~100k points (floor, four walls and a few boxes, points on the surfaces), then times
  read:      `source[i]` alone;
  process:   read + augment + voxelise + host kernel maps for one scene (one thread);
  pipeline:  the full grain iterator (batches of 2 packed into one buffer, 2 read threads),
             single-process and with 2 grain worker processes, at 2 cm and 5 cm voxels.
Pipeline rates exclude the first batch (start-up, worker spawn), which is reported separately.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from jaxseg.data import tfds_builders
from jaxseg.data.pipeline import PipelineConfig, make_iterator, process_scene
from jaxseg.data.scene import Scene


def _room(name: str, num_points: int, seed: int) -> Scene:
  """Points on the floor, walls and box tops of a random 4-8 m x 4-8 m x 3 m room."""
  rng = np.random.default_rng(seed)
  size = np.array([rng.uniform(4, 8), rng.uniform(4, 8), 3.0])
  axis = rng.integers(0, 3, num_points)  # which coordinate is fixed (0/1: wall, 2: floor)
  coords = rng.random((num_points, 3)) * size
  on_wall = axis < 2
  coords[on_wall, axis[on_wall]] = size[axis[on_wall]] * rng.integers(0, 2, on_wall.sum())
  coords[~on_wall, 2] = 0.0
  boxes = rng.random(num_points) < 0.3  # a third of the floor points become box tops
  coords[boxes & ~on_wall, 2] = rng.choice([0.45, 0.75, 1.1], (boxes & ~on_wall).sum())
  labels = np.where(on_wall, 0, np.where(coords[:, 2] > 0, 2, 1)).astype(np.int32)
  return Scene(name=name, coords=coords.astype(np.float32),
               colors=rng.integers(0, 256, (num_points, 3)).astype(np.uint8), labels=labels,
               segments=(coords[:, 0] // 0.5 * 100 + coords[:, 1] // 0.5).astype(np.int32))


def _rate(iterator) -> dict:
  start = time.perf_counter()
  iterator = iter(iterator)
  next(iterator)
  after_first = time.perf_counter()
  scenes = 0
  for packs in iterator:
    scenes += sum(int((p.arrays["scene_index"] >= 0).sum()) for p in packs)
  end = time.perf_counter()
  return {"first_batch_s": round(after_first - start, 3), "scenes_timed": scenes,
          "scenes_per_s": round(scenes / (end - after_first), 2) if scenes else None}


def run(quick: bool) -> dict:
  num_scenes, num_points, epochs = (4, 20_000, 2) if quick else (12, 100_000, 2)
  results = {"num_scenes": num_scenes, "points_per_scene": num_points, "epochs": epochs,
             "batch_size": 2, "read_threads": 2,
             "load_average_1min_at_start": round(os.getloadavg()[0], 2)}
  with tempfile.TemporaryDirectory() as data_dir:
    scenes = {f"room{i:02d}": _room(f"room{i:02d}", num_points, i) for i in range(num_scenes)}
    start = time.perf_counter()
    builder = tfds_builders.make_builder("synthetic", data_dir, {"train": list(scenes)},
                                         scenes.__getitem__)
    builder.download_and_prepare()
    results["build_scenes_per_s"] = round(num_scenes / (time.perf_counter() - start), 2)
    source = builder.as_data_source()["train"]

    start = time.perf_counter()
    for _ in range(epochs):
      for i in range(len(source)):
        _ = source[i]
    results["read_scenes_per_s"] = round(epochs * len(source) / (time.perf_counter() - start), 2)

    for voxel_size in (0.02, 0.05):
      config = PipelineConfig(voxel_size=voxel_size, batch_size=2)
      rng = np.random.default_rng(0)
      start = time.perf_counter()
      voxels = [process_scene(source[i], i, rng, config, train=True)["voxel_coords"].shape[0]
                for i in range(len(source))]
      key = f"{round(voxel_size * 100)}cm"
      results[f"process_{key}_scenes_per_s"] = round(
          len(source) / (time.perf_counter() - start), 2)
      results[f"mean_voxels_{key}"] = int(np.mean(voxels))
      for workers in (0, 2):
        iterator = make_iterator(source, config, seed=0, train=True, num_packs=1,
                                 num_batches=epochs * (len(source) // config.batch_size),
                                 worker_count=workers, process_index=0, process_count=1)
        try:
          results[f"pipeline_{key}_workers{workers}"] = _rate(iterator)
        except Exception as e:  # pylint: disable=broad-except
          results[f"pipeline_{key}_workers{workers}"] = {"error": f"{type(e).__name__}: {e}"}
  results["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
  return results
