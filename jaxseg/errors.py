"""Errors raised on bad user input: each names the file, the problem and the fix."""

from __future__ import annotations

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
