"""Mode `prepare`: build the ArrayRecord dataset, summarise it, and run the input pipeline once.

Writes `<workdir>/prepare_summary.json` with per-split statistics (scenes, points, super-voxels,
labelled fraction, frames) and the pipeline's measured throughput over one training epoch.
"""

from __future__ import annotations

import json
import os
import time

import jax
import ml_collections
import numpy as np

from jaxseg.data import packing, pipeline
from jaxseg.data.prepare import DatasetHandle, prepare_dataset
from jaxseg.data.sharding import process_batch_size
from jaxseg.logging_utils import get_logger, progress
from jaxseg.models.voxel_net import model_spec

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


def pipeline_throughput(handle: DatasetHandle, config: ml_collections.ConfigDict) -> dict:
  """Runs one training epoch of the input pipeline (as the training stages stream it) and
  reports scenes/s and the largest pack.

  The stream has one pack per local device when they divide the per-process batch (training
  needs that); otherwise this diagnostic pass uses one pack per batch, with a warning.
  """
  data = config.data
  pipeline_config = pipeline.config_from_data(data, model_spec(config.model))
  source = handle.source(data.train_split)
  num_packs = jax.local_device_count()
  if process_batch_size(data.batch_size) % num_packs:
    _LOG.warning("data.batch_size=%d does not split over the %d local devices, as training "
                 "needs; measuring the input pipeline with one pack per batch", data.batch_size,
                 num_packs)
    num_packs = 1
  num_batches = pipeline.batches_per_epoch(len(source), pipeline_config, train=True)
  stream = pipeline.make_iterator(source, pipeline_config, seed=config.seed, train=True,
                                  num_packs=num_packs, num_batches=num_batches,
                                  worker_count=data.num_workers)
  start, scenes, largest = time.perf_counter(), 0, {}
  for packs in progress(stream, desc="input pipeline (1 epoch)", total=num_batches):
    scenes += sum(int((pack.arrays["scene_index"] >= 0).sum()) for pack in packs)
    for name, rows in packing.batch_needs(packs).items():
      largest[name] = max(largest.get(name, 0), rows)
  seconds = time.perf_counter() - start
  return {"scenes": scenes, "seconds": seconds,
          "scenes_per_second": scenes / seconds if seconds else float("nan"),
          "batch_size": data.batch_size, "voxel_size": data.voxel_size, "packs": num_packs,
          "largest_pack": {k: largest[k] for k in ("points", "voxels0") if k in largest}}


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
  train_scenes = len(handle.source(config.data.train_split))
  if train_scenes >= config.data.batch_size:
    summary["pipeline"] = pipeline_throughput(handle, config)
    _LOG.info("input pipeline: %.2f scenes/s over %d scenes (largest pack: %s)",
              summary["pipeline"]["scenes_per_second"], summary["pipeline"]["scenes"],
              summary["pipeline"]["largest_pack"])
  else:
    _LOG.warning("input pipeline not run: the training split has %d scenes, fewer than one "
                 "batch (data.batch_size=%d); training would need data.batch_size <= %d",
                 train_scenes, config.data.batch_size, train_scenes)
  path = os.path.join(workdir, "prepare_summary.json")
  with open(path, "w") as f:
    json.dump(summary, f, indent=2)
  _LOG.info("dataset ready in %s; summary written to %s", handle.data_dir, path)
