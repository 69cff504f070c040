"""One process of the two-process CPU training run of tests/distributed_test.py.

  python tests/distributed_worker.py PROCESS_ID PORT OUT.npz CHECKPOINT_DIR

with XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu: joins a 2-process
jax.distributed run on localhost:PORT (gloo CPU collectives), feeds its half of every global
batch through make_array_from_process_local_data, trains a few steps in 'jit' and
'shard_map' mode, checks that 'pmap' is refused, saves and restores the state through a
shared checkpoint directory, and (process 0) writes the final params to OUT.npz. The model,
batches and training loop are shared with the test's single-process reference run.
"""

from __future__ import annotations

import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.data.sharding import to_global_arrays
from jaxseg.errors import InputError
from jaxseg.ops.sparse.norm import MaskedBatchNorm
from jaxseg.train.checkpoint import Checkpointer
from jaxseg.train.optim import make_optimizer
from jaxseg.train.parallel import make_mesh, make_train_step, replicate
from jaxseg.train.state import TrainState

SCENES, ROWS, STEPS = 8, 10, 3
MODES = ("jit", "shard_map")


class Net(nn.Module):
  """Dense -> cross-device MaskedBatchNorm -> ReLU -> Dense."""
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, mask, train):
    h = nn.Dense(6)(jnp.where(mask[..., None], x, 0))
    h = MaskedBatchNorm(momentum=0.9, axis_name=self.axis_name)(h, mask, train)
    return nn.Dense(2)(nn.relu(h))


def loss_fn(params, model_state, batch, extra, axis_name):
  """Masked squared error; sums over the scenes this call sees."""
  del extra
  mask = batch["mask"]
  out, new_state = Net(axis_name).apply({"params": params, **model_state}, batch["x"], mask,
                                        True, mutable=["batch_stats"])
  err = jnp.where(mask[..., None], out - jnp.where(mask[..., None], batch["y"], 0), 0)
  return jnp.sum(err ** 2), jnp.sum(mask).astype(jnp.float32), (new_state, {})


def global_batch(step: int) -> dict[str, np.ndarray]:
  """The global batch of `step`: 8 scenes with unequal valid rows, NaN padding."""
  rng = np.random.default_rng(step)
  mask = np.arange(ROWS)[None, :] < rng.integers(0, ROWS + 1, size=SCENES)[:, None]
  x = rng.normal(size=(SCENES, ROWS, 4)).astype(np.float32)
  y = rng.normal(size=(SCENES, ROWS, 2)).astype(np.float32)
  x[~mask], y[~mask] = np.nan, np.nan
  return {"x": x, "y": y, "mask": mask}


def initial_state(mesh) -> TrainState:
  """The same replicated initial state on every process."""
  batch = global_batch(0)
  variables = Net().init(jax.random.key(0), batch["x"], batch["mask"], False)
  tx = make_optimizer({"name": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.1})
  return replicate(TrainState.create(variables["params"],
                                     {"batch_stats": variables["batch_stats"]}, tx), mesh)


def train(mesh, mode: str) -> TrainState:
  """STEPS steps; each process contributes its contiguous share of every global batch."""
  count, index = jax.process_count(), jax.process_index()
  share = SCENES // count
  step_fn = make_train_step(loss_fn, mesh, mode)
  state = initial_state(mesh)
  for step in range(STEPS):
    local = {k: v[index * share:(index + 1) * share] for k, v in global_batch(step).items()}
    state, _ = step_fn(state, to_global_arrays(local, mesh), {})
  return state


def host_params(state: TrainState) -> dict[str, np.ndarray]:
  """Replicated params and batch stats as flat {path: numpy} (this process's copy)."""
  tree = {"params": state.params, "model_state": state.model_state}
  return {jax.tree_util.keystr(path): np.asarray(leaf.addressable_data(0))
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def main(process_id: int, port: int, out_path: str, checkpoint_dir: str) -> None:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                             process_id=process_id)
  assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
  mesh = make_mesh()
  results = {}
  for mode in MODES:
    state = train(mesh, mode)
    results.update({f"{mode}/{k}": v for k, v in host_params(state).items()})
  try:
    make_train_step(loss_fn, mesh, "pmap")
    results["pmap_refused"] = np.array(False)
  except InputError:
    results["pmap_refused"] = np.array(True)
  with Checkpointer(checkpoint_dir, keep=1, save_every=1) as checkpointer:
    checkpointer.save(STEPS, state, {"host": np.arange(3)}, {"processes": 2})
  with Checkpointer(checkpoint_dir, keep=1, save_every=1) as checkpointer:
    restored, arrays, meta = checkpointer.restore(initial_state(mesh))
  restored_ok = (meta == {"processes": 2} and np.array_equal(arrays["host"], np.arange(3)) and
                 all(np.array_equal(a, b) for a, b in zip(host_params(restored).values(),
                                                          host_params(state).values())))
  results["checkpoint_restored"] = np.array(restored_ok)
  if process_id == 0:
    np.savez(out_path, **results)
  jax.distributed.shutdown()


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
