"""Mode `infer`: label new clouds with a trained run.

  python experiments/main.py --config configs/scannet_svc.py --config.mode=infer \\
      --config.infer.input=scan.ply --config.infer.model=workdirs/scannet_svc_demo

infer.input is one cloud or a folder of them, read as infer.format (default 'custom':
.ply/.pcd/.npy/.txt; or any dataset format, e.g. 'votenet' or 's3dis', whose labels, when it
has them, are drawn beside the prediction). infer.model is a model bundle (`model.jaxseg`,
written by a run's evaluation) or a run's work directory ('' = this work directory); the
network, its voxel size and the classes come from that run (`jaxseg.inference.segmenter`);
infer.pooling (default on) pools the labels over super-voxels, the cloud's own or computed
with the run's settings. For each cloud, in infer.output ('' = <workdir>/infer):
  <name>_labels.npy   int32 (N,) the label of every point, in the input's order;
  <name>.ply          the points coloured by label, with a `label` vertex property;
  <name>.txt          the ScanNet benchmark format (one NYU40 id per point; ScanNet's 20
                      classes only);
  <name>.png          top-down and oblique views of the labels (ground truth and errors too
                      when the input is labelled);
and predictions.json saying what the labels are (classes, or cluster ids of a run never
evaluated) and listing the files.
"""

from __future__ import annotations

import json
import os
import time

import ml_collections
import numpy as np
from PIL import Image

from jaxseg.errors import InputError
from jaxseg.inference.segmenter import load
from jaxseg.io import export, files, sources
from jaxseg.io.labels import SCANNET_CLASSES, SCANNET_NYU40_IDS
from jaxseg.logging_utils import get_logger, progress
from jaxseg.train.compilation import enable_persistent_cache
from jaxseg.viz import render

_LOG = get_logger("modes.infer")


def run(config: ml_collections.ConfigDict, workdir: str, resume: bool = False) -> None:
  del resume  # Inference keeps no state between runs.
  infer = config.infer
  if not infer.input:
    raise InputError("infer.input", "no input cloud given",
                     "pass --config.infer.input=<a .ply/.pcd/.npy/.txt file or a folder>")
  root = os.path.abspath(os.path.expanduser(infer.input))
  problem = files.path_problem(root)
  if problem is not None:
    raise InputError(root, f"infer.input {problem}", "pass an existing file or folder")
  enable_persistent_cache()
  model = load(infer.model or workdir)
  out = os.path.abspath(os.path.expanduser(infer.output or os.path.join(workdir, "infer")))
  os.makedirs(out, exist_ok=True)
  kind = "classes" if model.labels_are_classes else "cluster ids (the run was never evaluated)"
  pooling = ("super-voxel pooled" if infer.pooling else "point-wise")
  _LOG.info("labelling %s with %s: labels are %s, %s", root, model.source, kind, pooling)
  scannet = model.labels_are_classes and model.class_names == SCANNET_CLASSES
  summary = {"model": model.source, "labels": kind, "pooling": pooling,
             "class_names": list(model.class_names),
             "scenes": []}
  for scene_id in progress(sources.list_scenes(infer.format, root), desc="labelling"):
    start = time.perf_counter()
    scene = sources.load_scene(infer.format, root, scene_id, with_frames=False)
    labels = model.predict_scene(scene, pooling=bool(infer.pooling))
    written = _write(out, scene, labels, model.class_names, scannet)
    entry = {"scene": scene_id, "points": scene.num_points, "files": written,
             "seconds": round(time.perf_counter() - start, 2)}
    if scene.labels is not None and model.labels_are_classes:
      entry["point_accuracy"] = float(np.mean(labels[scene.labels >= 0]
                                              == scene.labels[scene.labels >= 0]))
    summary["scenes"].append(entry)
    _LOG.info("%s: %d points labelled in %.1f s -> %s", scene_id, scene.num_points,
              entry["seconds"], written[0])
  with open(os.path.join(out, "predictions.json"), "w") as f:
    json.dump(summary, f, indent=2)
  _LOG.info("%d cloud(s) labelled; files and predictions.json in %s", len(summary["scenes"]),
            out)


def _write(out: str, scene, labels: np.ndarray, names, scannet: bool) -> list[str]:
  """The files of one labelled cloud (see the module docstring); returns their paths."""
  stem = os.path.join(out, files.safe_file_name(os.path.splitext(scene.name)[0]))
  paths = [stem + "_labels.npy", stem + ".ply", stem + ".png"]
  np.save(paths[0], labels.astype(np.int32))
  colours = render.palette(len(names))[np.clip(labels, 0, None)]
  export.write_scene_ply(paths[1], scene, colours, {"label": labels.astype(np.int32)})
  Image.fromarray(render.comparison_panel(scene.coords, scene.labels, labels, len(names),
                                          names)).save(paths[2])
  if scannet:
    paths.append(stem + ".txt")
    np.savetxt(paths[3], np.asarray(SCANNET_NYU40_IDS)[labels], fmt="%d")
  return paths
