"""The reliability probes (../shared/notes/reliability_2026-12.md) through experiments/main.py, as
a user runs it: refused runs, --resume, work directories, config files, permissions, Ctrl-C,
a full disk, and reader cases on copies of the real mini set.

File permissions do not apply to root: as root these runs drop the capabilities that bypass
them (capsh), and skip when that is not possible.
"""

import errno
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from jaxseg.errors import InputError
from jaxseg.train.checkpoint import Checkpointer

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MAIN = os.path.join(_ROOT, "experiments", "main.py")
_CONFIGS = os.path.join(_ROOT, "configs")


def _unprivileged(argv):
  """`argv` run so that file modes apply: as is, or as root without the capabilities that
  bypass them (skips the test when that is not possible)."""
  if os.geteuid() != 0:
    return argv
  capsh = shutil.which("capsh")
  if capsh is None:
    pytest.skip("running as root without capsh: file permissions cannot be tested")
  return [capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", shlex.join(argv)]


def _command(args, unprivileged=False):
  """argv of main.py with `args`; with `unprivileged`, under which file modes apply."""
  argv = [sys.executable, _MAIN, *args]
  return _unprivileged(argv) if unprivileged else argv


def _main(tmp_path, *args, unprivileged=False):
  env = dict(os.environ, JAXSEG_CACHE=str(tmp_path / "cache"))
  return subprocess.run(_command(args, unprivileged), cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=600)


def _one_line_error(result, *expected):
  """The run failed with one error line holding every `expected` text, and no traceback."""
  assert result.returncode != 0, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if "error:" in line]
  assert len(errors) == 1, result.stderr[-3000:]
  for text in expected:
    assert text in errors[0], errors[0]
  return errors[0]


def _clouds(folder, count=2, n=4000):
  """`count` custom clouds (floor + wall, x y z r g b .npy)."""
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  for i in range(count):
    xy = rng.uniform(0, 3, (n // 2, 2))
    coords = np.concatenate([np.c_[xy, np.zeros(n // 2)],
                             np.c_[xy[:, 0], np.zeros(n // 2), xy[:, 1]]])
    np.save(folder / f"room_{i}.npy",
            np.c_[coords, rng.integers(0, 256, (n, 3))].astype(np.float32))
  return folder


def _prepare_args(tmp_path, scans, *extra):
  # batch_size above the scene count: prepare stops after the build and the summary.
  return ("--config", os.path.join(_CONFIGS, "custom_cloud.py"),
          f"--config.workdir={tmp_path / 'work'}", f"--config.data.root={scans}",
          f"--config.data.dataset_dir={tmp_path / 'datasets'}", "--config.data.batch_size=64",
          *extra)


def _train_args(tmp_path, workdir, *extra):
  return ("--config", os.path.join(_CONFIGS, "scannet_cmd.py"),
          f"--config.workdir={workdir}", *extra)


def _checkpoint(workdir, phase="cmd"):
  with Checkpointer(os.path.join(workdir, "checkpoints", phase), keep=2, save_every=1) as c:
    c.save(5, {"w": np.zeros(3, np.float32)}, meta={"epoch": 0, "batch": 5})


def _snapshot(folder):
  """{relative path: bytes} of every file below `folder`."""
  out = {}
  for parent, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(parent, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, folder)] = f.read()
  return out


def test_refused_run_leaves_the_workdir_untouched(tmp_path):
  """resume_noflag_existing: the refused run rewrote config.json (seed 2023 became 7)."""
  workdir = tmp_path / "run"
  _checkpoint(workdir)
  (workdir / "config.json").write_text(json.dumps({"seed": 2023}))
  (workdir / "log.txt").write_text("the earlier run's log\n")
  before = _snapshot(workdir)
  result = _main(tmp_path, *_train_args(tmp_path, workdir, "--config.seed=7"))
  _one_line_error(result, "already has cmd checkpoints", "--resume")
  assert _snapshot(workdir) == before


def test_resume_of_a_missing_or_empty_workdir_is_an_error(tmp_path):
  """resume_missing_workdir, resume_empty_workdir: both trained from step 0 without a word."""
  (tmp_path / "run_01").mkdir()
  result = _main(tmp_path, *_train_args(tmp_path, tmp_path / "run_1"), "--resume")
  _one_line_error(result, "--resume: the work directory does not exist", "did you mean",
                  "run_01")
  result = _main(tmp_path, *_train_args(tmp_path, tmp_path / "run_01"), "--resume")
  _one_line_error(result, "no finished checkpoint", os.path.join("checkpoints", "{cmd}"))
  assert os.listdir(tmp_path / "run_01") == []


def test_read_only_workdir_is_a_one_line_error(tmp_path):
  """A read-only workdir gave a traceback (a workdir that is a file, or below one:
  jaxseg/modes/checks_test.py)."""
  scans = _clouds(tmp_path / "scans")
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o555)
  args = list(_prepare_args(tmp_path, scans))
  args[2] = f"--config.workdir={locked / 'w'}"
  _one_line_error(_main(tmp_path, *args, unprivileged=True), "workdir is not writable",
                  "chmod")


@pytest.mark.parametrize("content,name,expected", [
    ("def get_config(:\n", "syntax.py", "syntax error at line 1"),
    ("x = 1\n", "no_get.py", "defines no get_config()"),
    ("import not_a_module_anywhere\n", "imports.py", "No module named"),
    ("x = 1\n", "config.txt", "is not a .py file"),
    ("import ml_collections\ndef get_config():\n  return ml_collections.ConfigDict("
     "{'mode': 'prepare'})\n", "no_data.py", "has no 'workdir'"),
])
def test_config_files_that_do_not_load(tmp_path, content, name, expected):
  """Config-file problems gave tracebacks ('NoneType' object has no attribute 'loader',
  AttributeError: "'data'") although main.py promises a one-line reason."""
  (tmp_path / name).write_text(content)
  _one_line_error(_main(tmp_path, "--config", str(tmp_path / name)), name, expected)


def test_stray_positional_argument_is_refused(tmp_path):
  result = _main(tmp_path, "--config", os.path.join(_CONFIGS, "scannet_svc.py"), "prepare")
  _one_line_error(result, "unexpected argument 'prepare'", "--config.mode=prepare")


def test_help_lists_modes_methods_configs_and_with_a_config_its_keys(tmp_path):
  bare = _main(tmp_path, "--help")
  assert bare.returncode == 0, bare.stderr[-3000:]
  for text in ("usage: jaxseg --config", "infer ", "pointdc (PointDC)", "growsp (GrowSP)",
               "coarse3d (COARSE3D)", "scannet_svc.py", "--resume:"):
    assert text in bare.stdout, bare.stdout
  with_config = _main(tmp_path, "--config", os.path.join(_CONFIGS, "scannet_growsp.py"), "-h")
  assert with_config.returncode == 0, with_config.stderr[-3000:]
  assert "keys of" in with_config.stdout and "method: growsp" in with_config.stdout
  assert not list(tmp_path.glob("workdirs")) and not (tmp_path / "cache").exists()


def test_unreadable_cloud_stops_with_the_right_fix_or_is_skipped(tmp_path):
  """cu_noperm: a PermissionError was a traceback that skip_bad did not catch; a permission
  problem was told to 're-export the file with numpy.save'."""
  scans = _clouds(tmp_path / "scans", count=3)
  (scans / "room_1.npy").chmod(0)
  line = _one_line_error(_main(tmp_path, *_prepare_args(tmp_path, scans), unprivileged=True),
                         "room_1.npy", "permission denied", "chmod")
  assert "numpy.save" not in line and "re-download" not in line
  result = _main(tmp_path, *_prepare_args(tmp_path, scans, "--config.data.skip_bad=True"),
                 unprivileged=True)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "work" / "prepare_summary.json") as f:
    summary = json.load(f)
  assert [s["scene"] for s in summary["skipped_scenes"]["all_scenes"]] == ["room_1.npy"]
  assert summary["splits"]["all"]["scenes"] == 2


def test_failed_rebuild_keeps_the_dataset(tmp_path):
  """cu_noperm_nodac: data.rebuild=True emptied the dataset folder, then the build failed."""
  scans = _clouds(tmp_path / "scans")
  result = _main(tmp_path, *_prepare_args(tmp_path, scans))
  assert result.returncode == 0, result.stderr[-3000:]
  before = _snapshot(tmp_path / "datasets")
  (scans / "room_0.npy").chmod(0)
  result = _main(tmp_path, *_prepare_args(tmp_path, scans, "--config.data.rebuild=True"),
                 unprivileged=True)
  _one_line_error(result, "permission denied")
  after = _snapshot(tmp_path / "datasets")
  assert {k: v for k, v in after.items() if not k.endswith(".lock")} == {
      k: v for k, v in before.items() if not k.endswith(".lock")}


def test_every_scene_skipped_is_a_clear_message(tmp_path):
  """vn_empty_skip, vn_noperm_label_skip_nodac: 'AssertionError: No examples were yielded'."""
  export = tmp_path / "export"
  export.mkdir()
  np.save(export / "scene0000_00_vert.npy", np.zeros((0, 6), np.float32))
  result = _main(tmp_path, "--config", os.path.join(_CONFIGS, "scannet_svc.py"),
                 "--config.mode=prepare", "--config.data.format=votenet",
                 f"--config.data.root={export}", "--config.data.train_split=all",
                 "--config.data.val_split=all", "--config.data.skip_bad=True",
                 f"--config.data.dataset_dir={tmp_path / 'datasets'}",
                 f"--config.workdir={tmp_path / 'work'}")
  _one_line_error(result, "all 1 scenes of split", "were skipped as bad", "no points")


def test_unwritable_dataset_dir_names_the_key(tmp_path):
  scans = _clouds(tmp_path / "scans")
  (tmp_path / "datasets").mkdir()
  (tmp_path / "datasets").chmod(0o555)
  result = _main(tmp_path, *_prepare_args(tmp_path, scans), unprivileged=True)
  _one_line_error(result, str(tmp_path / "datasets"), "permission denied",
                  "--config.data.dataset_dir")


def _start_prepare(tmp_path, scans):
  """A prepare run in the background; its stderr goes to <tmp_path>/stderr.txt."""
  env = dict(os.environ, JAXSEG_CACHE=str(tmp_path / "cache"))
  with open(tmp_path / "stderr.txt", "w") as stderr:
    return subprocess.Popen([sys.executable, _MAIN, *_prepare_args(tmp_path, scans)],
                            cwd=tmp_path, env=env, stderr=stderr, text=True)


def _wait_for_build(process, datasets):
  """Waits until the build has written into its temporary folder below `datasets`."""
  deadline = time.monotonic() + 300
  while time.monotonic() < deadline:
    building = [n for n in os.listdir(datasets) if ".build-" in n] if datasets.exists() else []
    if building and os.listdir(datasets / building[0]):
      return
    assert process.poll() is None, "the run ended before its build started"
    time.sleep(0.05)
  raise AssertionError("the build never started")


def test_ctrl_c_stops_with_one_line_and_cleans_up(tmp_path):
  """Ctrl-C printed a 61-line traceback ending in KeyboardInterrupt."""
  scans = _clouds(tmp_path / "scans", count=12, n=20000)
  process = _start_prepare(tmp_path, scans)
  _wait_for_build(process, tmp_path / "datasets")
  process.send_signal(signal.SIGINT)
  code = process.wait(timeout=120)
  rest = (tmp_path / "stderr.txt").read_text()
  assert code == 130, rest[-3000:]
  assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
  assert "interrupted (Ctrl-C)" in rest
  assert not [n for n in os.listdir(tmp_path / "datasets") if ".build-" in n]
  result = _main(tmp_path, *_prepare_args(tmp_path, scans))
  assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow_reliability
def test_killed_build_leftovers_are_removed_by_the_next_run(tmp_path):
  """SIGKILL left incomplete.* folders in the dataset folder that were never cleaned up."""
  scans = _clouds(tmp_path / "scans", count=12, n=20000)
  process = _start_prepare(tmp_path, scans)
  _wait_for_build(process, tmp_path / "datasets")
  process.kill()
  process.wait(timeout=60)
  assert [n for n in os.listdir(tmp_path / "datasets") if ".build-" in n]
  result = _main(tmp_path, *_prepare_args(tmp_path, scans))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "left by an interrupted build" in result.stderr
  assert not [n for n in os.listdir(tmp_path / "datasets") if ".build-" in n]


def _tiny_tmpfs(path, size):
  """Mounts a tmpfs of `size` at `path` when allowed (root); returns whether it did."""
  path.mkdir()
  if os.geteuid() != 0 or shutil.which("mount") is None:
    return False
  return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                        capture_output=True, check=False).returncode == 0


def _run_with(tmp_path, args, patch=""):
  """main.py with `args`, after the Python lines `patch` (a fake of the machine) ran."""
  env = dict(os.environ, JAXSEG_CACHE=str(tmp_path / "cache"), PYTHONPATH=_ROOT)
  script = patch + textwrap.dedent(f"""
      import runpy, sys
      sys.argv = {[_MAIN, *args]!r}
      runpy.run_path({_MAIN!r}, run_name="__main__")
      """)
  return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=600)


# Without a real small disk: the dataset writer fails as ArrayRecord does on a full disk, and
# config.json cannot be written.
_FULL_DATASET_DISK = textwrap.dedent("""
    from jaxseg.data import tfds_builders
    def full(self, *args, **kwargs):
      raise RuntimeError('Failed to finalize writing of split "all_scenes": write() failed: '
                         'No space left on device; writing ' + self.data_dir)
    tfds_builders.SceneBuilder.download_and_prepare = full
    """)
_FULL_WORKDIR_DISK = textwrap.dedent("""
    import errno
    from jaxseg.io import atomic
    def full(path, value):
      raise OSError(errno.ENOSPC, "No space left on device", path)
    atomic.write_json = full
    """)


@pytest.mark.slow_reliability
def test_full_disk_is_one_line_and_keeps_config(tmp_path):
  """ENOSPC gave a traceback and left an empty config.json and log.txt."""
  scans = _clouds(tmp_path / "scans", count=4, n=20000)
  disk = tmp_path / "disk"
  real = _tiny_tmpfs(disk, "64k")
  try:
    args = list(_prepare_args(tmp_path, scans, "--config.seed=7"))
    args[4] = f"--config.data.dataset_dir={disk / 'datasets'}"
    result = _run_with(tmp_path, args, "" if real else _FULL_DATASET_DISK)
    _one_line_error(result, "no space left on the device", "--config.data.dataset_dir")
    assert not [n for n in os.listdir(disk / "datasets") if ".build-" in n]
    # A work directory on a full disk keeps its earlier config.json as it was.
    (disk / "work").mkdir()
    (disk / "work" / "config.json").write_text('{"seed": 2023}')
    if real:
      fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
      try:
        while True:
          os.write(fd, b"\0" * 4096)
      except OSError:
        pass
      finally:
        os.close(fd)
    args = list(_prepare_args(tmp_path, scans, "--config.seed=7"))
    args[2] = f"--config.workdir={disk / 'work'}"
    result = _run_with(tmp_path, args, "" if real else _FULL_WORKDIR_DISK)
    _one_line_error(result, "config.json", "no space left on the device")
    assert json.loads((disk / "work" / "config.json").read_text()) == {"seed": 2023}
  finally:
    if real:
      subprocess.run(["umount", str(disk)], check=False)


def _mini_copy(tmp_path, scenes=("scene0000_00",)):
  """A copy of some labelled scans of the real mini set (skips when it is absent)."""
  from jaxseg.testing import require_scannet_mini  # pylint: disable=g-import-not-at-top
  labeled = os.path.join(require_scannet_mini(), "labeled")
  copy = tmp_path / "labeled"
  copy.mkdir()
  for scene in scenes:
    for suffix in ("_vert.npy", "_sem_label.npy", "_ins_label.npy"):
      shutil.copy(os.path.join(labeled, scene + suffix), copy)
  return copy


def test_real_scan_with_fractional_colours_and_benchmark_labels(tmp_path):
  """vn_rgb01 and vn_label_scannet20 on a real scan: colours as 0..1 floats and labels
  already mapped to benchmark indices read back as the original scan."""
  from jaxseg.io import votenet  # pylint: disable=g-import-not-at-top
  copy = _mini_copy(tmp_path)
  original = votenet.read_votenet_scene(str(copy), "scene0000_00")
  vert = np.load(copy / "scene0000_00_vert.npy")
  vert[:, 3:6] = vert[:, 3:6] / 255.0
  np.save(copy / "scene0000_00_vert.npy", vert)
  np.save(copy / "scene0000_00_sem_label.npy", original.labels.astype(np.int64))
  scene = votenet.read_votenet_scene(str(copy), "scene0000_00")
  np.testing.assert_array_equal(scene.colors, original.colors)
  np.testing.assert_array_equal(scene.labels, original.labels)
  assert (scene.labels >= 0).mean() > 0.5


def test_real_scan_with_bad_labels_and_frames_root(tmp_path):
  """vn_label_out_of_range and vn_frames_root_missing on a copy of the real mini set."""
  from jaxseg.data import prepare  # pylint: disable=g-import-not-at-top
  from jaxseg.io import votenet  # pylint: disable=g-import-not-at-top
  copy = _mini_copy(tmp_path)
  labels = np.load(copy / "scene0000_00_sem_label.npy")
  np.save(copy / "scene0000_00_sem_label.npy", labels + 100)
  with pytest.raises(InputError, match="outside NYU40"):
    votenet.read_votenet_scene(str(copy), "scene0000_00")
  spec = importlib.util.spec_from_file_location("mini", os.path.join(_CONFIGS, "scannet_mini.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  data = module.get_config().data
  data.root, data.frames_root = str(copy), str(tmp_path / "posed_typo")
  with pytest.raises(InputError, match="data.frames_root does not exist"):
    prepare.prepare_dataset(data)


def test_errno_of_library_messages():
  """ArrayRecord reports a full disk only in a RuntimeError's text."""
  from jaxseg.errors import errno_in_message  # pylint: disable=g-import-not-at-top
  assert errno_in_message(RuntimeError("write() failed: No space left on device")) == (
      errno.ENOSPC)
  assert errno_in_message(RuntimeError("something else")) is None


def test_unreadable_scan_files_get_the_permission_fix(tmp_path):
  """A PermissionError on a ScanNet mesh or pose file was a traceback, and an unreadable
  segs.json was told 'cannot parse JSON ... re-download the scan'."""
  from jaxseg.io.scannet_test import SCENE, _make_scan  # pylint: disable=g-import-not-at-top
  written = _make_scan(str(tmp_path))
  scene_dir = written["scene_dir"]
  script = textwrap.dedent(f"""
      from jaxseg.errors import InputError
      from jaxseg.io import scannet
      try:
        scannet.read_scannet_scene({str(tmp_path)!r}, {SCENE!r})
      except InputError as e:
        print(e)
      """)
  for name in (f"{SCENE}_vh_clean_2.0.010000.segs.json", os.path.join("pose", "2.txt"),
               f"{SCENE}_vh_clean_2.ply"):
    os.chmod(os.path.join(scene_dir, name), 0)
    result = subprocess.run(_unprivileged([sys.executable, "-c", script]), capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, PYTHONPATH=_ROOT))
    message = result.stdout.strip()
    assert name in message and "permission denied" in message, result.stderr[-2000:]
    assert "chmod" in message and "re-download" not in message
    os.chmod(os.path.join(scene_dir, name), 0o644)
