"""Per-point colours from any common encoding to the uint8 0..255 every record stores.

Exports store colours as 8-bit values (0..255, integer or float), as float fractions (0..1,
e.g. open3d and many float exports) or as 16-bit values (0..65535, e.g. `ushort red` PLY
properties of some scanners). Every reader converts through `colors_to_uint8`, which detects
the encoding from the values, rescales with a log line saying so, and refuses values that fit
none of them instead of clipping them into a different scene.
"""

from __future__ import annotations

import numpy as np

from jaxseg.errors import InputError
from jaxseg.logging_utils import get_logger

_LOG = get_logger("io.colors")
_FIX = "export colours as r, g, b in 0..255 (8-bit), 0..1 (float) or 0..65535 (16-bit)"
# Float 8-bit colours may carry rounding noise just above 255.
_EIGHT_BIT_MAX = 255.5
_SIXTEEN_BIT_MAX = 65535


def colors_to_uint8(colors: np.ndarray, source: str) -> np.ndarray:
  """(N, 3) colours -> uint8 (N, 3) in 0..255.

  Args:
    colors: (N, 3) integer or float colours: 8-bit (max <= 255), float fractions (float dtype
      and every value in [0, 1]) or 16-bit (max in (255, 65535]).
    source: the file named in the log line and in errors.

  Returns:
    uint8 (N, 3); fractions are scaled by 255 and 16-bit values by 255 / 65535 (rounded).

  Raises:
    InputError: NaN/inf, negative or above-65535 colours.
  """
  colors = np.asarray(colors)
  if colors.size == 0:
    return colors.astype(np.uint8)
  values = colors.astype(np.float64)
  if not np.isfinite(values).all():
    bad = int((~np.isfinite(values)).any(axis=-1).sum())
    raise InputError(source, f"{bad} points have NaN or inf colours", _FIX)
  low, high = float(values.min()), float(values.max())
  if low < 0 or high > _SIXTEEN_BIT_MAX:
    raise InputError(source, f"colours range over [{low:g}, {high:g}], which is none of "
                     "0..255, 0..1 or 0..65535", _FIX)
  if colors.dtype.kind == "f" and high <= 1.0:
    _LOG.info("%s: colours are fractions in 0..1; scaled to 0..255", source)
    values = values * 255.0
  elif high > _EIGHT_BIT_MAX:
    _LOG.info("%s: colours are 16-bit (max %d); scaled to 0..255", source, int(high))
    values = values * (255.0 / _SIXTEEN_BIT_MAX)
  return np.clip(np.rint(values), 0, 255).astype(np.uint8)
