"""Renders a scene coloured by RGB, ground-truth class or super-voxel for a quick look.

From a raw export (super-voxels computed on the fly when the export has none):
  python tools/visualize.py --format votenet --root ../shared/data/scannet_mini/labeled \
      --scene scene0000_00 --color segments --out /tmp/scene0000_00
From a built dataset (the `dataset_dir` printed by `--config.mode=prepare`):
  python tools/visualize.py --dataset ~/.cache/jaxseg/datasets/<...>/jaxseg_scannet/1.0.0 \
      --split train --index 0 --color labels --out /tmp/first

Predictions of `infer` (its <name>_labels.npy) beside the ground truth, with an error map:
  python tools/visualize.py --format custom --root my_scans --scene room.ply \
      --predictions workdirs/my_scans/infer/room_labels.npy --out /tmp/room

Writes <out>.png (top-down view, highest point per pixel; with --predictions the panel of
ground truth (when the scene has labels) | prediction | errors, from above and obliquely) and
<out>.ply (coloured points, opens in MeshLab / CloudCompare; in the source frame, with any
recentring offset (`origin`) added back).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image

from jaxseg.io import export
from jaxseg.io.labels import class_names
from jaxseg.viz import render


def _from_dataset(path: str, split: str, index: int):
  """Scene `index` of a built dataset's split, and its super-voxel ids."""
  import tensorflow_datasets as tfds
  from jaxseg.data import tfds_builders
  record = tfds.builder_from_directory(path).as_data_source(split=split)[index]
  scene = tfds_builders.example_to_scene(record)
  return scene, scene.segments


def _from_export(fmt: str, root: str, scene_id: str):
  """A scene read from a raw export, and its super-voxel ids (computed when absent)."""
  from jaxseg.io import sources
  from jaxseg.supervoxels import api
  scene = sources.load_scene(fmt, root, scene_id, with_frames=False)
  segments = scene.segments if scene.segments is not None else api.compute_supervoxels(scene)
  return scene, segments


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", help="built dataset directory (…/jaxseg_<kind>/<version>)")
  parser.add_argument("--split", default="train")
  parser.add_argument("--index", type=int, default=0)
  parser.add_argument("--format", help="raw export format (see jaxseg.io.sources.FORMATS)")
  parser.add_argument("--root", help="raw export root")
  parser.add_argument("--scene", help="scene id in the raw export")
  parser.add_argument("--color", choices=("rgb", "labels", "segments"), default="rgb")
  parser.add_argument("--predictions", help="int labels .npy, one per point (infer's "
                      "<name>_labels.npy): draw them beside the ground truth")
  parser.add_argument("--num_classes", type=int, default=20,
                      help="classes of --predictions (their names when 20: ScanNet's)")
  parser.add_argument("--resolution", type=float, default=0.02, help="metres per pixel")
  parser.add_argument("--out", required=True, help="output path without extension")
  args = parser.parse_args()
  if args.dataset:
    scene, segments = _from_dataset(args.dataset, args.split, args.index)
  elif args.format and args.root and args.scene:
    scene, segments = _from_export(args.format, args.root, args.scene)
  else:
    parser.error("pass --dataset, or --format, --root and --scene")
  labels = scene.labels if scene.labels is not None else np.full(scene.num_points, -1)
  shown = {"rgb": scene.colors, "labels": render.color_by_ids(labels),
           "segments": render.color_by_ids(segments, seed=1)}[args.color]
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  if args.predictions:
    predicted = np.load(args.predictions).astype(np.int64).reshape(-1)
    if predicted.shape[0] != scene.num_points:
      parser.error(f"--predictions has {predicted.shape[0]} labels, the scene "
                   f"{scene.num_points} points; pass the labels infer wrote for this scene")
    shown = render.palette(args.num_classes)[np.clip(predicted, 0, args.num_classes - 1)]
    panel = render.comparison_panel(scene.coords, scene.labels, predicted, args.num_classes,
                                    class_names(args.num_classes))
    Image.fromarray(panel).save(args.out + ".png")
    args.color = "predictions"
  else:
    Image.fromarray(render.top_down_image(scene.coords, shown, args.resolution)).save(
        args.out + ".png")
  export.write_scene_ply(args.out + ".ply", scene, colors=shown)   # In the source frame.
  print(f"{scene.name}: {scene.num_points} points coloured by {args.color} -> {args.out}.png, "
        f"{args.out}.ply")


if __name__ == "__main__":
  main()
