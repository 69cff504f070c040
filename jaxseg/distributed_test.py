"""Joining rules of multi-process runs (the two-process runs are tests/distributed_test.py and
tests/multihost_cli_test.py)."""

import jax
import numpy as np
import pytest

from jaxseg import distributed
from jaxseg.errors import InputError

_LAUNCHER_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "SLURM_STEP_ID",
                       "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


@pytest.fixture
def clean_env(monkeypatch):
  for name in _LAUNCHER_VARIABLES:
    monkeypatch.delenv(name, raising=False)
  return monkeypatch


def test_launchers_are_detected(clean_env):
  assert not distributed.cluster_detected()
  clean_env.setenv("SLURM_NTASKS", "4")        # an allocation, not an srun step
  assert not distributed.cluster_detected()
  clean_env.setenv("SLURM_STEP_ID", "0")
  assert distributed.cluster_detected()
  clean_env.delenv("SLURM_NTASKS")
  clean_env.setenv("OMPI_COMM_WORLD_SIZE", "1")
  assert not distributed.cluster_detected()
  clean_env.setenv("OMPI_COMM_WORLD_SIZE", "2")
  assert distributed.cluster_detected()


def test_single_process_unless_asked(clean_env):
  assert distributed.initialize() is False
  assert distributed.is_main() and not distributed.joined()
  assert distributed.log_name() == "log.txt"


@pytest.mark.parametrize("kwargs,match", [
    ({"coordinator_address": "localhost:1"}, "must be given together"),
    ({"coordinator_address": "localhost:1", "num_processes": 2, "process_id": 2}, "outside"),
])
def test_bad_flags_are_refused_before_joining(clean_env, kwargs, match):
  with pytest.raises(InputError, match=match):
    distributed.initialize(**kwargs)


def test_one_process_helpers_are_plain_calls():
  calls = []
  assert distributed.main_first(lambda: calls.append(1) or "built", "x") == "built"
  assert calls == [1]
  tree = {"a": np.arange(6).reshape(3, 2), "b": jax.numpy.ones((4, 2))}
  gathered = distributed.gather(tree)
  np.testing.assert_array_equal(gathered["a"], tree["a"])
  assert isinstance(gathered["b"], np.ndarray) and gathered["b"].shape == (4, 2)
  distributed.refuse_single_process_mode("infer")   # one process: allowed


def test_local_rows_of_a_sharded_array_are_the_fed_rows():
  from jaxseg.data.sharding import data_mesh, to_global_arrays  # pylint: disable=g-import-not-at-top
  rows = np.arange(8 * 3).reshape(8, 3)
  array = to_global_arrays({"x": rows}, data_mesh())["x"]
  np.testing.assert_array_equal(distributed.local_rows(array), rows)
