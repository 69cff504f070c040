"""End-to-end checks of experiments/main.py argument handling (run as a user would)."""

import json
import os
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(*args, cwd):
  return subprocess.run([sys.executable, os.path.join(_ROOT, "experiments", "main.py"), *args],
                        cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("override,expected", [
    ("--config.data.voxel_sise=0.05", "unknown config key 'data.voxel_sise'"),
    ("--config.nonsense=1", "unknown config key 'nonsense'"),
    ("--config.data.voxel_size=abc", "could not convert string to float"),
    ("--config.model.name=pointnet", "unknown model.name 'pointnet'"),
])
def test_bad_overrides_fail_with_a_clear_message(tmp_path, override, expected):
  result = _main("--config", os.path.join(_ROOT, "configs", "scannet_svc.py"),
                 f"--config.workdir={tmp_path}/w", override, cwd=tmp_path)
  assert result.returncode != 0
  assert expected in result.stderr + result.stdout
  assert "Traceback" not in result.stderr


def test_every_bad_value_is_listed_in_one_message(tmp_path):
  """One run with many bad values lists each with its key (the values are checked together,
  before anything is built or written)."""
  expected = {
      "--config.parallel.mode=pjit": "unknown parallel.mode 'pjit'",
      "--config.svc.assign=spectral": "unknown svc.assign 'spectral'",
      "--config.svc.sinkhorn.marginal=uniform": "unknown svc.sinkhorn.marginal 'uniform'",
      "--config.eval.features=rgb": "unknown eval.features 'rgb'",
      "--config.svc.num_clusters=5": "svc.num_clusters=5 is below data.num_classes=20",
      "--config.init=/no/run": "init '/no/run' does not exist",
      "--config.model.name=pointnet2": "unknown model.name 'pointnet2'",
      "--config.data.format=lidar": "unknown data.format 'lidar'",
      "--config.teacher.checkpoint=/no/dino.pth": "teacher.checkpoint '/no/dino.pth' does not",
  }
  result = _main("--config", os.path.join(_ROOT, "configs", "scannet_svc.py"),
                 f"--config.workdir={tmp_path}/w", *expected, cwd=tmp_path)
  assert result.returncode != 0 and "Traceback" not in result.stderr
  for message in expected.values():
    assert message in result.stderr, (message, result.stderr)
  assert not os.path.exists(tmp_path / "w")


def test_missing_config_file_is_reported(tmp_path):
  result = _main("--config", "configs/does_not_exist.py", cwd=tmp_path)
  assert result.returncode != 0
  assert "config file 'configs/does_not_exist.py' not found" in result.stderr


def test_format_needing_files_requires_root(tmp_path):
  result = _main("--config", os.path.join(_ROOT, "configs", "s3dis_svc.py"),
                 f"--config.workdir={tmp_path}/w", cwd=tmp_path)
  assert result.returncode != 0
  assert "data.root is empty" in result.stderr
  # The resolved config is only written for valid configs.
  assert not os.path.exists(tmp_path / "w" / "config.json")


def test_resolved_config_is_written(tmp_path):
  (tmp_path / "empty_export").mkdir()
  result = _main("--config", os.path.join(_ROOT, "configs", "s3dis_svc.py"),
                 f"--config.workdir={tmp_path}/w", f"--config.data.root={tmp_path}/empty_export",
                 "--config.mode=prepare", "--config.data.voxel_size=0.04", cwd=tmp_path)
  with open(tmp_path / "w" / "config.json") as f:
    written = json.load(f)
  assert written["data"]["voxel_size"] == 0.04
  assert written["data"]["root"] == f"{tmp_path}/empty_export"
  # The export holds no rooms: the run fails with the path in a one-line message.
  assert result.returncode != 0
  assert "no scenes found" in result.stderr and f"{tmp_path}/empty_export" in result.stderr
  assert "Traceback" not in result.stderr


def test_missing_root_is_refused_before_anything_is_written(tmp_path):
  result = _main("--config", os.path.join(_ROOT, "configs", "s3dis_svc.py"),
                 f"--config.workdir={tmp_path}/w", "--config.data.root=/nonexistent",
                 cwd=tmp_path)
  assert result.returncode != 0
  assert "data.root '/nonexistent' does not exist" in result.stderr
  assert not os.path.exists(tmp_path / "w")


def test_console_command_is_the_same_command_line(tmp_path):
  """`pip install -e .` (tools/setup.sh) puts the `jaxseg` command beside this Python."""
  command = os.path.join(os.path.dirname(sys.executable), "jaxseg")
  assert os.path.isfile(command), "jaxseg is not installed here: run bash tools/setup.sh"
  result = subprocess.run([command, "--config", os.path.join(_ROOT, "configs", "scannet_svc.py"),
                           f"--config.workdir={tmp_path}/w", "--config.nonsense=1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0 and "unknown config key 'nonsense'" in result.stderr
  assert "Traceback" not in result.stderr


def test_configs_tools_and_experiments_need_no_path_edits():
  """They import the installed package; none edits sys.path."""
  folders = ("configs", "tools", "experiments")
  files = [os.path.join(_ROOT, f, name) for f in folders
           for name in os.listdir(os.path.join(_ROOT, f)) if name.endswith(".py")]
  files += [os.path.join(_ROOT, "tools", "bench_suites", name)
            for name in os.listdir(os.path.join(_ROOT, "tools", "bench_suites"))
            if name.endswith(".py")]
  editing = [path for path in files if "sys.path" in open(path, encoding="utf-8").read()]
  assert len(files) > 15 and not editing, editing


def test_infer_refusals_come_before_anything_is_written(tmp_path):
  """A missing input or model, or an output folder that is the input folder (the labelled
  .ply would replace the input cloud), is refused before the work directory is made."""
  clouds = tmp_path / "clouds"
  clouds.mkdir()
  (clouds / "room.txt").write_text("0 0 0 10 20 30\n1 0 0 10 20 30\n")
  linked = tmp_path / "linked"     # a folder of links to clouds that live elsewhere
  linked.mkdir()
  os.symlink(clouds / "room.txt", linked / "room.txt")
  svc = ("--config", os.path.join(_ROOT, "configs", "scannet_svc.py"), "--config.mode=infer")
  cases = {
      "no input cloud given": (),
      "infer.input does not exist": (f"--config.infer.input={tmp_path}/none.ply",),
      "infer.model does not exist": (f"--config.infer.input={clouds}",
                                     f"--config.infer.model={tmp_path}/none.jaxseg"),
      "is the folder of the input clouds": (f"--config.infer.input={clouds / 'room.txt'}",
                                            f"--config.infer.model={clouds}",
                                            f"--config.infer.output={clouds}"),
      "would replace": (f"--config.infer.input={linked}", f"--config.infer.model={clouds}",
                        f"--config.infer.output={clouds}")}
  for message, overrides in cases.items():
    result = _main(*svc, f"--config.workdir={tmp_path}/w", *overrides, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr, (message, result.stderr[-2000:])
    assert not os.path.exists(tmp_path / "w"), message
  assert os.listdir(clouds) == ["room.txt"]


def test_infer_in_a_run_directory_keeps_the_runs_config(tmp_path):
  """infer.model='' reads the run in the work directory: its config.json, which describes
  the network, stays as training wrote it; the infer command's own goes beside it."""
  run = tmp_path / "run"
  run.mkdir()
  trained = {"method": "coarse3d", "data": {"voxel_size": 0.05, "num_classes": 20},
             "eval": {"batch_norm": "running"}}
  (run / "config.json").write_text(json.dumps(trained))
  clouds = tmp_path / "clouds"
  clouds.mkdir()
  (clouds / "room.txt").write_text("0 0 0 10 20 30\n1 0 0 10 20 30\n")
  result = _main("--config", os.path.join(_ROOT, "configs", "scannet_svc.py"),
                 "--config.mode=infer", f"--config.workdir={run}",
                 f"--config.infer.input={clouds}", "--config.data.voxel_size=0.1", cwd=tmp_path)
  assert result.returncode != 0 and "inference reads clustering runs" in result.stderr
  assert json.loads((run / "config.json").read_text()) == trained
  assert json.loads((run / "infer_config.json").read_text())["data"]["voxel_size"] == 0.1
  assert sorted(os.listdir(run)) == ["config.json", "infer_config.json", "log.txt"]
