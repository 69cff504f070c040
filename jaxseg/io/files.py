"""Opening the files of an export with errors that say what is wrong with the path itself.

A missing file, a dangling symbolic link, a link loop, a folder where a file belongs and an
unreadable file each get their own message and fix, so that no reader mistakes one for
another (a permission problem is never answered with "re-download the file"), and no reader
skips a file that is there but cannot be opened.
"""

from __future__ import annotations

import errno
import os
import re

from jaxseg.errors import InputError, os_error

_LINK_FIX = "point the link at the real file (`ls -l` shows where it points), or remove it"


def safe_file_name(name: str) -> str:
  """`name` as one file name: every run of characters other than letters, digits, '_', '.'
  and '-' (path separators included) becomes '__'."""
  return re.sub(r"[^A-Za-z0-9_.-]+", "__", name)


def path_problem(path: str | os.PathLike) -> str | None:
  """Why nothing can be opened at `path`, or None when it resolves to an existing entry.

  Returns 'does not exist', 'is a symbolic link loop' or 'is a dangling symbolic link to X'.
  """
  path = os.fspath(path)
  if os.path.exists(path):
    return None
  if os.path.islink(path):
    try:
      os.stat(path)
    except OSError as e:
      if e.errno == errno.ELOOP:
        return "is a symbolic link loop"
    return f"is a dangling symbolic link to {os.readlink(path)!r}"
  parent = os.path.dirname(os.path.abspath(path))
  while parent and not os.path.lexists(parent):
    parent = os.path.dirname(parent)
  if os.path.islink(parent) and not os.path.exists(parent):
    return f"lies below {parent}, which {path_problem(parent)}"
  return "does not exist"


def require_file(path: str | os.PathLike, what: str, fix: str) -> str:
  """Returns `path` when it is a readable regular file, else raises InputError.

  Args:
    path: the file.
    what: what the file is, e.g. 'ScanNet mesh'; starts the problem text.
    fix: the fix for a file that is simply missing (links, folders and permissions get their
      own fixes).
  """
  path = os.fspath(path)
  problem = path_problem(path)
  if problem is not None:
    raise InputError(path, f"{what} {problem}", fix if problem == "does not exist"
                     else _LINK_FIX)
  if os.path.isdir(path):
    raise InputError(path, f"{what} is a folder, not a file", "pass the file, not a folder")
  if not os.access(path, os.R_OK):
    raise os_error(path, PermissionError(errno.EACCES, "Permission denied", path), what=what)
  return path


def optional_file(path: str | os.PathLike, what: str) -> bool:
  """Whether an optional file is present: False when nothing is at `path`; True when it is a
  readable file; InputError when something is there that cannot be read (a dangling link, a
  link loop, a folder, no permission), so that it is never taken as absent."""
  if not os.path.lexists(path):
    return False
  require_file(path, what, "check the path")
  return True


def read_bytes(path: str | os.PathLike, what: str, fix: str) -> bytes:
  """The content of a file (InputError naming the real cause when it cannot be read)."""
  path = require_file(path, what, fix)
  try:
    with open(path, "rb") as f:
      return f.read()
  except OSError as e:
    raise os_error(path, e, what=what) from e


def require_dir(path: str | os.PathLike, what: str, fix: str) -> str:
  """Returns `path` when it is a listable folder, else raises InputError (missing, dangling
  or looping link, a file, or no permission)."""
  path = os.fspath(path)
  problem = path_problem(path)
  if problem is not None:
    raise InputError(path, f"{what} {problem}", fix if problem == "does not exist"
                     else _LINK_FIX)
  if not os.path.isdir(path):
    raise InputError(path, f"{what} is a file, not a folder", fix)
  try:
    os.listdir(path)
  except OSError as e:
    raise os_error(path, e, what=what) from e
  return path


def require_writable_dir(path: str | os.PathLike, what: str, fix: str) -> str:
  """Returns `path` when it is, or can be created as, a writable folder; else InputError
  (a file in the way, a file among its parents, no write permission, a read-only file system).
  Creates nothing."""
  path = os.path.abspath(os.fspath(path))
  existing = path
  while not os.path.lexists(existing):
    existing = os.path.dirname(existing)
  if existing != path and not os.path.isdir(existing):
    raise InputError(path, f"{what} cannot be created: {existing} is a file, not a folder", fix)
  if existing == path and not os.path.isdir(path):
    problem = path_problem(path)
    raise InputError(path, f"{what} {problem or 'is a file, not a folder'}", fix)
  if _read_only_file_system(existing):
    raise InputError(path, f"{what} is on a read-only file system ({existing})", fix)
  if not os.access(existing, os.W_OK | os.X_OK):
    raise InputError(path, f"{what} is not writable: permission denied on {existing}",
                     f"make {existing} writable for this user (e.g. `chmod u+w {existing}`), "
                     f"or {fix[0].lower() + fix[1:]}")
  return path


def _read_only_file_system(path: str) -> bool:
  try:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
  except OSError:
    return False
