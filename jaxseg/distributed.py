"""Multi-process (multi-host) runs: joining jax.distributed, and the few rules every process
keeps so that they stay in step.

  distributed.initialize(coordinator, num_processes, process_id, auto=False)  # once, first
  if distributed.is_main(): write the report                 # one writer per work directory
  distributed.main_first(lambda: prepare_dataset(...))       # build once, then all open it
  host = distributed.gather(tree)                            # every process's rows, on each
  mine = distributed.local_rows(array)                       # the rows this process fed

With one process every function is the plain single-process behaviour.
"""

from __future__ import annotations

import os
from typing import Any, Callable, TypeVar

import jax
import numpy as np

from jaxseg.errors import InputError

T = TypeVar("T")

# The environment variables of a launcher that starts one process per task, and the cluster
# kinds jax.distributed detects by itself (`auto`).
_CLUSTER_SIZE_VARIABLES = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def cluster_detected() -> bool:
  """True under a launcher that started several tasks (SLURM's srun, Open MPI, MPICH) or when
  JAX_COORDINATOR_ADDRESS is set."""
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    return True
  if "SLURM_NTASKS" in os.environ and "SLURM_STEP_ID" not in os.environ:
    return False     # inside an allocation but not started by srun: one process.
  return any(int(os.environ.get(name, "1") or 1) > 1 for name in _CLUSTER_SIZE_VARIABLES)


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, auto: bool = False) -> bool:
  """Joins a multi-process run; returns whether one was joined.

  Explicit settings (all three, e.g. from --coordinator_address/--num_processes/--process_id)
  win; `auto` (--multihost) lets jax.distributed read them from a TPU pod's metadata, SLURM,
  Open MPI or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID; without either a
  launcher detected by `cluster_detected` also joins. Otherwise the run is one process.
  """
  given = [coordinator_address is not None, num_processes is not None, process_id is not None]
  if any(given) and not all(given):
    raise InputError("multi-process flags", "--coordinator_address, --num_processes and "
                     "--process_id must be given together",
                     "pass all three (e.g. --coordinator_address=host0:1234 --num_processes=2 "
                     "--process_id=0), or --multihost to read them from the cluster")
  if not (all(given) or auto or cluster_detected()):
    return False
  if all(given) and not 0 <= process_id < num_processes:
    raise InputError("--process_id", f"{process_id} is outside [0, {num_processes})",
                     "number the processes 0 .. num_processes - 1")
  env_count, env_id = os.environ.get("JAX_NUM_PROCESSES"), os.environ.get("JAX_PROCESS_ID")
  if num_processes is None and env_count and env_id:
    num_processes, process_id = int(env_count), int(env_id)
  # CPU processes exchange their collectives through gloo (accelerators use their own).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  return True


def joined() -> bool:
  """Whether this process is one of several."""
  return jax.process_count() > 1


def describe() -> str:
  """e.g. 'process 1 of 2, 2 of 4 devices'."""
  return (f"process {jax.process_index()} of {jax.process_count()}, "
          f"{jax.local_device_count()} of {jax.device_count()} devices")


def is_main() -> bool:
  """Whether this process writes the run's shared files (logs, reports, pictures, exports)."""
  return jax.process_index() == 0


def log_name() -> str:
  """The work directory's log file of this process: log.txt (main), log.process<k>.txt."""
  return "log.txt" if is_main() else f"log.process{jax.process_index()}.txt"


def refuse_single_process_mode(mode: str) -> None:
  """InputError for modes that run in one process (infer) started as several."""
  if mode == "infer" and jax.process_count() > 1:
    raise InputError("mode=infer", f"inference runs in one process, not {jax.process_count()}",
                     "start it without the multi-process flags")


def barrier(name: str) -> None:
  """Waits until every process reached the barrier `name` (no-op with one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def main_first(build: Callable[[], T], name: str) -> T:
  """`build()` on the main process first, then on the others (which find its result on disk,
  e.g. a prepared dataset or a cache); the processes never build the same files at once."""
  if jax.process_count() == 1:
    return build()
  result = build() if is_main() else None
  barrier(f"{name}: built")
  if not is_main():
    result = build()
  barrier(f"{name}: opened")
  return result


def gather(tree: Any) -> Any:
  """Every process's rows of each leaf, concatenated in process order along axis 0, as numpy
  on every process.

  Leaves are this process's numpy arrays (the same shape on every process) or global
  jax.Arrays sharded along axis 0 over the data mesh (whose rows are already global).
  """
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, tree)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  # A global array is gathered whole; a host array is this process's rows.
  return jax.tree.map(lambda leaf: np.asarray(multihost_utils.process_allgather(
      leaf, tiled=True)), tree)


def local_rows(array: jax.Array) -> np.ndarray:
  """This process's rows (in order) of a global array sharded along axis 0 over the data
  mesh: the rows of the host batch it fed."""
  shards = sorted(array.addressable_shards, key=lambda shard: shard.index[0].start or 0)
  return np.concatenate([np.asarray(shard.data) for shard in shards])
