"""Writing a scene back out in its source's own coordinates.

Readers recentre georeferenced clouds before the float32 cast (`jaxseg.io.coords`); exporting
adds `Scene.origin` back in float64, so an exported cloud lines up with the original data.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from jaxseg.data.scene import Scene
from jaxseg.io.ply import write_ply


def write_scene_ply(path: str | os.PathLike, scene: Scene, colors: np.ndarray | None = None,
                    fields: Mapping[str, np.ndarray] | None = None) -> None:
  """Writes a scene's points as a binary PLY in the source frame.

  Args:
    path: the .ply file to write.
    scene: the scene; coordinates are written as `coords + origin`, in float64 (`double`)
      when the scene has an origin, else float32.
    colors: uint8 (N, 3) colours to write instead of the scene's (e.g. labels drawn as colours).
    fields: extra per-point (N,) vertex properties, e.g. {'label': labels.astype(np.int32)}.
  """
  coords = scene.source_coords()
  if scene.origin is None:
    coords = coords.astype(np.float32)
  rgb = np.asarray(scene.colors if colors is None else colors, np.uint8)
  vertex = {"x": coords[:, 0], "y": coords[:, 1], "z": coords[:, 2],
            "red": rgb[:, 0], "green": rgb[:, 1], "blue": rgb[:, 2]}
  vertex.update(fields or {})
  write_ply(path, vertex)
