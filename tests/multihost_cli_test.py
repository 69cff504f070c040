"""A two-process run through the command line trains and scores like one process.

Two `experiments/main.py` processes on localhost (2 CPU devices each, gloo collectives, joined
by --coordinator_address/--num_processes/--process_id) run PointDC's clustering stage on tiny
built-in rooms with the same global batch as one process with 4 devices; the exported
network parameters and the evaluation scores must agree. Only the main process writes the
shared files. About 4 minutes on 2 cores (three processes compile the same programs), so it
runs with JAXSEG_SLOW_TESTS=1 only; tests/distributed_test.py covers the training step, the
collectives and checkpoints of two processes in the default run.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxseg.inference import bundle
from tests.processes import free_port, wait_all

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TIMEOUT_S = 600
_TINY = [
    "--config.init=random", "--config.svc.warmup_epochs=0", "--config.svc.epochs=2",
    "--config.svc.recluster_every=1", "--config.data.max_scenes=4", "--config.data.batch_size=4",
    "--config.data.voxel_size=0.1", "--config.data.synthetic.num_train=4",
    "--config.data.synthetic.num_val=3", "--config.data.synthetic.frames_per_scene=4",
    "--config.data.augment.rotate_z=False", "--config.data.augment.tilt=0.0",
    "--config.data.augment.flip=False", "--config.data.augment.scale=(1.0,1.0)",
    "--config.data.augment.translate=0.0", "--config.svc.invariance.color_jitter=0.0",
    "--config.svc.invariance.color_noise=0.0", "--config.eval.seeds=(1,)",
    "--config.eval.linear_probe=False", "--config.eval.render_scenes=1",
    "--config.checkpoint.every_steps=1",
]


def _command(tmp_path, workdir, *extra):
  return [sys.executable, os.path.join(_ROOT, "experiments", "main.py"), "--config",
          os.path.join(_ROOT, "configs", "scannet_svc.py"), f"--config.workdir={workdir}",
          f"--config.data.dataset_dir={tmp_path / 'datasets'}", *_TINY, *extra]


def _env(tmp_path, devices):
  return dict(os.environ, JAX_PLATFORMS="cpu", JAXSEG_CACHE=str(tmp_path / "cache"),
              XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def _start(command, env):
  return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def _scores(workdir):
  with open(workdir / "report.json") as f:
    report = json.load(f)
  (method,) = report["methods"].values()
  return {variant: scores["miou"]["mean"] for variant, scores in method["variants"].items()}


@pytest.mark.skipif(not os.environ.get("JAXSEG_SLOW_TESTS"),
                    reason="slow (4 minutes): set JAXSEG_SLOW_TESTS=1 to run")
def test_two_processes_through_the_command_line_match_one_process(tmp_path):
  one, two = tmp_path / "one", tmp_path / "two"
  # The dataset is built by the one-process run; the two processes then find it.
  wait_all([_start(_command(tmp_path, one), _env(tmp_path, 4))], _TIMEOUT_S)
  port = free_port()
  logs = wait_all([_start(_command(tmp_path, two, f"--coordinator_address=localhost:{port}",
                                "--num_processes=2", f"--process_id={i}"),
                       _env(tmp_path, 2)) for i in range(2)], _TIMEOUT_S)
  assert "process 1 of 2, 2 of 4 devices" in logs[1], logs[1][-3000:]

  scores_one, scores_two = _scores(one), _scores(two)
  assert scores_one.keys() == scores_two.keys() == {"point", "supervoxel_pooled"}
  for variant, value in scores_one.items():
    assert abs(scores_two[variant] - value) < 1e-3, (scores_one, scores_two)
  _, variables_one, classifier_one = bundle.read(str(one / "model.jaxseg"))
  _, variables_two, classifier_two = bundle.read(str(two / "model.jaxseg"))
  flat_one = {k: np.asarray(v) for k, v in _flatten(variables_one)}
  flat_two = {k: np.asarray(v) for k, v in _flatten(variables_two)}
  assert flat_one.keys() == flat_two.keys()
  for key, value in flat_one.items():
    np.testing.assert_allclose(flat_two[key], value, rtol=1e-4, atol=1e-5, err_msg=key)
  np.testing.assert_array_equal(classifier_two.cluster_to_class, classifier_one.cluster_to_class)

  # One writer per work directory: the main process's log, config, report and pictures; the
  # other process only its own log.
  assert (two / "log.txt").is_file() and (two / "log.process1.txt").is_file()
  assert (two / "config.json").is_file() and (two / "renders").is_dir()
  assert not any(name.startswith("log.process0") for name in os.listdir(two))


def _flatten(tree, prefix=""):
  if isinstance(tree, dict):
    for key, value in tree.items():
      yield from _flatten(value, f"{prefix}/{key}")
  else:
    yield prefix, tree
