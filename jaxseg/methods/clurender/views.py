"""The posed views a training scene is rendered into (host side, in the input workers).

  sampler = ViewSampler(num_views=8, image_size=(320, 240))
  element.update(sampler(record, element, rng))     # `pipeline.process_scene(..., views=)`

Each training step draws `num_views` (CluRender's N_r) of the scene's posed frames without
replacement (all of them when it has fewer; the rest are marked invalid), reads their colour
images resized to `image_size`, and builds, per view:
  view_images          uint8 (N_r, H, W, 3)   the photo
  view_world_to_camera f32 (N_r, 4, 4)        maps the scene's pipeline coordinates (after the
                                              augmentation `element['transform']`) to camera
                                              coordinates: inverse(pose) @ inverse(transform)
  view_intrinsics      f32 (N_r, 3, 3)        for images of `image_size`
  view_valid           bool (N_r,)
  view_seed            int32 (N_r,)             seeds the step's pixel draws of each view
  view_rows            int32 (N_r, M)         the scene's voxels (rows of its voxel arrays)
                                              whose splat reaches the view, -1 padded; the
                                              packing shifts them to pack rows and pads M to a
                                              capacity (`packing`, need 'view_points')
A scene without frames gets N_r invalid views and no rows. Voxels are placed at the mean of
their points, as the training step places them (`pooling.segment_mean`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from jaxseg.methods.pointdc.point_features import (frame_fields, load_color,
                                                  resized_intrinsics, select_views)


def voxel_centres(point_coords: np.ndarray, point_to_voxel: np.ndarray,
                  num_voxels: int) -> np.ndarray:
  """float64 (V, 3): the mean of each voxel's points (points (P, 3), point_to_voxel (P,))."""
  sums = np.zeros((num_voxels, 3), np.float64)
  np.add.at(sums, point_to_voxel, np.asarray(point_coords, np.float64))
  counts = np.bincount(point_to_voxel, minlength=num_voxels).astype(np.float64)
  return sums / np.maximum(counts, 1.0)[:, None]


def rows_in_view(centres: np.ndarray, world_to_camera: np.ndarray, intrinsics: np.ndarray,
                 size: tuple[int, int], *, radius: float, min_depth: float) -> np.ndarray:
  """int32 row indices of the points (V, 3) in front of the camera whose disk of `radius`
  pixels reaches the image of `size` (W, H) (the host twin of `splatting.in_view`)."""
  width, height = size
  camera = centres @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
  z = camera[:, 2]
  safe = np.where(z > min_depth, z, 1.0)
  u = (intrinsics[0, 0] * camera[:, 0] + intrinsics[0, 1] * camera[:, 1]) / safe + intrinsics[0, 2]
  v = intrinsics[1, 1] * camera[:, 1] / safe + intrinsics[1, 2]
  reach = radius + 1.0   # half a pixel beyond `in_view`'s margin: float32 rounding on device
  seen = ((z > min_depth) & (u >= -reach) & (u < width - 1 + reach) & (v >= -reach)
          & (v < height - 1 + reach))
  return np.flatnonzero(seen).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class ViewSampler:
  """Draws a training scene's views (see the module docstring). Picklable (input workers).

  num_views: N_r; image_size: (W, H) the photos are resized to; max_views: draw among at most
  this many of the scene's frames, evenly spaced (0 = all); radius, min_depth: the renderer's
  (`splatting.render_view`), to decide which voxels can reach a view.
  """
  num_views: int
  image_size: tuple[int, int] = (320, 240)
  max_views: int = 0
  radius: float = 4.0
  min_depth: float = 0.1

  def __call__(self, record: Mapping[str, Any], element: Mapping[str, Any],
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    width, height = self.image_size
    count = self.num_views
    out = {"view_images": np.zeros((count, height, width, 3), np.uint8),
           "view_world_to_camera": np.tile(np.eye(4, dtype=np.float32), (count, 1, 1)),
           "view_intrinsics": np.tile(np.eye(3, dtype=np.float32), (count, 1, 1)),
           "view_valid": np.zeros(count, bool),
           "view_seed": rng.integers(0, np.iinfo(np.int32).max, size=count, dtype=np.int32)}
    frames = record.get("frames")
    usable = np.zeros(0, np.int64)
    if frames is not None:
      fields = frame_fields(frames)
      usable = select_views(fields["poses"], self.max_views)
    if not len(usable):
      out["view_rows"] = np.full((count, 0), -1, np.int32)
      return out
    chosen = np.sort(rng.choice(usable, size=min(count, len(usable)), replace=False))
    intrinsics = resized_intrinsics(fields["color_intrinsics"], fields["color_size"],
                                    self.image_size)
    unaugment = np.linalg.inv(np.asarray(element["transform"], np.float64))
    centres = voxel_centres(element["point_coords"], element["point_to_voxel"],
                            len(element["voxel_coords"]))
    rows = []
    for slot, frame in enumerate(chosen.tolist()):
      world_to_camera = np.linalg.inv(fields["poses"][frame].astype(np.float64)) @ unaugment
      out["view_images"][slot] = load_color(fields["color_paths"][frame], fields["color_size"],
                                            self.image_size)
      out["view_world_to_camera"][slot] = world_to_camera
      out["view_intrinsics"][slot] = intrinsics
      out["view_valid"][slot] = True
      rows.append(rows_in_view(centres, world_to_camera, intrinsics, self.image_size,
                               radius=self.radius, min_depth=self.min_depth))
    width_rows = max(len(r) for r in rows)
    out["view_rows"] = np.full((count, width_rows), -1, np.int32)
    for slot, r in enumerate(rows):
      out["view_rows"][slot, :len(r)] = r
    return out
