"""On-disk cache of per-super-voxel distillation targets, one file per scene (resumable).

  store = build_targets(source, teacher, {"image_size": (320, 240), "max_views": 40},
                        cache_dir)
  extras = store(index)    # input workers: {'segment_targets': (S, D), 'segment_has_target': (S,)}

Layout of `cache_dir`:
  <index:06d>.npz   record `index` of the source: targets (S, D) float16 when that loses
                    under 1e-3 relative norm per row, else float32 ((0, D) for a scene
                    without frames), has_target bool (S,), name, has_frames, seen_fraction,
                    and the fingerprint of (teacher, settings) it was built with.
  manifest.json     teacher name, dim, effective settings, scene count and statistics;
                    written last, so its presence marks a finished cache.
Every file is written to a temporary name and renamed into place, so an interrupted build
leaves only whole files and the next `build_targets` continues where it stopped. A cache built
with another teacher or other settings is refused (the caller keys `cache_dir` by them).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pathlib
import time
from typing import Any, Mapping, Sequence

import numpy as np

from jaxseg.methods.pointdc.point_features import supervoxel_targets, teacher_point_features
from jaxseg.data.tfds_builders import record_text
from jaxseg.errors import InputError
from jaxseg.io import atomic
from jaxseg.logging_utils import get_logger, progress
from jaxseg.teachers.teacher import Teacher

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_HALF_RTOL = 1e-3
_LOW_SEEN_FRACTION = 0.01
_LOG = get_logger("methods.pointdc.targets")
_NO_FRAMES_FIX = ("distillation needs posed RGB-D frames: prepare the dataset with "
                  "data.with_frames=True and, where the frames live outside the scans "
                  "(ScanNet SensReader exports, the VoteNet export), data.frames_root set to "
                  "the folder holding <scene>/ frames; then rebuild it (data.rebuild=True). "
                  "Clouds without frames (plain .ply/.npy scans) train without distillation: "
                  "--config.init=random")


_DEFAULTS = {p.name: p.default
             for p in inspect.signature(teacher_point_features).parameters.values()
             if p.kind is inspect.Parameter.KEYWORD_ONLY}


def default_settings() -> dict[str, Any]:
  """The keyword arguments of `teacher_point_features` with their defaults."""
  return dict(_DEFAULTS)


def effective_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
  """`settings` over the defaults, JSON-normalised (tuples become lists); InputError naming
  unknown keys."""
  defaults = default_settings()
  unknown = sorted(set(settings) - set(defaults))
  if unknown:
    raise InputError(None, f"unknown distillation setting(s) {unknown}",
                     f"use only {sorted(defaults)}")
  return json.loads(json.dumps({**defaults, **dict(settings)}, sort_keys=True))


def _call_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
  """Effective settings as `teacher_point_features` keyword arguments."""
  out = dict(settings)
  out["image_size"] = tuple(int(v) for v in out["image_size"])
  return out


def _fingerprint(teacher_name: str, dim: int, settings: Mapping[str, Any]) -> str:
  content = {"version": FORMAT_VERSION, "teacher": teacher_name, "dim": dim,
             "settings": settings}
  return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def _scene_path(cache_dir: str, index: int) -> str:
  return os.path.join(cache_dir, f"{index:06d}.npz")


def _compact(targets: np.ndarray) -> np.ndarray:
  """float16 copy of float32 (S, D) targets when every row keeps its value to 1e-3 relative
  L2 error (and nothing overflows), else the float32 array."""
  if np.abs(targets).max(initial=0.0) > np.finfo(np.float16).max:
    return targets
  half = targets.astype(np.float16)
  error = np.linalg.norm(half.astype(np.float32) - targets, axis=1)
  if (error <= _HALF_RTOL * np.linalg.norm(targets, axis=1)).all():
    return half
  return targets


def _scene_targets(record: Mapping[str, Any], teacher: Teacher,
                   settings: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """The npz fields of one record (see the module docstring), without the fingerprint."""
  num_segments = int(record["num_segments"])
  has_frames = len(record["frames"]["poses"]) > 0
  if has_frames:
    feats, seen = teacher_point_features(teacher, record["frames"], record["coords"],
                                         **_call_settings(settings))
    targets, has_target = supervoxel_targets(feats, seen, record["segments"], num_segments)
    targets, seen_fraction = _compact(targets), float(seen.mean())
  else:
    targets = np.zeros((0, teacher.dim), np.float16)
    has_target, seen_fraction = np.zeros(num_segments, bool), 0.0
  return {"targets": targets, "has_target": has_target,
          "name": np.asarray(record_text(record["name"])), "has_frames": np.asarray(has_frames),
          "seen_fraction": np.asarray(seen_fraction, np.float32)}


def _read_summary(path: str, fingerprint: str, name: str) -> tuple[bool, float]:
  """(has_frames, seen_fraction) of a finished scene file; InputError when it was built with
  other settings or for another scene."""
  with np.load(path) as data:
    if str(data["fingerprint"]) != fingerprint:
      raise InputError(path, "this targets file was built with another teacher or other "
                       "settings", "use a cache directory keyed by teacher and settings, or "
                       "delete this one")
    if str(data["name"]) != name:
      raise InputError(path, f"this targets file is for scene {str(data['name'])!r} but the "
                       f"dataset's record is {name!r}", "keep one targets cache per prepared "
                       "dataset (e.g. inside its data directory), or delete this one")
    return bool(data["has_frames"]), float(data["seen_fraction"])


def _log_summary(names: Sequence[str], has_frames: Sequence[bool], seen: Sequence[float],
                 seconds: float, computed: int) -> None:
  total = len(names)
  without = total - sum(has_frames)
  if without:
    _LOG.warning("%d of %d scenes have no frames; they get no distillation targets",
                 without, total)
  fractions = [s for s, f in zip(seen, has_frames) if f]
  _LOG.info("points seen by at least one view: mean %.1f%% (min %.1f%%) over %d scene(s) "
            "with frames", 100 * np.mean(fractions), 100 * np.min(fractions), len(fractions))
  low = [n for n, s, f in zip(names, seen, has_frames) if f and s < _LOW_SEEN_FRACTION]
  if low:
    _LOG.warning("%d scene(s) with frames have under %.0f%% of their points seen (%s%s): "
                 "check that poses and points share one coordinate frame", len(low),
                 100 * _LOW_SEEN_FRACTION, ", ".join(low[:5]), ", ..." if len(low) > 5 else "")
  _LOG.info("distillation targets: %d scene(s) computed, %d reused, in %.1f s (%.2f scenes/s)",
            computed, total - computed, seconds, computed / max(seconds, 1e-9))


class TargetStore:
  """A finished targets cache (see the module docstring).

  Attributes:
    cache_dir: the folder.
    teacher_name, dim: the teacher the targets come from and D.
    settings: the effective `teacher_point_features` settings.
    num_scenes: records covered (file `<i:06d>.npz` for i in [0, num_scenes)).
  """

  def __init__(self, cache_dir: str, *, teacher_name: str | None = None,
               settings: Mapping[str, Any] | None = None):
    """Opens `cache_dir`; with `teacher_name` / `settings`, InputError unless the cache was
    built with exactly them."""
    self.cache_dir = os.fspath(cache_dir)
    path = os.path.join(self.cache_dir, MANIFEST)
    try:
      with open(path) as f:
        manifest = json.load(f)
    except FileNotFoundError as e:
      raise InputError(path, "no finished distillation targets cache here (manifest missing)",
                       "build it with jaxseg.methods.pointdc.targets.build_targets; an interrupted build "
                       "resumes where it stopped") from e
    except (OSError, ValueError) as e:
      raise InputError(path, f"cannot read the targets manifest ({e})",
                       "delete the cache directory; it is rebuilt on the next run") from e
    if manifest.get("format_version") != FORMAT_VERSION:
      raise InputError(path, f"targets cache format {manifest.get('format_version')} is not "
                       f"{FORMAT_VERSION}", "delete the cache directory to rebuild it")
    self.teacher_name = manifest["teacher"]
    self.dim = int(manifest["dim"])
    self.settings = manifest["settings"]
    self.num_scenes = int(manifest["num_scenes"])
    self.manifest = manifest
    if teacher_name is not None and teacher_name != self.teacher_name:
      raise InputError(path, f"targets were distilled from teacher {self.teacher_name!r}, "
                       f"not {teacher_name!r}", "use a cache directory keyed by the teacher, "
                       "or delete this one")
    if settings is not None and effective_settings(settings) != self.settings:
      raise InputError(path, f"targets were built with settings {self.settings}, not "
                       f"{effective_settings(settings)}", "use a cache directory keyed by the "
                       "settings, or delete this one")

  def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets of record `index`: float32 (S, D) (0 where there is none) and bool (S,)."""
    if not 0 <= index < self.num_scenes:
      raise IndexError(f"scene index {index} outside [0, {self.num_scenes})")
    path = _scene_path(self.cache_dir, index)
    try:
      with np.load(path) as data:
        targets, has_target = data["targets"], data["has_target"].astype(bool)
    except (OSError, ValueError, KeyError) as e:
      raise InputError(path, f"cannot read the scene's targets ({e})",
                       "delete the cache directory; it is rebuilt on the next run") from e
    if targets.shape[0] != has_target.shape[0]:  # a scene without frames stores (0, D)
      targets = np.zeros((has_target.shape[0], self.dim), np.float32)
    return targets.astype(np.float32), has_target

  def __call__(self, index: int) -> dict[str, np.ndarray]:
    """The targets of record `index` as per-super-voxel pipeline extras (read in the input
    workers): segment_targets float32 (S, D) and segment_has_target bool (S,)."""
    targets, has_target = self.load(index)
    return {"segment_targets": targets, "segment_has_target": has_target}


def build_targets(source: Any, teacher: Teacher, settings: Mapping[str, Any],
                  cache_dir: str) -> TargetStore:
  """Computes (or finishes, or reuses) the targets of every record of `source`.

  Args:
    source: random-access scene records (`len`, `source[i]` -> dict with name, coords,
      segments, num_segments and frames, as written by jaxseg.data.tfds_builders).
    teacher: the 2D teacher.
    settings: keyword arguments of `teacher_point_features` (missing ones take defaults).
    cache_dir: the cache folder, created when missing.
  Returns:
    The finished `TargetStore`.
  Raises:
    InputError: no scene has frames, the cache was built with another teacher / settings /
      dataset, or a frame image is missing or unreadable.
  """
  settings = effective_settings(settings)
  cache_dir = os.path.abspath(os.fspath(cache_dir))
  num_scenes = len(source)
  if not num_scenes:
    raise InputError(None, "the dataset split has no scenes to distil",
                     "check the data config (data.root, split names)")
  if os.path.isfile(os.path.join(cache_dir, MANIFEST)):
    store = TargetStore(cache_dir, teacher_name=teacher.name, settings=settings)
    if store.dim != teacher.dim or store.num_scenes != num_scenes:
      raise InputError(os.path.join(cache_dir, MANIFEST),
                       f"targets cache holds {store.num_scenes} scene(s) of dimension "
                       f"{store.dim}, but the dataset has {num_scenes} and the teacher "
                       f"{teacher.dim}", "keep one targets cache per prepared dataset, or "
                       "delete this one")
    _LOG.info("reusing distillation targets in %s", cache_dir)
    return store
  os.makedirs(cache_dir, exist_ok=True)
  fingerprint = _fingerprint(teacher.name, teacher.dim, settings)
  names, has_frames, seen = [], [], []
  computed, start = 0, time.perf_counter()
  for index in progress(range(num_scenes), desc="distillation targets (scenes)",
                        total=num_scenes):
    record = source[index]
    name = record_text(record["name"])
    path = _scene_path(cache_dir, index)
    if os.path.isfile(path):
      scene_has_frames, scene_seen = _read_summary(path, fingerprint, name)
    else:
      fields = _scene_targets(record, teacher, settings)
      atomic.write_file(path, lambda tmp, fields=fields: np.savez(
          tmp, fingerprint=np.asarray(fingerprint), **fields))
      scene_has_frames, scene_seen = bool(fields["has_frames"]), float(fields["seen_fraction"])
      computed += 1
    names.append(name)
    has_frames.append(scene_has_frames)
    seen.append(scene_seen)
  if not any(has_frames):
    raise InputError(None, f"none of the {num_scenes} scene(s) has posed RGB-D frames",
                     _NO_FRAMES_FIX)
  _log_summary(names, has_frames, seen, time.perf_counter() - start, computed)
  manifest = {"format_version": FORMAT_VERSION, "teacher": teacher.name, "dim": teacher.dim,
              "settings": settings, "fingerprint": fingerprint, "num_scenes": num_scenes,
              "scenes_with_frames": int(sum(has_frames)),
              "mean_seen_fraction": float(np.mean([s for s, f in zip(seen, has_frames) if f]))}
  text = json.dumps(manifest, indent=1, sort_keys=True)
  atomic.write_file(os.path.join(cache_dir, MANIFEST),
                    lambda tmp: pathlib.Path(tmp).write_bytes(text.encode()))
  return TargetStore(cache_dir)


class ProjectedTargets:
  """A TargetStore's targets projected to `dim` dims by a PCA fitted on the store's own
  targets (the reference distils 70-d STEGO cluster-head features; without STEGO weights this
  projects the teacher's features to as many dims, keeping their main directions).

  store(index) -> {'segment_targets': float32 (S, dim), 'segment_has_target': bool (S,)};
  rows without a target stay zero. Picklable (input workers).
  """

  def __init__(self, store: TargetStore, dim: int, *, max_rows: int = 200_000, seed: int = 0):
    rows = [targets[has] for targets, has in (store.load(i) for i in range(store.num_scenes))]
    rows = np.concatenate(rows) if rows else np.zeros((0, store.dim), np.float32)
    if rows.shape[0] < 2:
      raise InputError(store.cache_dir, "fewer than 2 super-voxels have a teacher target, too "
                       "few to fit the PCA of cmd.target_dim", "set --config.cmd.target_dim=0 "
                       "(raw teacher features) or give scenes with frames")
    if rows.shape[0] > max_rows:
      rows = rows[np.random.default_rng(seed).choice(rows.shape[0], max_rows, replace=False)]
    rows = rows.astype(np.float64)
    self.mean = rows.mean(0)
    _, singular, vt = np.linalg.svd(rows - self.mean, full_matrices=False)
    self.components = vt[:dim].T.astype(np.float32)            # (D, dim)
    self.mean = self.mean.astype(np.float32)
    energy = singular ** 2
    self.explained = float(energy[:dim].sum() / max(energy.sum(), 1e-30))
    self.store, self.dim = store, int(dim)

  def __call__(self, index: int) -> dict[str, np.ndarray]:
    targets, has_target = self.store.load(index)
    projected = (targets - self.mean) @ self.components
    return {"segment_targets": np.where(has_target[:, None], projected, 0.0).astype(np.float32),
            "segment_has_target": has_target}
