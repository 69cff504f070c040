"""Run modes of `experiments/main.py`, looked up by `config.mode`.

Each mode module exposes `run(config, workdir: str, resume: bool) -> None`.
"""

from __future__ import annotations

import importlib
import os

import ml_collections

from jaxseg import models
from jaxseg import teachers  # pylint: disable=unused-import  (registers the 2D teachers)
from jaxseg.errors import InputError

MODES = {"prepare": "jaxseg.modes.prepare", "cmd": "jaxseg.modes.cmd",
         "svc": "jaxseg.modes.svc", "eval": "jaxseg.modes.evaluation"}
# Modes that later work adds.
PLANNED_MODES = ("infer",)
PARALLEL_MODES = ("jit", "shard_map", "pmap")
ASSIGNMENTS = ("kmeans", "sinkhorn")
MARGINALS = ("equipartition", "point_count")
FEATURE_KINDS = ("model", "raw_descriptors")
DATA_FORMATS = ("synthetic", "scannet", "votenet", "mmdet3d", "s3dis", "custom")

UserFacingError = InputError


def validate(config: ml_collections.ConfigDict) -> list[str]:
  """Checks values that the config file's types cannot; returns human-readable problems."""
  problems = []
  if config.mode not in MODES:
    if config.mode in PLANNED_MODES:
      problems.append(f"mode {config.mode!r} is not available in this version of jaxseg; "
                      f"available modes: {sorted(MODES)}")
    else:
      problems.append(f"unknown mode {config.mode!r}; choose one of {sorted(MODES)}")
  if config.data.format not in DATA_FORMATS:
    problems.append(f"unknown data.format {config.data.format!r}; choose one of "
                    f"{list(DATA_FORMATS)}")
  if config.data.format != "synthetic" and not config.data.root:
    problems.append(f"data.root is empty but data.format={config.data.format!r} reads files; "
                    "pass --config.data.root=/path/to/the/export")
  if config.data.voxel_size <= 0:
    problems.append(f"data.voxel_size must be > 0, got {config.data.voxel_size}")
  if config.model.name not in models.encoder_names():
    problems.append(f"unknown model.name {config.model.name!r}; choose one of "
                    f"{models.encoder_names()}")
  if config.teacher.name not in models.TEACHERS.names():
    problems.append(f"unknown teacher.name {config.teacher.name!r}; choose one of "
                    f"{models.TEACHERS.names()}")
  problems += _training_problems(config)
  if config.teacher.checkpoint and not os.path.isfile(config.teacher.checkpoint):
    problems.append(f"teacher.checkpoint {config.teacher.checkpoint!r} does not exist; pass "
                    "the path of a DINO .pth or DINOv2 model.safetensors file")
  return problems


def _value(config: ml_collections.ConfigDict, key: str):
  """config['a.b'] for a dotted key."""
  for part in key.split("."):
    config = config[part]
  return config


def _choice(problems: list[str], key: str, value, choices) -> None:
  if value not in choices:
    problems.append(f"unknown {key} {value!r}; choose one of {list(choices)}")


def _training_problems(config: ml_collections.ConfigDict) -> list[str]:
  """Checks of the parallel / cmd / svc / eval settings."""
  problems = []
  _choice(problems, "parallel.mode", config.parallel.mode, PARALLEL_MODES)
  _choice(problems, "svc.assign", config.svc.assign, ASSIGNMENTS)
  _choice(problems, "svc.sinkhorn.marginal", config.svc.sinkhorn.marginal, MARGINALS)
  _choice(problems, "eval.features", config.eval.features, FEATURE_KINDS)
  for key in ("cmd.epochs", "svc.warmup_epochs", "svc.epochs", "svc.recluster_every",
              "svc.num_clusters", "eval.num_clusters", "svc.min_segment_points"):
    if _value(config, key) < 0:
      problems.append(f"{key} must be >= 0")
  k = config.svc.num_clusters or config.data.num_classes
  if k < config.data.num_classes:
    problems.append(f"svc.num_clusters={k} is below data.num_classes="
                    f"{config.data.num_classes}; use 0 (= num_classes) or more (primitives)")
  if not config.eval.seeds:
    problems.append("eval.seeds is empty; give at least one clustering seed")
  voxel_encoders = [n for n in models.encoder_names() if n != "dgcnn"]
  if config.mode in ("cmd", "svc", "eval") and config.model.name not in voxel_encoders:
    problems.append(f"mode {config.mode!r} needs a voxel encoder; model.name must be one of "
                    f"{voxel_encoders}")
  for key in ("svc.cmd_checkpoint", "eval.checkpoint"):
    path = _value(config, key)
    if path and path not in ("random", "none") and not os.path.exists(path):
      problems.append(f"{key} {path!r} does not exist; pass a run's work directory")
  return problems


def run(config: ml_collections.ConfigDict, workdir: str, resume: bool = False) -> None:
  """Runs `config.mode` in `workdir`."""
  module = importlib.import_module(MODES[config.mode])
  module.run(config, workdir, resume=resume)
