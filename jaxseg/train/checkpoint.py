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
pick up. Replacing a step (a forced save of an existing step, e.g. the final save that marks a
phase done) first moves the old copy aside as `<step>.replaced` and deletes it only once the
new copy is finalised; a crash in between puts the old copy back when the folder is next opened.

On CPU devices of one process, each replicated array is saved from one replica: orbax's
replica-parallel writing (each device copies its own slice of the array to the host) spreads
copies that are memcpys here anyway, and costs one compiled slice program per array shape and
device (96 programs, 4.3 s of compilation in the tests' tiny run on 4 CPU devices).
"""

from __future__ import annotations

import difflib
import os
import shutil
from typing import Any, Mapping, Optional

import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from jaxseg.errors import InputError
from jaxseg.logging_utils import get_logger

_LOG = get_logger("train.checkpoint")
REPLACED_SUFFIX = ".replaced"
_RESUME_FIX = ("--resume needs a previous run in the same workdir; check the workdir or run "
               "without --resume to start from scratch")


def _save_each_array_from_one_replica() -> None:
  """Registers orbax's jax.Array handler without replica-parallel writing (CPU, one
  process)."""
  ocp.type_handlers.register_type_handler(
      jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True)


def finished_steps(directory: str | os.PathLike) -> list[int]:
  """The finished steps of a checkpoint folder, ascending, from its step folder names (orbax
  renames a step's temporary folder to the bare step number only once it is complete; a
  `<step>.replaced` copy whose replacement never finished counts as that step); [] when the
  folder does not exist. Opens and creates nothing, so it may look at any work directory.
  """
  directory = os.fspath(directory)
  try:
    names = os.listdir(directory)
  except (FileNotFoundError, NotADirectoryError):
    return []
  steps = {n.removesuffix(REPLACED_SUFFIX) for n in names
           if os.path.isdir(os.path.join(directory, n))}
  return sorted(int(n) for n in steps if n.isdigit())


def _on_first_process(action, directory: str, what: str) -> None:
  """Runs the file operation `action()` on process 0 and waits for it on every process (also
  when it fails: process 0 raises its error after the barrier, so no process waits forever)."""
  error = None
  if jax.process_index() == 0:
    try:
      action()
    except Exception as e:  # pylint: disable=broad-exception-caught
      error = e
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"jaxseg checkpoint {what} {directory}")
  if error is not None:
    raise error


def _settle_replacements(directory: str) -> None:
  """Finishes what a crash interrupted while a step was being replaced: the old copy
  `<step>.replaced` goes back when its replacement never finished, else it is deleted."""
  for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
    step = name.removesuffix(REPLACED_SUFFIX)
    if name == step or not step.isdigit():
      continue
    old, new = os.path.join(directory, name), os.path.join(directory, step)
    if os.path.isdir(new):
      _LOG.info("removing %s: its replacement %s was finished", old, new)
      shutil.rmtree(old)
    else:
      _LOG.warning("putting back %s: the save replacing it did not finish", new)
      os.rename(old, new)


def restore_error(step_dir: str, error: Exception, fix: str) -> InputError:
  """The one-line InputError for a step folder orbax cannot restore (its first message line)."""
  detail = str(error).splitlines()[0][:300] if str(error) else ""
  return InputError(step_dir, f"checkpoint cannot be restored ({type(error).__name__}: "
                    f"{detail})", fix)


def check_run_start(workdir: str, phases: tuple[str, ...], resume: bool) -> None:
  """Checks, before anything is built or written, that a training run may start in `workdir`.

  With `resume`, `workdir` must hold a finished checkpoint of one of `phases`
  (`<workdir>/checkpoints/<phase>/<step>/`); without it, none, so that a new run never trains
  over an earlier one. Raises InputError naming what was expected; only reads.
  """
  workdir = os.path.abspath(workdir)
  steps = {phase: finished_steps(os.path.join(workdir, "checkpoints", phase))
           for phase in phases}
  if not resume:
    for phase, found in steps.items():
      if found:
        raise InputError(os.path.join(workdir, "checkpoints", phase), f"the work directory "
                         f"already has {phase} checkpoints from an earlier run (steps {found})",
                         "pass --resume to continue it, or choose another --config.workdir")
    return
  if not os.path.isdir(workdir):
    parent = os.path.dirname(workdir)
    siblings = os.listdir(parent) if os.path.isdir(parent) else []
    close = difflib.get_close_matches(os.path.basename(workdir), siblings, n=3)
    hint = f" (did you mean {', '.join(os.path.join(parent, c) for c in close)}?)" if close else ""
    raise InputError(workdir, "--resume: the work directory does not exist",
                     f"pass the work directory of the run to continue{hint}, or run without "
                     "--resume to start a new run")
  if not any(steps.values()):
    expected = os.path.join(workdir, "checkpoints", "{" + ",".join(phases) + "}", "<step>")
    raise InputError(workdir, f"--resume: no finished checkpoint to continue from (expected "
                     f"{expected}/)", "check --config.workdir and --config.mode against the "
                     "run to continue, or run without --resume to start from scratch")


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
    if jax.process_count() == 1 and jax.default_backend() == "cpu":
      _save_each_array_from_one_replica()
    # Every process joins the barrier: whether the folder exists yet may differ between them.
    _on_first_process(lambda: _settle_replacements(self.directory), self.directory, "open")
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)
    self._replacing = False

  def save(self, step: int, state: Any, arrays: Optional[Mapping[str, np.ndarray]] = None,
           meta: Optional[Mapping[str, Any]] = None, force: bool = False) -> bool:
    """Starts saving `state` (a pytree of jax arrays, e.g. a TrainState), `arrays` (host
    numpy arrays, may be empty) and `meta` (JSON-serialisable) as `step`.

    Saves when step % save_every == 0 or `force`. A step that already exists is kept as it
    is, unless `force`: then it is replaced, the old copy moved aside until the new one is
    finalised (a crash in between keeps the old copy). Returns whether a save was started.
    """
    step = int(step)
    if not force and step % self.save_every:
      return False
    replacing = step in self._manager.all_steps()
    if replacing:
      if not force:
        return False
      self.wait()
      old = os.path.join(self.directory, str(step))
      _on_first_process(lambda: os.rename(old, old + REPLACED_SUFFIX), self.directory, "replace")
      self._manager.reload()
    items = {"state": ocp.args.StandardSave(state),
             "meta": ocp.args.JsonSave(dict(meta or {}))}
    if arrays:
      items["arrays"] = ocp.args.StandardSave({k: np.asarray(v) for k, v in arrays.items()})
    try:
      self._manager.save(step, args=ocp.args.Composite(**items), force=True)
    finally:
      self._replacing = self._replacing or replacing
    _LOG.info("%s checkpoint %d in %s", "replacing" if replacing else "saving", step,
              self.directory)
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
    except Exception as error:  # pylint: disable=broad-exception-caught
      # orbax and tensorstore report damaged files with many exception types.
      older = [s for s in steps if s < step]
      fallback = (f"delete {step_dir} to resume from step {older[-1]}" if older else
                  "start again without --resume in an empty workdir")
      raise restore_error(step_dir, error, "resume with the config of the run that wrote it; "
                          f"if the files are damaged, {fallback}") from error
    arrays = {k: np.asarray(v) for k, v in restored["arrays"].items()} if has_arrays else {}
    _LOG.info("restored checkpoint %d from %s", step, self.directory)
    return restored["state"], arrays, dict(restored["meta"])

  def wait(self) -> None:
    """Blocks until every started save is written and finalised (then deletes the copies
    they replaced)."""
    self._manager.wait_until_finished()
    self._drop_replaced()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self._manager.close()
    self._drop_replaced()

  def _drop_replaced(self) -> None:
    """After a replacement: deletes the old copy when the new one is finalised, else (the save
    failed) puts it back."""
    if self._replacing:
      self._replacing = False
      _on_first_process(lambda: _settle_replacements(self.directory), self.directory, "settle")

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
