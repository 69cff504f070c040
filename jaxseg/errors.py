"""Errors raised on bad user input: each names the file, the problem and the fix."""

from __future__ import annotations

import errno
import os


class InputError(ValueError):
  """Bad input data or configuration.

  The message always has three parts so a user can act on it without reading code:
  `<path>: <problem>. Fix: <fix>`.
  """

  def __init__(self, path: str | os.PathLike | None, problem: str, fix: str):
    self.path = None if path is None else os.fspath(path)
    self.problem = problem
    self.fix = fix
    where = f"{self.path}: " if self.path else ""
    super().__init__(f"{where}{problem}. Fix: {fix}")


# Errors of the machine rather than of one input file: a build stops on them even with
# data.skip_bad, because every later scene would fail the same way.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EMFILE,
                                errno.ENFILE, errno.ENOMEM})


_UNKNOWN = "cannot be accessed"


def _os_fix(code: int | None, path: str, reading: bool | None) -> tuple[str, str]:
  """(problem, fix) for an OSError errno on `path`."""
  if code in (errno.EACCES, errno.EPERM):
    if reading is None:
      return "permission denied", (f"check the permissions of {path} (`ls -ld {path}`): this "
                                   "user must read the inputs and write the work and dataset "
                                   "folders")
    action = "readable" if reading else "writable"
    flag = "r" if reading else "w"
    return ("permission denied",
            f"make it {action} for this user (e.g. `chmod u+{flag} {path}` or on its folder), "
            "or run as its owner")
  if code == errno.ENOSPC:
    return "no space left on the device", ("free disk space, or write elsewhere "
                                           "(--config.workdir / --config.data.dataset_dir)")
  if code == errno.EDQUOT:
    return "disk quota exceeded", "free space within your quota, or write elsewhere"
  if code == errno.EROFS:
    return "the file system is read-only", ("choose a writable location "
                                            "(--config.workdir / --config.data.dataset_dir)")
  if code == errno.ELOOP:
    return "symbolic link loop", f"point the link {path} at a real file (`ls -l {path}`)"
  if code == errno.ENOENT:
    return "does not exist", "check the path (and, for a link, its target)"
  if code == errno.ENOTDIR:
    return "a parent of this path is a file, not a folder", "choose a path below a folder"
  if code == errno.EISDIR:
    return "is a folder where a file was expected", "pass the file, not a folder"
  if code == errno.EEXIST:
    return "already exists", "remove it or choose another path"
  if code in (errno.EMFILE, errno.ENFILE):
    return "too many open files", "raise the limit (`ulimit -n 4096`) and run again"
  if code == errno.EIO:
    return "input/output error", "check the disk or network file system holding the file"
  return _UNKNOWN, "check the path, its permissions and the disk"


def os_error(path: str | os.PathLike | None, error: OSError, *, reading: bool | None = True,
             what: str = "") -> InputError:
  """An InputError for an OSError, with the fix that matches its cause (errno).

  Args:
    path: the file concerned (default: the error's own filename).
    error: the OSError (PermissionError, FileNotFoundError, ENOSPC, ...).
    reading: whether the file was being read (False: written; None: unknown): chooses the
      permission fix.
    what: optional description of the file, e.g. 'the ScanNet mesh'.
  """
  path = os.fspath(path) if path is not None else (
      os.fspath(error.filename) if error.filename else None)
  problem, fix = _os_fix(error.errno, path or "the file", reading)
  if problem == _UNKNOWN:
    problem = f"{problem} ({error.strerror or error})"
  return InputError(path, f"{what}: {problem}" if what else problem, fix)


def errno_in_message(error: BaseException) -> int | None:
  """The errno of an error of the machine that a library reports only in its message (e.g.
  ArrayRecord's `RuntimeError: ... No space left on device`), else None."""
  text = str(error)
  for code in sorted(ENVIRONMENT_ERRNOS | {errno.EACCES}):
    if os.strerror(code) in text:
      return code
  return None


def is_environment_error(error: BaseException) -> bool:
  """Whether an error is about the machine (disk full, read-only, out of memory or file
  handles) rather than about one input."""
  if isinstance(error, MemoryError):
    return True
  return isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS
