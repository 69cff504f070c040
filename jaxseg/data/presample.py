"""Grid pre-subsampling of a scene before it is stored: one point per cell.

The S3DIS protocol of PointDC and GrowSP stores each room sub-sampled at 1 cm with
MinkowskiEngine's `sparse_quantize(coords, colors, labels, ignore_label=-1,
quantization_size=0.01, return_index=True)`: each occupied cell keeps one of its points (its
coordinates and colour, not a mean) and takes that point's label only when every point of the
cell has the same one, else the ignore label. Training, super-voxels and evaluation then all
work on the kept points. Here the kept point is the cell's first in file order.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxseg.data.scene import Scene
from jaxseg.ops.sparse import host_maps


def grid_presample(scene: Scene, cell: float) -> Scene:
  """One point per `cell`-metre cube of `scene` (see the module docstring).

  Args:
    scene: N points; labels -1 = ignore.
    cell: cube edge in metres (> 0).
  Returns:
    a Scene of the M <= N kept points, in file order: coords, colours, normals, instances and
    segments of the kept point; labels the cell's common label or -1 where its points
    disagree; no faces (a mesh does not survive sub-sampling); frames, alignment, origin and
    source unchanged.
  """
  grid = np.floor(np.asarray(scene.coords, np.float64) / cell).astype(np.int64)
  keys = host_maps.host_keys(grid - grid.min(axis=0))
  _, first, cell_of_point = np.unique(keys, return_index=True, return_inverse=True)
  cell_of_point = cell_of_point.reshape(-1)
  order = np.argsort(first, kind="stable")          # cells in the order of their first point
  keep = first[order]
  labels = None
  if scene.labels is not None:
    point_labels = np.asarray(scene.labels, np.int64)
    low = np.full(order.size, np.iinfo(np.int64).max)
    high = np.full(order.size, np.iinfo(np.int64).min)
    np.minimum.at(low, cell_of_point, point_labels)
    np.maximum.at(high, cell_of_point, point_labels)
    labels = np.where(low == high, low, -1)[order].astype(np.int32)
  pick = lambda a: None if a is None else np.asarray(a)[keep]
  return dataclasses.replace(
      scene, coords=scene.coords[keep], colors=scene.colors[keep],
      normals=pick(scene.normals), labels=labels, instances=pick(scene.instances),
      segments=pick(scene.segments), faces=None)
