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
evaluated) and listing the files. <name> is the cloud's file name without its extension, or
with it (`room_ply`) when two clouds of the folder share a name. Every file is written whole
or not at all, and predictions.json is rewritten after each cloud, so a run stopped by a bad
cloud keeps the labels and the summary of the clouds before it. The output folder may not be
the input folder (the labelled .ply would replace the input cloud of the same name).
"""

from __future__ import annotations

import collections
import os
import time

import ml_collections
import numpy as np
from PIL import Image

from jaxseg.errors import InputError
from jaxseg.inference.segmenter import load
from jaxseg.io import atomic, export, files, sources
from jaxseg.io.labels import S3DIS_CLASSES, SCANNET_CLASSES, SCANNET_NYU40_IDS
from jaxseg.logging_utils import get_logger, progress
from jaxseg.train.compilation import enable_persistent_cache
from jaxseg.viz import render

_LOG = get_logger("modes.infer")
# The files written per cloud, after its stem.
_SUFFIXES = ("_labels.npy", ".ply", ".png", ".txt")
# The classes a format's labels are read as (a custom cloud's labels are taken as the model's).
_FORMAT_CLASSES = {"scannet": SCANNET_CLASSES, "votenet": SCANNET_CLASSES,
                   "mmdet3d": SCANNET_CLASSES, "s3dis": S3DIS_CLASSES}


def _paths(config: ml_collections.ConfigDict, workdir: str) -> tuple[str, str, str]:
  """(input cloud or folder, model bundle or run directory, output folder), absolute."""
  infer = config.infer
  expand = lambda p: os.path.abspath(os.path.expanduser(p))
  return (expand(infer.input), expand(infer.model or workdir),
          expand(infer.output or os.path.join(workdir, "infer")))


def check(config: ml_collections.ConfigDict, workdir: str) -> None:
  """InputError, before anything is written, for a missing input or model and for an output
  folder that is the input folder."""
  if not config.infer.input:
    raise InputError("infer.input", "no input cloud given",
                     "pass --config.infer.input=<a .ply/.pcd/.npy/.txt file or a folder>")
  root, model, out = _paths(config, workdir)
  problem = files.path_problem(root)
  if problem is not None:
    raise InputError(root, f"infer.input {problem}", "pass an existing file or folder")
  problem = files.path_problem(model)
  if problem is not None:
    what = "infer.model" if config.infer.model else "the work directory (infer.model='')"
    raise InputError(model, f"{what} {problem}", "pass --config.infer.model=<a model bundle "
                     "(model.jaxseg) or the work directory of a finished run>")
  folder = root if os.path.isdir(root) else os.path.dirname(root)
  fix = "pass another --config.infer.output (default: <workdir>/infer)"
  if os.path.realpath(out) == os.path.realpath(folder):
    raise InputError("infer.output", f"{out} is the folder of the input clouds, whose files "
                     "the labelled clouds would replace", fix)
  if config.infer.format == "custom":   # Linked clouds may live in the output folder.
    names = sources.list_scenes("custom", root)
    for name, stem in _output_stems(names).items():
      source = os.path.realpath(os.path.join(folder, name))
      if any(os.path.realpath(os.path.join(out, stem + suffix)) == source
             for suffix in _SUFFIXES):
        raise InputError("infer.output", f"the labelled cloud of {name} would replace "
                         f"{source}, the input cloud itself", fix)


def run(config: ml_collections.ConfigDict, workdir: str, resume: bool = False) -> None:
  """Labels the clouds (module docstring); `check` has passed (the command line's preflight)."""
  del resume  # Inference keeps no state between runs.
  infer = config.infer
  root, model_path, out = _paths(config, workdir)
  enable_persistent_cache()
  model = load(model_path)
  os.makedirs(out, exist_ok=True)
  kind = "classes" if model.labels_are_classes else "cluster ids (the run was never evaluated)"
  pooling = ("super-voxel pooled" if infer.pooling else "point-wise")
  _LOG.info("labelling %s with %s: labels are %s, %s", root, model.source, kind, pooling)
  scannet = model.labels_are_classes and model.class_names == SCANNET_CLASSES
  comparable = model.labels_are_classes and _FORMAT_CLASSES.get(
      infer.format, model.class_names) == model.class_names
  summary = {"model": model.source, "labels": kind, "pooling": pooling,
             "class_names": list(model.class_names), "finished": False, "scenes": []}
  summary_path = os.path.join(out, "predictions.json")
  scene_ids = sources.list_scenes(infer.format, root)
  stems = _output_stems(scene_ids)
  for scene_id in progress(scene_ids, desc="labelling"):
    start = time.perf_counter()
    scene = sources.load_scene(infer.format, root, scene_id, with_frames=False)
    labels = model.predict_scene(scene, pooling=bool(infer.pooling))
    written = _write(os.path.join(out, stems[scene_id]), scene, labels, model.class_names,
                     scannet)
    entry = {"scene": scene_id, "points": scene.num_points, "files": written,
             "seconds": round(time.perf_counter() - start, 2)}
    labelled = scene.labels >= 0 if scene.labels is not None else None
    if labelled is not None and labelled.any() and comparable:
      entry["point_accuracy"] = float(np.mean(labels[labelled] == scene.labels[labelled]))
    summary["scenes"].append(entry)
    atomic.write_json(summary_path, summary)
    _LOG.info("%s: %d points labelled in %.1f s -> %s", scene_id, scene.num_points,
              entry["seconds"], written[0])
  if not comparable and infer.format in _FORMAT_CLASSES:
    _LOG.info("no point accuracy: %s labels are not the model's classes", infer.format)
  summary["finished"] = True
  atomic.write_json(summary_path, summary)
  _LOG.info("%d cloud(s) labelled; files and predictions.json in %s", len(summary["scenes"]),
            out)


def _output_stems(scene_ids: list[str]) -> dict[str, str]:
  """The output file stem of each cloud, one safe file name each (folders of s3dis ids joined
  by '__'): its id without the extension, or with it (`room_ply`) where two ids share that
  stem, and `_2`, `_3`, ... after a name that is still taken."""
  stems = {i: os.path.splitext(i)[0] for i in scene_ids}
  shared = collections.Counter(stems.values())
  out, taken = {}, set()
  for i, stem in stems.items():
    name = files.safe_file_name(stem if shared[stem] == 1 else i.replace(".", "_"))
    unique, n = name, 1
    while unique in taken:
      n += 1
      unique = f"{name}_{n}"
    out[i] = unique
    taken.add(unique)
  return out


def _write(stem: str, scene, labels: np.ndarray, names, scannet: bool) -> list[str]:
  """The files of one labelled cloud at `stem` (see the module docstring); their paths."""
  labels = labels.astype(np.int32)
  colours = render.palette(len(names))[np.clip(labels, 0, None)]
  panel = render.comparison_panel(scene.coords, scene.labels, labels, len(names), names)

  paths = [atomic.write_file(stem + "_labels.npy", lambda p: np.save(p, labels)),
           atomic.write_file(stem + ".ply", lambda p: export.write_scene_ply(
               p, scene, colours, {"label": labels})),
           atomic.write_file(stem + ".png", lambda p: Image.fromarray(panel).save(p))]
  if scannet:
    ids = np.asarray(SCANNET_NYU40_IDS)[labels]
    paths.append(atomic.write_file(stem + ".txt", lambda p: np.savetxt(p, ids, fmt="%d")))
  return paths
