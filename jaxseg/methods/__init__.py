"""Training methods, registered by name (`config.method`).

A method is a package `jaxseg/methods/<name>/` holding what is particular to it (heads,
losses, pseudo-labels, its phases) that registers one `Method`:

  METHODS.register("pointdc")(Method(title="PointDC", train=train, ...))
  method = get_method(config.method)
  outcome = method.train(ctx, resume, writer, validate)   # runs its phases on jaxseg.train

The trainer (`jaxseg.train.trainer`) runs each phase; mode `train` then evaluates the network
the method returns (`jaxseg.eval.evaluate`) and writes the report.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping

import ml_collections
import numpy as np

from jaxseg.models.voxel_net import encoder_variables
from jaxseg.registry import Registry

METHODS = Registry("method")
# Packages whose import registers a method.
_METHOD_PACKAGES = ("jaxseg.methods.pointdc", "jaxseg.methods.growsp",
                    "jaxseg.methods.coarse3d", "jaxseg.methods.clurender")


@dataclasses.dataclass(frozen=True)
class TrainOutcome:
  """What a method's training produced.

  variables: the network to evaluate ({'params': {'encoder': ...}, 'batch_stats': ...}).
  name: the report's name for it, saying what actually ran (e.g. 'PointDC: distillation +
    SVC (kmeans)').
  provenance: facts for the report: initialisation, teacher (only when distillation ran).
  stage_seconds: wall time of each stage.
  primitives: f32 [K, D] trained primitive centroids that evaluation merges into the classes
    (GrowSP's protocol), or None: evaluation clusters the training super-voxels (PointDC's).
  """
  variables: Mapping[str, Any]
  name: str
  provenance: Mapping[str, str]
  stage_seconds: Mapping[str, float]
  primitives: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Method:
  """A registered method.

  title: its name in reports.
  train(ctx, resume, writer, validate) -> TrainOutcome: runs its phases.
  checkpoint_phases(config) -> the checkpoint folders a training run of this config writes
    (checked before the run: --resume needs one, a fresh run none).
  network_phases: checkpoint folders that hold its trained network, the final one first
    (`mode=eval` and `init` read the first that exists).
  config_problems(config) -> problems with its config sections, each naming key and fix.
  primitives_key: the host array of its network phases' checkpoints that holds the trained
    primitives evaluation merges (as `TrainOutcome.primitives`, also in `mode=eval` of a run);
    None: evaluation clusters the training super-voxels.
  supervised: its network has a classifier head ('class_head') that evaluation scores as
    supervised segmentation (`jaxseg.eval.supervised`: no clustering, no matching).
  """
  title: str
  train: Callable[..., TrainOutcome]
  checkpoint_phases: Callable[[ml_collections.ConfigDict], tuple[str, ...]]
  network_phases: tuple[str, ...]
  config_problems: Callable[[ml_collections.ConfigDict], list[str]]
  primitives_key: str | None = None
  supervised: bool = False


def _register_all() -> None:
  for package in _METHOD_PACKAGES:
    importlib.import_module(package)


def get_method(name: str) -> Method:
  """The method registered as `name` (KeyError listing the known names otherwise)."""
  _register_all()
  return METHODS.get(name)


def with_encoder_of(init: str, variables: dict[str, Any]) -> tuple[dict[str, Any],
                                                                   dict[str, str]]:
  """`variables` (a fresh network with its heads) as they are when `init` is '' or 'random',
  else with the encoder of the run `init` names (its method's newest network); and the
  report's provenance line ({'init': ...})."""
  if not init or init == "random":
    return variables, {"init": "randomly initialised network"}
  from jaxseg.train import restore  # pylint: disable=g-import-not-at-top
  other = restore.run_method(init)
  loaded = restore.load_variables(init, get_method(other).network_phases if other else ())
  for collection, tree in encoder_variables(loaded).items():
    variables.setdefault(collection, {}).update(tree)
  return variables, {"init": f"encoder of the {other or 'unknown-method'} run {init}"}


def method_names() -> list[str]:
  _register_all()
  return METHODS.names()
