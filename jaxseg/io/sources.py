"""One entry point for every scene source, used by the dataset builder and the command line.

  list_scenes('scannet', '/data/scannet/scans', split='train')
  load_scene('s3dis', '/data/Stanford3dDataset_v1.2_Aligned_Version', 'Area_1/office_1')

Formats:
  scannet   raw ScanNet v2 scans (+ SensReader export)         jaxseg.io.scannet
  votenet   VoteNet-style <scene>_vert.npy exports               jaxseg.io.votenet
  mmdet3d   mmdetection3d points/ + posed_images/ layout          jaxseg.io.mmdet3d
  s3dis     S3DIS v1.2 (plain or Aligned_Version), ids 'Area_N/<room>'   jaxseg.io.s3dis
  custom    a user's .ply/.pcd/.npy/.txt cloud (ids = file names)  jaxseg.io.custom
"""

from __future__ import annotations

import fnmatch
import glob
import os

from jaxseg.data.scene import Scene
from jaxseg.errors import InputError
from jaxseg.io import custom, mmdet3d, s3dis, scannet, votenet
from jaxseg.logging_utils import get_logger

_LOG = get_logger("io.sources")
FORMATS = ("scannet", "votenet", "mmdet3d", "s3dis", "custom")


def _check_format(fmt: str, root: str) -> None:
  if fmt not in FORMATS:
    raise InputError(root, f"unknown data format {fmt!r}",
                     f"choose one of {', '.join(FORMATS)}")


def _split_file_filter(root: str, split: str, scenes: list[str]) -> list[str]:
  """Keeps the scenes listed in `scannetv2_<split>.txt` (root or root/meta) when it exists."""
  for directory in (root, os.path.join(root, "meta")):
    path = os.path.join(directory, f"scannetv2_{split}.txt")
    if os.path.isfile(path):
      with open(path) as f:
        wanted = {line.strip() for line in f if line.strip()}
      return [s for s in scenes if s in wanted]
  _LOG.warning("no scannetv2_%s.txt in %s: using all %d scenes", split, root, len(scenes))
  return scenes


def is_scene_pattern(split: str | None) -> bool:
  """Whether a split is a list of scene-id patterns ('scene000[0-5]_*,scene0010_*')."""
  return bool(split) and any(c in split for c in "*?[")


def _pattern_filter(root: str, split: str, scenes: list[str]) -> list[str]:
  """The scenes matching any comma-separated fnmatch pattern of `split`; InputError if none."""
  patterns = [p.strip() for p in split.split(",") if p.strip()]
  kept = [s for s in scenes if any(fnmatch.fnmatchcase(s, p) for p in patterns)]
  if not kept:
    raise InputError(root, f"no scene id matches the split pattern {split!r} "
                     f"({len(scenes)} scenes, e.g. {scenes[:2]})",
                     "fix the pattern, e.g. data.train_split='scene000[0-5]_*'")
  return kept


def list_scenes(fmt: str, root: str, split: str | None = None) -> list[str]:
  """Scene ids of `fmt` under `root`, sorted.

  split: scannet/votenet -> ids in `scannetv2_<split>.txt` when present (else all); mmdet3d ->
  ids in `scannet_infos_<split>.pkl` when present; s3dis -> 'train' (Areas 1-4, 6), 'test'/'val'
  (Area 5) or area names 'Area_5' / 'Area_1,Area_2'; custom -> ignored. In every format a split
  with `*`, `?` or `[` is a comma-separated list of scene-id patterns (fnmatch), e.g.
  'scene000[0-5]_*' for the scenes of rooms 0-5.
  """
  _check_format(fmt, root)
  if is_scene_pattern(split):
    return _pattern_filter(root, split, list_scenes(fmt, root, None))
  if fmt == "scannet":
    return scannet.list_scannet_scenes(root, split)
  if fmt == "votenet":
    scenes = votenet.list_votenet_scenes(root)
    return scenes if split is None else _split_file_filter(root, split, scenes)
  if fmt == "mmdet3d":
    return mmdet3d.list_mmdet3d_scenes(root, split)
  if fmt == "s3dis":
    return s3dis.list_s3dis_scenes(root, split)
  return custom.list_custom_scenes(root)


def load_scene(fmt: str, root: str, scene_id: str, *, with_frames: bool = True,
               label_map: str | None = None, frames_root: str | None = None) -> Scene:
  """Loads one scene as a validated `Scene`.

  Args:
    fmt: one of FORMATS.
    root: the dataset root that `list_scenes` was given (for 'custom', a folder or one file).
    scene_id: an id from `list_scenes`.
    with_frames: read posed RGB-D frames ('scannet', 'mmdet3d'; InputError when missing;
      'votenet' when `frames_root` is given). 's3dis' and 'custom' ignore it.
    label_map: `scannetv2-labels.combined.tsv` ('scannet' scans without labels.ply).
    frames_root: 'scannet': folder of SensReader exports `<frames_root>/<scene>/` when they
      are not inside the scan folders. 'votenet': folder of mmdetection3d posed images
      `<frames_root>/<scene>/` (scenes without a folder there get no frames), with the
      `scannet_infos_*.pkl` that align their poses beside it (jaxseg.io.votenet).
  """
  _check_format(fmt, root)
  if fmt == "scannet":
    return scannet.read_scannet_scene(root, scene_id, with_frames=with_frames,
                                      frames_root=frames_root, label_map=label_map)
  if fmt == "votenet":
    return votenet.read_votenet_scene(root, scene_id,
                                      frames_root=frames_root if with_frames else None)
  if fmt == "mmdet3d":
    return mmdet3d.read_mmdet3d_scene(root, scene_id, with_frames=with_frames)
  if fmt == "s3dis":
    return s3dis.read_s3dis_room(root, scene_id)
  path = root if os.path.isfile(root) else os.path.join(root, scene_id)
  return custom.read_custom_cloud(path, name=scene_id)


def scene_files(fmt: str, root: str, scene_id: str, *, frames_root: str | None = None
                ) -> list[str]:
  """The files and folders a scene is read from (folders stand for everything in them), for
  fingerprinting a dataset's sources; paths that do not exist are included as they are."""
  _check_format(fmt, root)
  frames = [os.path.join(frames_root, scene_id)] if frames_root else []
  if fmt == "scannet":
    return [os.path.join(root, scene_id)] + frames
  if fmt == "votenet":
    return sorted(glob.glob(os.path.join(glob.escape(root), glob.escape(scene_id) + "_*.npy"))
                  ) + frames
  if fmt == "mmdet3d":
    return [os.path.join(root, folder, scene_id + ".bin")
            for folder in ("points", "semantic_mask", "instance_mask", "super_points")] + [
                os.path.join(root, folder, scene_id) for folder in ("posed_images", "posed")]
  if fmt == "s3dis":
    return [os.path.join(root, scene_id)]
  return [root if os.path.isfile(root) else os.path.join(root, scene_id)]


def shared_files(fmt: str, root: str, *, frames_root: str | None = None,
                 label_map: str | None = None) -> list[str]:
  """Files every scene of a source may read besides its own: label maps, split files and the
  info pickles that hold axis alignments."""
  folders = [root]
  if fmt == "votenet" and frames_root:
    folders.append(os.path.dirname(os.path.abspath(frames_root)))
  paths = [label_map] if label_map else []
  for folder in folders:
    for sub in (folder, os.path.join(folder, "meta")):
      for pattern in ("scannet_infos_*.pkl", "scannetv2_*.txt", "scannetv2-labels*.tsv"):
        paths += glob.glob(os.path.join(glob.escape(sub), pattern))
  if fmt == "scannet":
    paths += glob.glob(os.path.join(glob.escape(os.path.dirname(os.path.abspath(root))),
                                    "scannetv2-labels*.tsv"))
  return sorted(set(paths))
