"""Building a cache folder safely: one builder at a time, in a temporary folder swapped into
place only when complete, with the leftovers of interrupted builds removed.

  with exclusive_lock(os.path.join(parent, f".{name}.lock"), what=name):
    remove_stale(parent, f".{name}.build-")
    tmp = make_temp_dir(parent, f".{name}.build-")
    ...                                   # write everything into tmp
    swap_into_place(tmp, os.path.join(parent, name))

The lock is an `fcntl.flock` on a small file: the kernel releases it when its process dies
(also on SIGKILL), so a crashed build never blocks the next one, and whatever temporary folder
it left is, under the lock, certainly stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from jaxseg.errors import os_error
from jaxseg.logging_utils import get_logger

_LOG = get_logger("io.atomic")


@contextlib.contextmanager
def exclusive_lock(path: str, what: str) -> Iterator[None]:
  """Holds an exclusive lock on file `path` (created if needed); waits, with a log line, while
  another process holds it. `what` names the locked work in that line."""
  try:
    handle = open(path, "a+b")  # pylint: disable=consider-using-with
  except OSError as e:
    raise os_error(path, e, reading=False, what="lock file") from e
  with handle:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      _LOG.info("another process is building %s; waiting for it to finish (lock %s)", what, path)
      fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stale(parent: str, prefix: str) -> None:
  """Removes the entries of `parent` named `<prefix>*`: temporary folders of interrupted builds.
  Call it only while holding the lock that guards those builds."""
  if not os.path.isdir(parent):
    return
  for name in sorted(os.listdir(parent)):
    if name.startswith(prefix):
      path = os.path.join(parent, name)
      _LOG.info("removing %s, left by an interrupted build", path)
      shutil.rmtree(path, ignore_errors=True)


def make_temp_dir(parent: str, prefix: str) -> str:
  """A new folder `<parent>/<prefix>XXXXXXXX` with the permissions of a folder made by
  `os.makedirs` (mkdtemp's are private to the user; a dataset renamed from it must not be)."""
  path = tempfile.mkdtemp(prefix=prefix, dir=parent)
  os.chmod(path, 0o777 & ~_umask())
  return path


def _umask() -> int:
  umask = os.umask(0)
  os.umask(umask)
  return umask


def swap_into_place(tmp: str, final: str) -> None:
  """Renames the finished folder `tmp` to `final`, replacing an existing `final` (moved aside
  first and deleted only after the rename, so a failure leaves one complete copy)."""
  old = None
  if os.path.lexists(final):
    # Named after tmp, so that remove_stale of tmp's prefix also finds it after a crash.
    old = tempfile.mkdtemp(prefix=os.path.basename(tmp) + ".old-", dir=os.path.dirname(final))
    os.rename(final, os.path.join(old, "previous"))
  try:
    os.rename(tmp, final)
  except OSError:
    if old is not None:
      os.rename(os.path.join(old, "previous"), final)
    raise
  finally:
    if old is not None:
      shutil.rmtree(old, ignore_errors=True)


def read_json(path: str) -> Any:
  """The JSON value of `path`, or None when it is absent, unreadable or not JSON."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def write_file(path: str, write: Callable[[str], Any]) -> str:
  """write(a temporary path beside `path`, ending in its extension), then renamed to `path`:
  a reader sees the old file or the whole new one, and the temporary file never outlives a
  failure. Returns `path`."""
  directory, name = os.path.split(os.path.abspath(path))
  stem, extension = os.path.splitext(name)
  fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=extension, dir=directory)
  os.close(fd)
  try:
    os.chmod(tmp, 0o666 & ~_umask())
    write(tmp)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise
  return path


def write_npz(path: str, arrays: Mapping[str, Any]) -> str:
  """np.savez of `arrays` to exactly `path` (whatever its suffix) through `write_file`."""
  def save(tmp: str) -> None:
    with open(tmp, "wb") as f:      # a handle: np.savez would add '.npz' to another suffix
      np.savez(f, **arrays)
  return write_file(path, save)


def write_json(path: str, value: Any) -> None:
  """Writes JSON to `path` through a temporary file and a rename: a reader sees the old file or
  the whole new one, never a partial one (also when the disk fills up)."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
  try:
    os.chmod(tmp, 0o666 & ~_umask())
    with os.fdopen(fd, "w") as f:
      json.dump(value, f, indent=2, sort_keys=True)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise
