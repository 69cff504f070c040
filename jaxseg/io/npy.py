"""Reading `.npy` arrays safely, with messages that fit the real problem.

numpy answers a file that is not `.npy` with advice to load it "unsafely" with
`allow_pickle=True`; `load_npy` instead says what the file is (text, pickle, empty, truncated)
and never unpickles.
"""

from __future__ import annotations

import os

import numpy as np

from jaxseg.errors import InputError, os_error
from jaxseg.io import files

_MAGIC = b"\x93NUMPY"


def load_npy(path: str | os.PathLike, fix: str) -> np.ndarray:
  """The array of a `.npy` file.

  Args:
    path: the file.
    fix: how to rewrite a bad file (e.g. 'save the cloud with numpy.save(path, array)').

  Raises:
    InputError: missing/unreadable file (with the fix of that cause), not a `.npy` file, a
      pickled object array, or a truncated file.
  """
  path = files.require_file(path, ".npy file", "check the path")
  try:
    with open(path, "rb") as f:
      head = f.read(len(_MAGIC))
  except OSError as e:
    raise os_error(path, e, what=".npy file") from e
  if head != _MAGIC:
    kind = "it is empty" if not head else (
        "it is a Python pickle" if head[:1] == b"\x80" else f"it starts with {head!r}")
    raise InputError(path, f"cannot read .npy: not a .npy file ({kind})", fix)
  try:
    return np.load(path, allow_pickle=False)
  except (ValueError, OSError) as e:
    if "pickle" in str(e):
      raise InputError(path, "cannot read .npy: the array holds Python objects, not numbers",
                       fix) from e
    raise InputError(path, f"cannot read .npy: damaged file ({e})", fix) from e
