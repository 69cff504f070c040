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

MODES = {"prepare": "jaxseg.modes.prepare"}
# Modes that later work adds (cross-modal distillation, clustering, evaluation, probing, inference).
PLANNED_MODES = ("cmd", "svc", "eval", "probe", "infer")
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
  if config.teacher.checkpoint and not os.path.isfile(config.teacher.checkpoint):
    problems.append(f"teacher.checkpoint {config.teacher.checkpoint!r} does not exist; pass "
                    "the path of a DINO .pth or DINOv2 model.safetensors file")
  return problems


def run(config: ml_collections.ConfigDict, workdir: str, resume: bool = False) -> None:
  """Runs `config.mode` in `workdir`."""
  module = importlib.import_module(MODES[config.mode])
  module.run(config, workdir, resume=resume)
