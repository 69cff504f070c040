"""Mode `prepare`: build the ArrayRecord dataset, summarise it, and run the input pipeline once.

Writes `<workdir>/prepare_summary.json` with per-split statistics (scenes, points, super-voxels,
labelled fraction, frames) and the pipeline's measured throughput over one training epoch.
"""

from __future__ import annotations

import json
import os
import time

import ml_collections
import numpy as np

from jaxseg.data import pipeline
from jaxseg.data.prepare import DatasetHandle, prepare_dataset
from jaxseg.logging_utils import get_logger, progress

_LOG = get_logger("modes.prepare")


def split_statistics(source) -> dict:
  """Counts over every record of a split (a tfds data source)."""
  points, segments, labelled, frames = [], [], [], []
  for i in progress(range(len(source)), desc="summarising", total=len(source)):
    record = source[i]
    points.append(len(record["coords"]))
    segments.append(int(record["num_segments"]))
    labelled.append(float((np.asarray(record["labels"]) >= 0).mean()))
    frames.append(len(record["frames"]["poses"]))
  return {"scenes": len(points), "points_total": int(np.sum(points)),
          "points_mean": float(np.mean(points)), "points_max": int(np.max(points)),
          "supervoxels_mean": float(np.mean(segments)),
          "labelled_fraction_mean": float(np.mean(labelled)),
          "frames_mean": float(np.mean(frames))}


def pipeline_throughput(handle: DatasetHandle, data: ml_collections.ConfigDict, seed: int
                        ) -> dict:
  """Runs one training epoch of the input pipeline and reports scenes/s and bucket use."""
  config = pipeline.config_from_data(data)
  source = handle.source(data.train_split)
  iterator = pipeline.make_iterator(source, config, seed=seed, train=True, num_epochs=1,
                                    worker_count=data.num_workers)
  start, scenes, shapes = time.perf_counter(), 0, {}
  for batch in progress(iterator, desc="input pipeline (1 epoch)",
                        total=len(source) // config.batch_size):
    scenes += int((batch["scene_index"] >= 0).sum())
    shape = f"{batch['point_mask'].shape[1]} points / {batch['voxel_mask'].shape[1]} voxels"
    shapes[shape] = shapes.get(shape, 0) + 1
  seconds = time.perf_counter() - start
  return {"scenes": scenes, "seconds": seconds,
          "scenes_per_second": scenes / seconds if seconds else float("nan"),
          "batch_size": config.batch_size, "voxel_size": config.voxel_size,
          "batches_per_capacity": shapes}


def run(config: ml_collections.ConfigDict, workdir: str, resume: bool = False) -> None:
  del resume  # Building reuses a finished dataset; there is nothing else to resume.
  handle = prepare_dataset(config.data)
  summary = {"dataset_dir": handle.data_dir, "format": config.data.format,
             "source_root": handle.root, "splits": {}}
  skipped_path = os.path.join(handle.data_dir, "skipped_scenes.json")
  if os.path.isfile(skipped_path):
    with open(skipped_path) as f:
      summary["skipped_scenes"] = json.load(f)
  for split in handle.splits:
    stats = split_statistics(handle.source(split))
    summary["splits"][split] = stats
    _LOG.info("split %s: %d scenes, %.0f points/scene (max %d), %.0f super-voxels/scene, "
              "%.0f%% points labelled, %.1f frames/scene", split, stats["scenes"],
              stats["points_mean"], stats["points_max"], stats["supervoxels_mean"],
              100 * stats["labelled_fraction_mean"], stats["frames_mean"])
  if len(handle.source(config.data.train_split)) >= config.data.batch_size:
    summary["pipeline"] = pipeline_throughput(handle, config.data, config.seed)
    _LOG.info("input pipeline: %.2f scenes/s over %d scenes (batches per capacity: %s)",
              summary["pipeline"]["scenes_per_second"], summary["pipeline"]["scenes"],
              summary["pipeline"]["batches_per_capacity"])
  path = os.path.join(workdir, "prepare_summary.json")
  with open(path, "w") as f:
    json.dump(summary, f, indent=2)
  _LOG.info("dataset ready in %s; summary written to %s", handle.data_dir, path)
