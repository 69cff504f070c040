"""Two JAX processes on localhost (2 CPU devices each) train like one process with 4."""

import importlib.util
import os
import subprocess
import sys

import numpy as np

from tests.processes import free_port, wait_all

_HERE = os.path.dirname(os.path.abspath(__file__))
_WORKER = os.path.join(_HERE, "distributed_worker.py")
_TIMEOUT_S = 120


def _load_worker():
  spec = importlib.util.spec_from_file_location("distributed_worker", _WORKER)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module    # flax dataclasses resolve annotations through it.
  spec.loader.exec_module(module)
  return module


def _run_two_processes(out_path, checkpoint_dir):
  """Launches both workers; kills them and fails after _TIMEOUT_S so CI never hangs."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
         "PYTHONPATH": os.pathsep.join([os.path.dirname(_HERE), os.environ.get("PYTHONPATH", "")])}
  port = free_port()
  procs = [subprocess.Popen([sys.executable, _WORKER, str(i), str(port), str(out_path),
                             str(checkpoint_dir)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for i in range(2)]
  wait_all(procs, _TIMEOUT_S)


def test_two_processes_match_one_process_with_four_devices(tmp_path):
  worker = _load_worker()
  _run_two_processes(tmp_path / "params.npz", tmp_path / "checkpoints")
  results = dict(np.load(tmp_path / "params.npz"))
  assert results.pop("pmap_refused")
  assert results.pop("checkpoint_restored")

  mesh = worker.make_mesh()     # This process: the conftest's 4 CPU devices.
  assert len(mesh.devices) == 4
  for mode in worker.MODES:
    reference = worker.host_params(worker.train(mesh, mode))
    distributed = {k.split("/", 1)[1]: v for k, v in results.items() if k.startswith(mode)}
    assert distributed.keys() == reference.keys()
    for name, value in reference.items():
      np.testing.assert_allclose(distributed[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    # The run moved the params, so a wrong gradient scale across processes would show.
    initial = worker.host_params(worker.initial_state(mesh))
    assert max(np.abs(value - initial[name]).max() for name, value in reference.items()) > 1e-2
