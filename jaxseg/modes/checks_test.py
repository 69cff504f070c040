"""Config value checks and the pre-flight checks of a run (reliability report, defects 2, 4,
10, 11 and 13; ../shared/notes/reliability_2026-12.md)."""

import importlib.util
import os

import ml_collections
import numpy as np
import pytest

from jaxseg.modes import checks
from jaxseg.errors import InputError
from jaxseg.train.checkpoint import Checkpointer

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(name="scannet_svc.py", **overrides):
  spec = importlib.util.spec_from_file_location("cfg", os.path.join(_REPO, "configs", name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config


@pytest.mark.parametrize("key,value,expected", [
    ("data.voxel_size", float("nan"), "data.voxel_size must be a finite number, got nan"),
    ("data.voxel_size", float("inf"), "data.voxel_size must be a finite number, got inf"),
    ("data.voxel_size", 0.0, "data.voxel_size must be a number > 0, got 0.0"),
    ("data.num_classes", 0, "data.num_classes must be >= 2, got 0"),
    ("data.num_classes", -3, "data.num_classes must be >= 2, got -3"),
    ("data.max_scenes", -1, "data.max_scenes must be >= 0, got -1"),
    ("data.num_workers", -1, "data.num_workers must be >= 0, got -1"),
    ("data.batch_size", 0, "data.batch_size must be >= 1, got 0"),
    ("data.normals.radius", -0.1, "data.normals.radius must be a number > 0, got -0.1"),
    ("data.supervoxels.vccs.voxel_size", 0.0,
     "data.supervoxels.vccs.voxel_size must be a number > 0, got 0.0"),
    ("cmd.views_per_batch", 0, "cmd.views_per_batch must be >= 1, got 0"),
    ("svc.sinkhorn.epsilon", float("nan"), "svc.sinkhorn.epsilon must be a finite number"),
    ("checkpoint.keep", 0, "checkpoint.keep must be >= 1, got 0"),
    ("data.supervoxels.method", "slic", "unknown data.supervoxels.method 'slic'"),
    ("method", "growsp2", "unknown method 'growsp2'; choose one of ['clurender', 'coarse3d', 'growsp', 'pointdc']"),
    ("mode", "svc", "mode 'svc' is now --config.mode=train"),
    ("mode", "serve", "unknown mode 'serve'; choose one of ['eval', 'infer', 'prepare', 'train']"),
    ("cmd.loss", "l1", "unknown cmd.loss 'l1'; choose one of ['voxel', 'segment']"),
    ("svc.warmup_head", "mlp", "unknown svc.warmup_head 'mlp'"),
    ("svc.num_clusters", 10, "svc.num_clusters=10 is below data.num_classes=20"),
    ("init", "/no/run", "init '/no/run' does not exist"),
    ("growsp.primitives", 0, "growsp.primitives must be >= 1, got 0"),
    ("growsp.temperature", 0.0, "growsp.temperature must be a number > 0, got 0.0"),
    ("eval.batch_norm", "batch", "unknown eval.batch_norm 'batch'; choose one of "
     "['running', 'recalibrate']"),
])
def test_bad_values_are_refused_with_key_and_range(key, value, expected):
  """cfg_vox_nan_b1, cfg_vox_inf_b1 (every scene one voxel, exit 0), num_classes 0/-3 (k-means
  traceback), max_scenes=-1 (silently one scene less), num_workers=-1, and config values that
  were blamed on a scene file (normals.radius, vccs.voxel_size)."""
  problems = checks.validate(_config(**{key: value}))
  assert any(expected in p for p in problems), problems


def test_growsp_checks_its_keys_together():
  config = _config("scannet_growsp.py", **{"growsp.grow_end": 90, "growsp.primitives": 12})
  problems = checks.validate(config)
  assert any("growsp.grow_end=90 is above growsp.grow_start=80" in p for p in problems)
  assert any("growsp.primitives=12 is below data.num_classes=20" in p for p in problems)
  assert checks.validate(_config("scannet_growsp.py")) == []


def test_defaults_and_non_integers():
  assert checks.validate(_config()) == []
  config = _config()
  data = config.data.to_dict()
  data["batch_size"] = 2.5  # a config file may build it so; overrides keep the int type
  config.data = ml_collections.ConfigDict(data)
  assert "data.batch_size must be an integer >= 1, got 2.5" in checks.validate(config)


def test_a_dino_teacher_without_weights_is_refused_before_the_dataset_is_built():
  problems = checks.validate(_config(**{"teacher.name": "dino_vits8"}))
  assert any("teacher.name 'dino_vits8' needs its pretrained checkpoint" in p for p in problems)
  for fine in ({"teacher.name": "dino_vits8", "init": "random"},
               {"teacher.name": "dino_vits8", "cmd.epochs": 0},
               {"teacher.name": "dino_vits8", "mode": "eval"}, {"teacher.name": "fallback"}):
    assert checks.validate(_config(**fine)) == [], fine


def test_missing_paths_are_refused_before_the_run(tmp_path):
  config = _config(**{"data.format": "votenet", "data.root": str(tmp_path),
                      "data.frames_root": str(tmp_path / "posed")})
  assert any("data.frames_root" in p and "does not exist" in p for p in checks.validate(config))
  os.symlink(tmp_path / "loop", tmp_path / "loop")
  config = _config(**{"data.format": "custom", "data.root": str(tmp_path / "loop")})
  assert any("symbolic link loop" in p for p in checks.validate(config))


def test_workdir_that_cannot_be_used_is_refused(tmp_path):
  (tmp_path / "a_file").write_text("")
  for workdir, problem in ((tmp_path / "a_file", "is a file"),
                           (tmp_path / "a_file" / "run", "a_file is a file")):
    with pytest.raises(InputError, match=problem):
      checks.preflight(_config(mode="prepare"), str(workdir), resume=False)


def _checkpoint(workdir, phase="cmd"):
  with Checkpointer(os.path.join(workdir, "checkpoints", phase), keep=2, save_every=1) as c:
    c.save(3, {"w": np.zeros(2, np.float32)}, meta={"epoch": 0, "batch": 3})


def test_resume_needs_checkpoints_and_fresh_runs_need_none(tmp_path):
  """resume_empty_workdir, resume_missing_workdir: --resume silently trained from scratch."""
  cmd = _config("scannet_cmd.py")
  with pytest.raises(InputError, match="--resume: the work directory does not exist") as e:
    checks.preflight(cmd, str(tmp_path / "run_1"), resume=True)
  (tmp_path / "run_01").mkdir()
  with pytest.raises(InputError, match="does not exist") as e:
    checks.preflight(cmd, str(tmp_path / "run_1"), resume=True)
  assert "did you mean" in e.value.fix and "run_01" in e.value.fix
  with pytest.raises(InputError, match="no finished checkpoint to continue from") as e:
    checks.preflight(cmd, str(tmp_path / "run_01"), resume=True)
  assert os.path.join("checkpoints", "{cmd}", "<step>") in e.value.problem
  _checkpoint(tmp_path / "run_01")
  with pytest.raises(InputError, match="already has cmd checkpoints"):
    checks.preflight(cmd, str(tmp_path / "run_01"), resume=False)
  assert checks.checkpoint_phases(_config()) == ("cmd", "svc_warmup", "svc")
  assert checks.checkpoint_phases(_config(init="random")) == ("svc_warmup", "svc")
  assert checks.checkpoint_phases(cmd) == ("cmd",)


def test_eval_of_a_workdir_without_checkpoints_is_refused(tmp_path):
  with pytest.raises(InputError, match="mode 'eval' evaluates the newest checkpoint"):
    checks.preflight(_config(mode="eval"), str(tmp_path), resume=False)


def test_batch_larger_than_the_split_is_refused_before_the_build(tmp_path):
  """Batch size was checked only after the dataset build."""
  scans = tmp_path / "scans"
  scans.mkdir()
  for name in ("a", "b"):
    np.save(scans / f"{name}.npy", np.random.default_rng(0).uniform(0, 3, (100, 3)))
  config = _config("custom_cloud.py", mode="train", **{
      "data.root": str(scans), "data.batch_size": 4, "data.dataset_dir": str(tmp_path / "ds")})
  with pytest.raises(InputError, match="4 is more than the 2 scenes of the training split"):
    checks.preflight(config, str(tmp_path / "work"), resume=False)
  assert not os.path.exists(tmp_path / "ds") and not os.path.exists(tmp_path / "work")


def test_batch_that_does_not_split_over_the_devices_is_refused_before_any_work(tmp_path):
  """With 4 devices (conftest) a batch of 6 scenes was refused only when the pipeline started."""
  config = _config(**{"data.batch_size": 6})
  with pytest.raises(InputError, match="6 scenes does not split over the 4 devices.*e.g. 8"):
    checks.preflight(config, str(tmp_path / "work"), resume=False)
  assert not os.path.exists(tmp_path / "work")


def test_coarse3d_checks_its_keys():
  config = _config("scannet_coarse3d.py", **{"weak.by": "box", "weak.ratio": 0.0,
                                              "coarse3d.momentum": 1.0,
                                              "coarse3d.anchors_per_class": 0})
  problems = checks.validate(config)
  for expected in ("unknown weak.by 'box'", "weak.ratio=0.0 must lie in (0, 1]",
                   "coarse3d.momentum=1.0 must lie in [0, 1)",
                   "coarse3d.anchors_per_class=0 must be positive"):
    assert any(expected in p for p in problems), (expected, problems)
  assert not checks.validate(_config("scannet_coarse3d.py"))
