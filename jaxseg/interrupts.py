"""Ctrl-C that cannot be lost.

Python runs a SIGINT handler between bytecodes of the main thread, so the KeyboardInterrupt it
raises can land inside a callback whose exceptions the interpreter only prints ("Exception
ignored in ..."), e.g. one of the garbage-collector callbacks XLA registers; the run then
went on as if nothing had happened. `install()` makes Ctrl-C also leave a mark that
`check()` (called by every progress loop, `logging_utils.progress`) turns into a
KeyboardInterrupt at the next item, so a swallowed one still stops the run; the
interpreter's "Exception ignored" traceback of that KeyboardInterrupt is not printed (other
ignored exceptions still are).
"""

from __future__ import annotations

import signal
import sys
import threading

_REQUESTED = threading.Event()


def _handler(signum, frame) -> None:
  del signum, frame
  _REQUESTED.set()
  raise KeyboardInterrupt


def _unraisable(unraisable) -> None:
  if isinstance(unraisable.exc_value, KeyboardInterrupt) and _REQUESTED.is_set():
    return   # The mark stops the run at the next progress item.
  sys.__unraisablehook__(unraisable)


def install() -> None:
  """Handles SIGINT as above (call from the main thread of the command line)."""
  _REQUESTED.clear()
  signal.signal(signal.SIGINT, _handler)
  sys.unraisablehook = _unraisable


def check() -> None:
  """Raises KeyboardInterrupt when Ctrl-C was pressed since `install()`."""
  if _REQUESTED.is_set():
    raise KeyboardInterrupt
