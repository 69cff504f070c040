"""Pictures of evaluated scenes: `<workdir>/renders/<scene>.png` and TensorBoard images.

Each picture is `viz.render.comparison_panel`: top-down and oblique views of the ground truth,
the prediction (the first seed's point-wise clusters mapped to classes by its Hungarian match)
and the errors.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping

import numpy as np
from PIL import Image

from jaxseg.data.tfds_builders import record_text
from jaxseg.eval.report import ScalarWriter
from jaxseg.io import files
from jaxseg.io.labels import class_names
from jaxseg.logging_utils import get_logger
from jaxseg.train.context import RunContext
from jaxseg.viz import render

_LOG = get_logger("eval.renders")


@dataclasses.dataclass
class ScenePrediction:
  """One evaluated scene's points (N of them): the record index, coordinates f32 (N, 3)
  metres, ground-truth classes int32 (N,) (-1 ignore) and predicted clusters int32 (N,)."""
  scene_index: int
  coords: np.ndarray
  labels: np.ndarray
  clusters: np.ndarray


def scene_predictions(host: Mapping[str, np.ndarray], point_clusters: np.ndarray
                      ) -> list[ScenePrediction]:
  """The scenes of a host evaluation batch (pack by pack, slot by slot) with their points'
  clusters; point_clusters: int [G, P] of the padded batch."""
  out = []
  for pack, indices in enumerate(np.asarray(host["scene_index"])):
    for slot, index in enumerate(indices):
      if index < 0:
        continue
      mask = host["point_mask"][pack] & (host["point_scene"][pack] == slot)
      out.append(ScenePrediction(int(index), host["point_coords"][pack][mask],
                                 host["point_labels"][pack][mask],
                                 point_clusters[pack][mask]))
  return out


def write_renders(ctx: RunContext, split: str, scenes: list[ScenePrediction],
                  cluster_to_class: np.ndarray) -> list[str]:
  """Writes one panel per scene (see the module docstring) and logs it to TensorBoard
  (`renders/<scene>`); returns the PNG paths."""
  source = ctx.data.source(split)
  folder = ctx.path("renders", "")
  os.makedirs(folder, exist_ok=True)
  paths = []
  with ScalarWriter(ctx.path("tensorboard", "")) as writer:
    for scene in scenes:
      name = record_text(source[scene.scene_index]["name"])
      predicted = np.asarray(cluster_to_class)[scene.clusters]
      panel = render.comparison_panel(scene.coords, scene.labels, predicted, ctx.num_classes,
                                      class_names(ctx.num_classes))
      path = os.path.join(folder, files.safe_file_name(name) + ".png")
      Image.fromarray(panel).save(path)
      writer.image(0, f"renders/{name}", panel)
      paths.append(path)
  _LOG.info("renders of %d scene(s) (ground truth | prediction | errors) in %s", len(paths),
            folder)
  return paths
