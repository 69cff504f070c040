"""Run modes of `experiments/main.py`, looked up by `config.mode`.

  prepare   build the dataset, summarise it, time the input pipeline
  train     train `config.method` (its phases on the one trainer), then evaluate it
  eval      evaluate a trained network, a random one, or raw super-voxel descriptors
  infer     label new clouds with a trained run

Each mode module exposes `run(config, workdir: str, resume: bool) -> None`.
"""

from __future__ import annotations

import importlib

import ml_collections

MODES = {"prepare": "jaxseg.modes.prepare", "train": "jaxseg.modes.train",
         "eval": "jaxseg.modes.evaluation", "infer": "jaxseg.modes.infer"}
# Modes that train (and so write checkpoints that --resume continues).
TRAINING_MODES = ("train",)


def run(config: ml_collections.ConfigDict, workdir: str, resume: bool = False) -> None:
  """Runs `config.mode` in `workdir`."""
  module = importlib.import_module(MODES[config.mode])
  module.run(config, workdir, resume=resume)
