"""S3DIS v1.2 (`Stanford3dDataset_v1.2` and `..._Aligned_Version`).

Layout: `<root>/Area_N/<room>/<room>.txt` (x y z r g b per line) and
`<root>/Area_N/<room>/Annotations/<class>_<k>.txt` (the points of one object). As in the
reference preprocessing, a room is the concatenation of its annotation files (sorted by name):
the class comes from the file name (`stairs` and unknown names -> clutter) and every file is one
instance (ids 1..K).
"""

from __future__ import annotations

import os
import re

import numpy as np

from jaxseg.data.scene import Scene
from jaxseg.errors import InputError
from jaxseg.io import files
from jaxseg.io.colors import colors_to_uint8
from jaxseg.io.coords import to_float32_coords
from jaxseg.io.labels import S3DIS_CLASSES
from jaxseg.io.text_table import read_numeric_table
from jaxseg.logging_utils import get_logger

_LOG = get_logger("io.s3dis")
TRAIN_AREAS = ("Area_1", "Area_2", "Area_3", "Area_4", "Area_6")
TEST_AREAS = ("Area_5",)
_CLASS_INDEX = {name: i for i, name in enumerate(S3DIS_CLASSES)}
_ROOM_FIX = "re-download or re-extract S3DIS v1.2 (Stanford3dDataset_v1.2[_Aligned_Version])"


def _areas(root: str, split: str | None) -> list[str]:
  files.require_dir(root, "S3DIS root directory", "pass the folder that holds Area_1 ... Area_6")
  present = sorted(d for d in os.listdir(root) if re.fullmatch(r"Area_\d+", d))
  if split is None or split == "all":
    return present
  if split == "train":
    wanted = TRAIN_AREAS
  elif split in ("test", "val"):
    wanted = TEST_AREAS
  else:
    wanted = tuple(a.strip() for a in split.split(","))
    unknown = [a for a in wanted if not re.fullmatch(r"Area_\d+", a)]
    if unknown:
      raise InputError(root, f"unknown S3DIS split {split!r}",
                       "use 'train' (Areas 1-4, 6), 'test'/'val' (Area 5), 'all', or area "
                       "names such as 'Area_5' or 'Area_1,Area_2'")
  missing = [a for a in wanted if a not in present]
  if missing:
    _LOG.warning("%s: split %r names %s, which %s not there", root, split, ", ".join(missing),
                 "is" if len(missing) == 1 else "are")
  return [a for a in present if a in wanted]


def list_s3dis_scenes(root: str, split: str | None = None) -> list[str]:
  """Room ids 'Area_N/<room>' under `root`, sorted; `split` filters areas: 'train' = Areas 1, 2,
  3, 4, 6; 'test' or 'val' = Area 5; 'Area_5' or 'Area_1,Area_2' = those areas; None = all."""
  rooms = []
  for area in _areas(root, split):
    area_dir = files.require_dir(os.path.join(root, area), "area folder", _ROOM_FIX)
    # Every folder is a room; one without Annotations/ or <room>.txt is reported when read.
    rooms += [f"{area}/{room}" for room in sorted(os.listdir(area_dir))
              if not room.startswith(".") and os.path.isdir(os.path.join(area_dir, room))]
  return rooms


def class_of_annotation(file_name: str) -> int:
  """S3DIS class index of an annotation file name like 'chair_3.txt' (stairs/unknown ->
  clutter)."""
  name = os.path.basename(file_name).rsplit(".", 1)[0].rsplit("_", 1)[0]
  return _CLASS_INDEX.get(name, _CLASS_INDEX["clutter"])


def read_s3dis_room(root: str, room_id: str) -> Scene:
  """Reads room 'Area_N/<room>'.

  Returns:
    Scene with coords float32 (N, 3), colors uint8 (N, 3), labels int32 in [0, 13) and
    instances int32 1..K (one per annotation file); when the room has no Annotations/ folder,
    the points of `<room>.txt` unlabelled (labels and instances None).
  """
  room_dir = os.path.join(root, room_id)
  room = os.path.basename(room_id.rstrip("/"))
  annotation_dir = os.path.join(room_dir, "Annotations")
  if os.path.lexists(annotation_dir):
    files.require_dir(annotation_dir, "annotation folder", _ROOM_FIX)
    names = sorted(f for f in os.listdir(annotation_dir) if f.endswith(".txt"))
    if not names:
      raise InputError(annotation_dir, "no annotation files", _ROOM_FIX)
    tables, labels, instances = [], [], []
    for instance, file_name in enumerate(names, start=1):
      table = read_numeric_table(os.path.join(annotation_dir, file_name), min_cols=6)
      tables.append(table[:, :6])
      labels.append(np.full(len(table), class_of_annotation(file_name), np.int32))
      instances.append(np.full(len(table), instance, np.int32))
    points = np.concatenate(tables)
    label_array, instance_array = np.concatenate(labels), np.concatenate(instances)
    source = annotation_dir
  else:
    source = os.path.join(room_dir, room + ".txt")
    if not os.path.lexists(source):
      raise InputError(room_dir, "neither Annotations/ nor the room file exists", _ROOM_FIX)
    _LOG.warning("%s: no Annotations/ folder, reading %s unlabelled", room_dir, source)
    points = read_numeric_table(source, min_cols=6)[:, :6]
    label_array = instance_array = None
  coords, origin = to_float32_coords(points[:, :3], source)
  return Scene(name=room_id, coords=coords, colors=colors_to_uint8(points[:, 3:6], source),
               labels=label_array, instances=instance_array, origin=origin,
               source=source).validate()
