"""Checkpoints of a training run with orbax: the train state, host arrays and JSON metadata.

  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=3, save_every=1000)
  ckpt.save(step, state, {"centroids": centroids}, {"stage": "cluster", "epoch": 4})
  ...
  state, arrays, meta = ckpt.restore(replicated_initial_state)   # --resume
  ckpt.close()

Each step is one orbax step directory holding three items: 'state' (the TrainState pytree,
device arrays), 'arrays' (a dict of numpy arrays such as centroids or pseudo labels; absent
when empty) and 'meta' (JSON). Saving is asynchronous: `save` returns once the device arrays
are copied to the host, so the next step may donate them; `wait`/`close` block until the files
are written. Orbax writes each step into a temporary directory and renames it only once every
item is complete, so a crash mid-save leaves no step that `latest_step` or `restore` would
pick up.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxseg.errors import InputError
from jaxseg.logging_utils import get_logger

_LOG = get_logger("train.checkpoint")
_RESUME_FIX = ("--resume needs a previous run in the same workdir; check the workdir or run "
               "without --resume to start from scratch")


class Checkpointer:
  """Saves every `save_every` steps (or when forced), keeps the last `keep` steps.

  All processes of a multi-process run must call `save`/`restore` together with the same
  shared `directory`.
  """

  def __init__(self, directory: str | os.PathLike, *, keep: int, save_every: int):
    if keep < 1 or save_every < 1:
      raise InputError("checkpoint", f"keep={keep} and save_every={save_every} must be >= 1",
                       "set checkpoint.keep and checkpoint.save_every to positive integers")
    self.directory = os.path.abspath(os.fspath(directory))
    self.save_every = save_every
    if os.path.exists(self.directory) and not os.path.isdir(self.directory):
      raise InputError(self.directory, "the checkpoint directory is a file",
                       "remove it or choose another workdir")
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def save(self, step: int, state: Any, arrays: Optional[Mapping[str, np.ndarray]] = None,
           meta: Optional[Mapping[str, Any]] = None, force: bool = False) -> bool:
    """Starts saving `state` (a pytree of jax arrays, e.g. a TrainState), `arrays` (host
    numpy arrays, may be empty) and `meta` (JSON-serialisable) as `step`.

    Saves when step % save_every == 0 or `force`. A step that already exists is kept as it
    is, unless `force`: then it is replaced (deleted first, so a crash before the new copy is
    finalised falls back to the previous step). Returns whether a save was started.
    """
    step = int(step)
    if not force and step % self.save_every:
      return False
    if step in self._manager.all_steps():
      if not force:
        return False
      self.wait()
      self._manager.delete(step)
    items = {"state": ocp.args.StandardSave(state),
             "meta": ocp.args.JsonSave(dict(meta or {}))}
    if arrays:
      items["arrays"] = ocp.args.StandardSave({k: np.asarray(v) for k, v in arrays.items()})
    self._manager.save(step, args=ocp.args.Composite(**items), force=True)
    _LOG.info("saving checkpoint %d in %s", step, self.directory)
    return True

  def all_steps(self) -> list[int]:
    """The finished steps, ascending (waits for pending saves first)."""
    self.wait()
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    """The newest finished step, None when there is none."""
    steps = self.all_steps()
    return steps[-1] if steps else None

  def restore(self, target_state: Any, step: Optional[int] = None
              ) -> tuple[Any, dict[str, np.ndarray], dict[str, Any]]:
    """(state, arrays, meta) of `step` (default: the latest).

    target_state: a pytree like the saved state (e.g. the freshly initialised, replicated
      TrainState); the restored leaves take its shardings and dtypes and the result its
      tree structure (a TrainState keeps its static tx).
    Raises InputError when there is no such finished step or it cannot be read.
    """
    steps = self.all_steps()
    if not steps:
      raise InputError(self.directory, "no finished checkpoint to resume from", _RESUME_FIX)
    step = steps[-1] if step is None else int(step)
    if step not in steps:
      raise InputError(self.directory, f"no finished checkpoint for step {step} (found "
                       f"{steps})", f"resume from one of {steps}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_state)
    step_dir = os.path.join(self.directory, str(step))
    try:
      has_arrays = os.path.isdir(os.path.join(step_dir, "arrays"))
      items = {"state": ocp.args.StandardRestore(abstract), "meta": ocp.args.JsonRestore()}
      if has_arrays:
        items["arrays"] = ocp.args.StandardRestore()
      restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    except (OSError, ValueError, KeyError, TypeError) as error:
      raise InputError(step_dir, f"checkpoint cannot be restored ({type(error).__name__}: "
                       f"{error})", "resume with the config of the run that wrote it, or "
                       "delete the damaged step directory to fall back to an older one"
                       ) from error
    arrays = {k: np.asarray(v) for k, v in restored["arrays"].items()} if has_arrays else {}
    _LOG.info("restored checkpoint %d from %s", step, self.directory)
    return restored["state"], arrays, dict(restored["meta"])

  def wait(self) -> None:
    """Blocks until every started save is written and finalised."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self._manager.close()

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
