"""Logging set-up and progress bars shared by the command line and the library."""

from __future__ import annotations

import logging
import sys
from typing import Iterable, Iterator, TypeVar

import tqdm

from jaxseg import interrupts

T = TypeVar("T")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
  """Returns the library logger `jaxseg.<name>`."""
  return logging.getLogger(name if name.startswith("jaxseg") else f"jaxseg.{name}")


class _LogFileHandler(logging.FileHandler):
  """Appends to the log file, created only with the first record; when the file cannot be
  written (full disk, removed folder) it says so once on stderr and stops, instead of a
  traceback per record."""

  def __init__(self, path: str):
    super().__init__(path, delay=True)
    self._failed = False

  def emit(self, record: logging.LogRecord) -> None:
    if self._failed:
      return
    try:
      super().emit(record)  # opening the file (delayed) raises outside its own handler
    except OSError:
      self.handleError(record)

  def handleError(self, record: logging.LogRecord) -> None:
    del record
    if not self._failed:
      self._failed = True
      error = sys.exc_info()[1]
      sys.stderr.write(f"warning: the log file {self.baseFilename} cannot be written "
                       f"({error}); logging to the terminal only\n")


def setup_logging(level: int = logging.INFO, logfile: str | None = None) -> None:
  """Logs to stderr (and to `logfile` when given) with timestamps."""
  handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
  if logfile:
    handlers.append(_LogFileHandler(logfile))
  logging.basicConfig(level=level, format=_FORMAT, handlers=handlers, force=True)
  # Backend probing ("Unable to initialize backend 'tpu'") is noise on CPU/GPU machines.
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
  # orbax logs every checkpoint file operation through absl at INFO.
  logging.getLogger("absl").setLevel(logging.WARNING)


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
  """The items under a tqdm progress bar on stderr (refreshed every 0.5 s on a terminal, else
  every 5 s); stops with KeyboardInterrupt before an item once Ctrl-C was pressed, even if
  the interrupt itself was swallowed (`jaxseg.interrupts`)."""
  interactive = sys.stderr.isatty()
  for item in tqdm.tqdm(items, desc=desc, total=total, file=sys.stderr, dynamic_ncols=True,
                        mininterval=0.5 if interactive else 5.0):
    interrupts.check()
    yield item
