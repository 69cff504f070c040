"""Network variables from another run's checkpoints (`init`, `eval.checkpoint`), and what that
run distilled from."""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxseg.errors import InputError
from jaxseg.io import atomic
from jaxseg.logging_utils import get_logger
from jaxseg.teachers import teacher_description
from jaxseg.train.checkpoint import REPLACED_SUFFIX, finished_steps, restore_error

_LOG = get_logger("train.restore")


def _phase_dir(path: str, phases: Sequence[str]) -> str:
  """The checkpoint folder to read: `path` itself when it holds steps, else the first of
  `<path>/checkpoints/<phase>` that does."""
  candidates = [path] + [os.path.join(path, "checkpoints", phase) for phase in phases]
  for candidate in candidates:
    if finished_steps(candidate):
      return candidate
  raise InputError(path, f"no finished checkpoint of phase {' / '.join(phases)} here",
                   "pass a work directory of a finished run (or its checkpoints/<phase> "
                   "folder)")


def load_variables(path: str, phases: Sequence[str]) -> dict[str, Any]:
  """{'params', 'batch_stats'} of the newest step of the newest phase found under `path`."""
  return load_run(path, phases, arrays=False)[0]


def load_run(path: str, phases: Sequence[str], *, arrays: bool = True
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """(network variables, host arrays) of the newest step of the newest phase found under
  `path`; the arrays (e.g. GrowSP's primitives) are {} when not asked for or not saved."""
  directory = _phase_dir(os.path.abspath(path), phases)
  step = finished_steps(directory)[-1]
  # A step being replaced (or whose replacement a crash interrupted) is read from its old
  # copy; a reader never settles the folder, its run may be writing it.
  step_dir = os.path.join(directory, str(step))
  if not os.path.isdir(step_dir):
    step_dir += REPLACED_SUFFIX
  items = {"state": ocp.args.StandardRestore()}
  if arrays and os.path.isdir(os.path.join(step_dir, "arrays")):
    items["arrays"] = ocp.args.StandardRestore()
  try:
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
      restored = checkpointer.restore(step_dir, args=ocp.args.Composite(**items))
  except Exception as error:  # pylint: disable=broad-except  (orbax/tensorstore raise many)
    raise restore_error(step_dir, error, "pass another run, or delete the damaged step folder "
                        "to use an older step") from error
  state = restored["state"]
  try:
    variables = {"params": state["params"], "batch_stats": state["model_state"]["batch_stats"]}
  except (KeyError, TypeError) as error:
    raise InputError(directory, f"step {step} holds no network variables ({error})",
                     "pass a jaxseg training checkpoint") from error
  _LOG.info("loaded network variables of step %d from %s", step, directory)
  host = {k: np.asarray(v) for k, v in restored["arrays"].items()} if "arrays" in items else {}
  return jax.tree.map(np.asarray, variables), host


def run_config(path: str) -> dict[str, Any] | None:
  """The config.json of the run `path` belongs to (in `path` or up to two folders above, for
  a checkpoint folder); None when there is none or it cannot be read."""
  folder = os.path.abspath(path)
  for _ in range(3):
    candidate = os.path.join(folder, "config.json")
    if os.path.isfile(candidate):
      try:
        config = atomic.read_json(candidate)
      except (OSError, ValueError):
        return None
      return config if isinstance(config, dict) else None
    folder = os.path.dirname(folder)
  return None


def run_method(path: str) -> str | None:
  """The method ('pointdc', 'growsp', ...) of the run `path`, from its config.json."""
  config = run_config(path)
  return None if config is None else str(config.get("method", "pointdc"))


def distilled_teacher(path: str) -> str | None:
  """The teacher a PointDC run distilled from, read from its config.json (in `path` or up to
  two folders above, for a checkpoint folder); None when it did not distil or is unknown."""
  config = run_config(path)
  try:
    if (config is not None and config.get("method", "pointdc") == "pointdc"
        and config.get("init", "") == "" and config.get("cmd", {}).get("epochs", 0)):
      return teacher_description(config["teacher"]["name"], config["teacher"]["checkpoint"])
  except (KeyError, TypeError, AttributeError):
    return None
  return None
