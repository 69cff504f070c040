"""The super-voxel entry point used by the dataset builders and inference."""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import numpy as np

from jaxseg.data.scene import Scene
from jaxseg.errors import InputError
from jaxseg.supervoxels.mesh_segmentation import segment_mesh
from jaxseg.supervoxels.pointcloud import pointcloud_supervoxels

_MESH_PARAMS = ("kthresh", "min_vertices")
_VCCS_PARAMS = tuple(p for p in inspect.signature(pointcloud_supervoxels).parameters
                     if p not in ("coords", "colors", "source"))


def resolve_method(scene: Scene, method: str) -> str:
  """'auto' -> 'mesh' when the scene has faces, else 'vccs'; other names pass through."""
  if method == "auto":
    return "mesh" if scene.has_mesh else "vccs"
  return method


def compute_supervoxels(scene: Scene, *, method: str = "auto", **params) -> np.ndarray:
  """Super-voxels of a scene.

  Args:
    scene: a `Scene`; 'mesh' needs `scene.faces`.
    method: 'mesh' (ScanNet segmentator, `segment_mesh`), 'vccs' (VCCS + region growing,
      `pointcloud_supervoxels`) or 'auto' (mesh when `scene.faces` is set, else vccs).
    **params: keyword arguments of the chosen function (e.g. kthresh=0.01, min_vertices=20;
      or smoothness_deg=3.0, min_points=10).
  Returns:
    int32 (N,) super-voxel ids in [0, S), -1 = not in any super-voxel.
  """
  source = scene.source or scene.name
  method = resolve_method(scene, method)
  if method == "mesh":
    if not scene.has_mesh:
      raise InputError(source, "method='mesh' but the scene has no mesh faces",
                       "use method='vccs' (or 'auto') for point clouds")
    unknown = set(params) - set(_MESH_PARAMS)
    if unknown:
      raise InputError(source, f"unknown mesh segmentation parameters {sorted(unknown)}",
                       f"use only {list(_MESH_PARAMS)}")
    return segment_mesh(scene.coords, scene.faces, **params)
  if method == "vccs":
    unknown = set(params) - set(_VCCS_PARAMS)
    if unknown:
      raise InputError(source, f"unknown point-cloud super-voxel parameters {sorted(unknown)}",
                       f"use only {list(_VCCS_PARAMS)}")
    return pointcloud_supervoxels(scene.coords, scene.colors, source=source, **params)
  raise InputError(source, f"unknown super-voxel method {method!r}",
                   "use 'auto', 'mesh' or 'vccs'")


def compute_with_settings(scene: Scene, settings: Mapping[str, Any]) -> np.ndarray:
  """Super-voxels of a scene from a data.supervoxels config section ({'method': ..., 'mesh':
  {...}, 'vccs': {...}}): int32 (N,) ids, -1 outside every super-voxel."""
  method = resolve_method(scene, settings["method"])
  return compute_supervoxels(scene, method=method, **settings[method])
