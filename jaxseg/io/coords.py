"""Point coordinates from a file to the float32 metres every record stores, without losing
precision to large offsets.

float32 keeps 24 bits of mantissa: at 500 km (a UTM easting) its step is 3 cm, and at
5,000 km (a northing) 50 cm, so a georeferenced cloud cast directly to float32 collapses onto a
coarse grid. `to_float32_coords` therefore subtracts an origin in float64 first when the
coordinates are far from zero, and returns it so the reader can keep it in `Scene.origin`
(source = coords + origin; exports add it back). Poses and alignments of such a scene move by
the same origin (`recentre_frames`, `recentre_alignment`).
"""

from __future__ import annotations

import numpy as np

from jaxseg.data.scene import Frames
from jaxseg.logging_utils import get_logger

_LOG = get_logger("io.coords")
# Coordinates beyond this many metres from zero are recentred (float32 step there: 61 um).
RECENTRE_ABOVE = 1000.0
# Indoor scans span tens of metres; a larger extent usually means millimetres or centimetres.
PLAUSIBLE_EXTENT = 500.0


def to_float32_coords(coords: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray | None]:
  """(N, 3) coordinates of any numeric dtype -> (float32 (N, 3), origin float64 (3,) or None).

  When a finite coordinate lies more than RECENTRE_ABOVE metres from zero, the origin is the
  bounding-box minimum rounded down to whole metres and is subtracted in float64 before the
  cast (logged); otherwise the origin is None and the values are cast as they are. A scene
  whose extent exceeds PLAUSIBLE_EXTENT gets a warning about units. NaN/inf rows are left for
  `Scene.validate` to report.
  """
  values = np.asarray(coords, np.float64)
  finite = values[np.isfinite(values).all(axis=1)] if values.ndim == 2 else values[:0]
  if not finite.size:
    return values.astype(np.float32), None
  low, high = finite.min(axis=0), finite.max(axis=0)
  extent = float((high - low).max())
  if extent > PLAUSIBLE_EXTENT:
    _LOG.warning("%s: the points span %.0f units; indoor scans span tens of metres. If the "
                 "coordinates are millimetres (centimetres), divide them by 1000 (100) before "
                 "preparing the data", source, extent)
  if max(np.abs(low).max(), np.abs(high).max()) <= RECENTRE_ABOVE:
    return values.astype(np.float32), None
  origin = np.floor(low)
  _LOG.info("%s: coordinates lie up to %.0f m from zero; recentred on origin (%.0f, %.0f, "
            "%.0f) before the float32 cast (kept in the scene's origin)", source,
            max(np.abs(low).max(), np.abs(high).max()), *origin)
  return (values - origin).astype(np.float32), origin


def recentre_frames(frames: Frames | None, origin: np.ndarray | None) -> Frames | None:
  """Frames whose camera-to-world poses map into the recentred frame (translation - origin)."""
  if frames is None or origin is None:
    return frames
  poses = np.array(frames.poses, np.float64)
  poses[:, :3, 3] -= origin
  frames.poses = poses.astype(np.float32)
  return frames


def recentre_alignment(matrix: np.ndarray | None, origin: np.ndarray | None
                       ) -> np.ndarray | None:
  """A 4x4 source -> aligned transform rewritten to take recentred points (float32 (4, 4))."""
  if matrix is None or origin is None:
    return matrix
  out = np.array(matrix, np.float64)
  out[:3, 3] += out[:3, :3] @ origin
  return out.astype(np.float32)
