"""Config checks before a run writes anything: values the config file's types cannot check
(`validate`), then the file system (`preflight`).

Valid choices come from their owners: modes from `jaxseg.modes.MODES`, methods from
`jaxseg.methods`, encoders and teachers from `jaxseg.models`, formats from `jaxseg.io.sources`,
parallel modes from `jaxseg.train.parallel`; each method checks its own sections.
"""

from __future__ import annotations

import math
import os

import jax
import ml_collections

from jaxseg import config_utils
from jaxseg import models
from jaxseg import teachers  # pylint: disable=unused-import  (registers the 2D teachers)
from jaxseg.data import prepare
from jaxseg.errors import InputError
from jaxseg.eval.batch_norm import MODES as BATCH_NORM_MODES
from jaxseg.eval.passes import FEATURE_KINDS
from jaxseg.io import files
from jaxseg.io.sources import FORMATS
from jaxseg.logging_utils import get_logger
from jaxseg.methods import get_method, method_names
from jaxseg.modes import MODES, TRAINING_MODES
from jaxseg.modes import infer
from jaxseg.ops.sparse import geometry
from jaxseg.train import checkpoint
from jaxseg.train.parallel import MODES as PARALLEL_MODES

_LOG = get_logger("modes.checks")
SUPERVOXEL_METHODS = ("auto", "mesh", "vccs")
DATA_FORMATS = ("synthetic",) + FORMATS
# Integer keys and their smallest valid value.
_INT_MINIMUM = {
    "data.num_classes": 2, "data.batch_size": 1, "data.max_scenes": 0, "data.num_workers": 0,
    "data.normals.max_nn": 1, "data.supervoxels.vccs.num_neighbors": 1,
    "data.supervoxels.vccs.min_points": 0, "data.supervoxels.mesh.min_vertices": 0,
    "data.synthetic.num_train": 1, "data.synthetic.num_val": 0,
    "data.synthetic.frames_per_scene": 0, "model.out_dim": 1, "checkpoint.every_steps": 1,
    "checkpoint.keep": 1, "log_every_steps": 1, "cmd.epochs": 0, "cmd.views_per_batch": 1,
    "cmd.max_views": 0, "cmd.zbuffer_stride": 1,
    "cmd.optimizer.decay_every_epochs": 0, "svc.num_clusters": 0, "svc.kmeans_iters": 1,
    "svc.kmeans_max_points_per_centroid": 0, "svc.sinkhorn.num_iters": 1,
    "svc.warmup_epochs": 0, "svc.epochs": 0,
    "svc.recluster_every": 0, "svc.optimizer.decay_every_epochs": 0,
    "svc.min_segment_points": 0, "eval.num_clusters": 0, "eval.every_epochs": 0,
    "eval.render_scenes": 0,
    "growsp.primitives": 1, "growsp.round_epochs": 1, "growsp.grow_start": 1,
    "growsp.grow_end": 1, "growsp.histogram_points": 1, "growsp.kmeans_iters": 1,
    "growsp.fixed_epochs": 0, "growsp.growing_epochs": 0, "growsp.min_segment_points": 0,
    "cmd.target_dim": 0,
    "eval.kmeans_iters": 1, "eval.probe.points_per_scene": 1, "eval.probe.steps": 1,
    "eval.probe.batch_size": 1,
}
# Number keys that must be > 0, and those that must be >= 0.
_POSITIVE = ("data.voxel_size", "data.normals.radius", "data.supervoxels.vccs.voxel_size",
             "data.supervoxels.vccs.seed_resolution", "data.supervoxels.vccs.smoothness_deg",
             "data.supervoxels.vccs.curvature_threshold", "data.supervoxels.mesh.kthresh",
             "cmd.occlusion_tolerance", "cmd.depth_tolerance", "cmd.optimizer.lr",
             "cmd.optimizer.decay_factor", "svc.temperature", "svc.logit_scale",
             "svc.sinkhorn.epsilon", "svc.optimizer.lr", "svc.optimizer.decay_factor",
             "eval.probe.lr", "growsp.temperature")
_NON_NEGATIVE = ("data.clip_box", "data.presample", "data.supervoxels.vccs.spatial_weight",
                 "data.supervoxels.vccs.normal_weight", "data.supervoxels.vccs.color_weight",
                 "data.augment.tilt", "data.augment.translate", "data.augment.color_jitter",
                 "data.augment.coord_noise", "data.augment.color_noise",
                 "cmd.optimizer.weight_decay", "svc.optimizer.weight_decay",
                 "svc.optimizer.momentum", "svc.optimizer.dampening",
                 "svc.invariance.color_jitter", "svc.invariance.color_noise",
                 "svc.invariance.coord_noise", "eval.probe.weight_decay")
_MISSING = object()


def validate(config: ml_collections.ConfigDict) -> list[str]:
  """Checks values that the config file's types cannot; returns human-readable problems, each
  naming the key, the value and the valid range or choices."""
  problems = [f"the config has no {k!r} section; build it with jaxseg/config_defaults.py "
              "(common.base_config)" for k in config_utils.missing_sections(config)]
  if problems:
    return problems
  if config.mode not in MODES:
    renamed = {"cmd": "train with svc.warmup_epochs=0 and svc.epochs=0 (configs/scannet_cmd.py)",
               "svc": "train (PointDC distils, then clusters; config.init skips distillation)"}
    hint = (f"; mode {config.mode!r} is now --config.mode={renamed[config.mode]}"
            if config.mode in renamed else "")
    problems.append(f"unknown mode {config.mode!r}; choose one of {sorted(MODES)}{hint}")
  if config.method not in method_names():
    problems.append(f"unknown method {config.method!r}; choose one of {method_names()}")
  if config.data.format not in DATA_FORMATS:
    problems.append(f"unknown data.format {config.data.format!r}; choose one of "
                    f"{list(DATA_FORMATS)}")
  if config.data.format != "synthetic" and not config.data.root:
    problems.append(f"data.root is empty but data.format={config.data.format!r} reads files; "
                    "pass --config.data.root=/path/to/the/export")
  problems += _number_problems(config)
  _choice(problems, "data.supervoxels.method", config.data.supervoxels.method,
          SUPERVOXEL_METHODS)
  if config.model.name not in models.encoder_names():
    problems.append(f"unknown model.name {config.model.name!r}; choose one of "
                    f"{models.encoder_names()}")
  if config.teacher.name not in models.TEACHERS.names():
    problems.append(f"unknown teacher.name {config.teacher.name!r}; choose one of "
                    f"{models.TEACHERS.names()}")
  problems += _training_problems(config)
  problems += _path_problems(config)
  return problems


def _number_problems(config: ml_collections.ConfigDict) -> list[str]:
  """Every number finite; integer keys integral and in range; sizes positive."""
  problems = []
  for key in config_utils.flatten_keys(config):
    value = _value(config, key)
    values = value if isinstance(value, (tuple, list)) else (value,)
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
      problems.append(f"{key} must be a finite number, got {value!r}")
  for key, minimum in _INT_MINIMUM.items():
    value = _lookup(config, key)
    if value is not _MISSING and not _is_integer(value):
      problems.append(f"{key} must be an integer >= {minimum}, got {value!r}")
    elif value is not _MISSING and value < minimum:
      problems.append(f"{key} must be >= {minimum}, got {value}")
  for key in _POSITIVE + _NON_NEGATIVE:
    value = _lookup(config, key)
    positive = key in _POSITIVE
    if value is _MISSING or (isinstance(value, float) and not math.isfinite(value)):
      continue  # reported above
    if not _is_number(value) or value < 0 or (positive and value == 0):
      problems.append(f"{key} must be a number {'>' if positive else '>='} 0, got {value!r}")
  for key in ("data.augment.scale", "cmd.image_size"):
    value = _lookup(config, key)
    if value is not _MISSING and not (isinstance(value, (tuple, list)) and len(value) == 2
                                      and all(_is_number(v) and v > 0 for v in value)):
      problems.append(f"{key} must be two positive numbers, got {value!r}")
  return problems


def _is_integer(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _path_problems(config: ml_collections.ConfigDict) -> list[str]:
  """Paths the run reads that do not exist (checked before anything is written)."""
  problems = []
  data = config.data
  if data.format != "synthetic" and data.root:
    problem = files.path_problem(os.path.expanduser(data.root))
    if problem:
      problems.append(f"data.root {data.root!r} {problem}; pass --config.data.root=/path/to/"
                      "the/export")
  for key, kind in (("data.frames_root", "folder of per-scene frame folders"),
                    ("data.label_map", "scannetv2-labels.combined.tsv file")):
    path = _value(config, key)
    problem = files.path_problem(os.path.expanduser(path)) if path else None
    if problem:
      problems.append(f"{key} {path!r} {problem}; pass the {kind}, or leave {key} empty")
  if config.teacher.checkpoint and not os.path.isfile(config.teacher.checkpoint):
    problems.append(f"teacher.checkpoint {config.teacher.checkpoint!r} does not exist; pass "
                    "the path of a DINO .pth or DINOv2 model.safetensors file")
  return problems


def _lookup(config: ml_collections.ConfigDict, key: str):
  """config['a.b'] for a dotted key, or _MISSING when a part is absent."""
  for part in key.split("."):
    if not isinstance(config, ml_collections.ConfigDict) or part not in config:
      return _MISSING
    config = config[part]
  return config


def _value(config: ml_collections.ConfigDict, key: str):
  """config['a.b'] for a dotted key (KeyError when a part is absent)."""
  value = _lookup(config, key)
  if value is _MISSING:
    raise KeyError(key)
  return value


def _choice(problems: list[str], key: str, value, choices) -> None:
  if value not in choices:
    problems.append(f"unknown {key} {value!r}; choose one of {list(choices)}")


def _training_problems(config: ml_collections.ConfigDict) -> list[str]:
  """Checks of the parallel / cmd / svc / eval settings."""
  problems = []
  _choice(problems, "parallel.mode", config.parallel.mode, PARALLEL_MODES)
  _choice(problems, "model.dtype", config.model.dtype, ("float32", "bfloat16"))
  _choice(problems, "model.engine", config.model.engine, geometry.ENGINES)
  _choice(problems, "model.search_method", config.model.search_method,
          geometry.SEARCH_METHODS)
  _choice(problems, "eval.features", config.eval.features, FEATURE_KINDS)
  _choice(problems, "eval.batch_norm", config.eval.batch_norm, BATCH_NORM_MODES)
  _choice(problems, "infer.format", config.infer.format, FORMATS)
  if config.method in method_names():
    problems += get_method(config.method).config_problems(config)
  if not config.eval.seeds:
    problems.append("eval.seeds is empty; give at least one clustering seed")
  for key in ("init", "eval.checkpoint"):
    path = _value(config, key)
    if path and path != "random" and not os.path.exists(path):
      problems.append(f"{key} {path!r} does not exist; pass a run's work directory")
  return problems


def checkpoint_phases(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The checkpoint folders (`<workdir>/checkpoints/<phase>`) a run of config.mode trains."""
  if config.mode in TRAINING_MODES:
    return get_method(config.method).checkpoint_phases(config)
  return ()


def preflight(config: ml_collections.ConfigDict, workdir: str, resume: bool) -> None:
  """Checks that need the file system, made before a run writes anything (so a refused run
  leaves the work directory as it was): a writable work directory; for training modes, the
  checkpoints that --resume continues (or, without it, none to overwrite), a batch size that
  splits over the devices (also for `eval`) and a training split with at least
  data.batch_size scenes; for `eval` of this work directory, a checkpoint; for `infer`, its
  input, its model and an output folder that is not the input's (`infer.check`).

  Raises InputError naming the path or key and the fix. The scene listing may generate the
  built-in dataset (once).
  """
  if config.mode in TRAINING_MODES or config.mode == "eval":   # Modes that run the devices.
    _check_batch_split(config.data.batch_size)
  files.require_writable_dir(workdir, "workdir", "choose another --config.workdir")
  phases = checkpoint_phases(config)
  if phases:
    checkpoint.check_run_start(workdir, phases, resume)
  elif resume:
    _LOG.warning("--resume has no effect in mode %r (it continues training runs)",
                 config.mode)
  network_phases = get_method(config.method).network_phases
  if (config.mode == "eval" and config.eval.features == "model" and not config.eval.checkpoint
      and not any(checkpoint.finished_steps(os.path.join(workdir, "checkpoints", phase))
                  for phase in network_phases)):
    raise InputError(workdir, "mode 'eval' evaluates the newest checkpoint of the work "
                     "directory, but it has none", "pass the workdir of a finished run, or "
                     "--config.eval.checkpoint=<a run's workdir> (or 'random')")
  if config.mode in TRAINING_MODES:
    _check_batch_size(config.data)
  if config.mode == "infer":
    infer.check(config, workdir)


def _check_batch_split(batch_size: int) -> None:
  """InputError when a batch does not split into one pack per device of every process."""
  devices = jax.device_count()
  if batch_size % devices:
    larger = -(-batch_size // devices) * devices
    raise InputError("data.batch_size", f"a batch of {batch_size} scenes does not split over "
                     f"the {devices} devices (each device takes the same number of scenes)",
                     f"set --config.data.batch_size to a multiple of {devices}, e.g. {larger}")


def _check_batch_size(data: ml_collections.ConfigDict) -> None:
  """InputError when the training split has fewer scenes than one batch."""
  _, _, _, splits = prepare.split_scene_ids(data)
  count = len(splits[data.train_split])
  if data.batch_size > count:
    raise InputError("data.batch_size", f"{data.batch_size} is more than the {count} scenes "
                     f"of the training split {data.train_split!r}, so an epoch has no step",
                     f"set --config.data.batch_size to at most {count}, or add scenes")


