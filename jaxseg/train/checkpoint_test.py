"""Checkpoint round trips, retention, crash safety and resuming a run mid-way."""

import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.data.sharding import to_global_arrays
from jaxseg.errors import InputError
from jaxseg.ops.sparse.norm import MaskedBatchNorm
from jaxseg.train import checkpoint
from jaxseg.train.checkpoint import Checkpointer
from jaxseg.train.compilation import CompilationCounter
from jaxseg.train.optim import make_optimizer
from jaxseg.train.parallel import make_mesh, make_train_step, replicate
from jaxseg.train.state import TrainState

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_ADAM = {"name": "adam", "lr": 0.05, "weight_decay": 1e-3, "schedule": "step",
         "decay_every": 2, "decay_factor": 0.5}


class _Net(nn.Module):
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, mask, train):
    h = MaskedBatchNorm(momentum=0.8, axis_name=self.axis_name)(nn.Dense(6)(x), mask, train)
    return nn.Dense(1)(nn.relu(h))[..., 0]


def _loss_fn(params, model_state, batch, extra, axis_name):
  mask = batch["mask"]
  out, new_state = _Net(axis_name).apply({"params": params, **model_state}, batch["x"], mask,
                                         True, mutable=["batch_stats"])
  err = jnp.where(mask, out - batch["y"], 0)
  return jnp.sum(err ** 2), jnp.sum(mask).astype(jnp.float32), (new_state, {})


def _batch(index):
  rng = np.random.default_rng(100 + index)
  return {"x": rng.normal(size=(4, 10, 3)).astype(np.float32),
          "y": rng.normal(size=(4, 10)).astype(np.float32),
          "mask": rng.random((4, 10)) < 0.7}


def _fresh_state(mesh):
  """The replicated initial TrainState (also the restore target)."""
  batch = _batch(0)
  variables = _Net().init(jax.random.key(0), batch["x"], batch["mask"], False)
  return replicate(TrainState.create(variables["params"],
                                     {"batch_stats": variables["batch_stats"]},
                                     make_optimizer(_ADAM)), mesh)


def _train(state, step_fn, mesh, start, stop, checkpointer=None):
  """Steps start..stop-1 on batches start..; saves after each step when given a checkpointer
  (the checkpointer's save_every decides), with the batch index and a host array as extras."""
  for index in range(start, stop):
    state, _ = step_fn(state, to_global_arrays(_batch(index), mesh), {})
    if checkpointer is not None:
      checkpointer.save(int(state.step), state, {"seen": np.arange(index + 1)},
                        {"stage": "test", "next_batch": index + 1})
  return state


def _assert_trees_equal(a, b):
  """Same leaf paths, dtypes and values (a TrainState's static tx may differ)."""
  (paths_a, leaves_a), (paths_b, leaves_b) = [
      zip(*jax.tree_util.tree_flatten_with_path(t)[0]) for t in (a, b)]
  assert paths_a == paths_b
  for x, y in zip(leaves_a, leaves_b):
    assert np.asarray(x).dtype == np.asarray(y).dtype
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_restores_values_dtypes_and_shardings(tmp_path):
  mesh = make_mesh()
  state = _train(_fresh_state(mesh), make_train_step(_loss_fn, mesh), mesh, 0, 2)
  arrays = {"centroids": np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32),
            "labels": np.arange(7, dtype=np.int64), "valid": np.array([True, False])}
  meta = {"stage": "cluster", "epoch": 3, "batch_in_epoch": 11, "history": [1.5, 2.0]}
  with Checkpointer(tmp_path, keep=3, save_every=100) as checkpointer:
    assert checkpointer.save(2, state, arrays, meta, force=True)
  target = _fresh_state(mesh)
  restored, restored_arrays, restored_meta = Checkpointer(tmp_path, keep=3,
                                                          save_every=100).restore(target)
  assert isinstance(restored, TrainState) and restored.tx is target.tx
  assert int(restored.step) == 2
  _assert_trees_equal(restored, state)
  for leaf, want in zip(jax.tree.leaves(restored), jax.tree.leaves(target)):
    assert leaf.sharding.is_equivalent_to(want.sharding, leaf.ndim)
    assert len(leaf.sharding.device_set) == 4
  assert restored_arrays.keys() == arrays.keys()
  for name, value in arrays.items():
    assert restored_arrays[name].dtype == value.dtype
    np.testing.assert_array_equal(restored_arrays[name], value)
  assert restored_meta == meta


def test_saving_and_restoring_replicated_arrays_compiles_nothing(tmp_path):
  """On 4 CPU devices of one process every array is written from one replica: no slice
  program is compiled per array shape and device (orbax's replica-parallel writing)."""
  mesh = make_mesh()
  state = replicate({f"w{n}": np.full((n, 3), n, np.float32) for n in range(11, 16)}, mesh)
  counter = CompilationCounter()
  with Checkpointer(tmp_path, keep=1, save_every=1) as checkpointer:
    checkpointer.save(1, state)
    restored, _, _ = checkpointer.restore(state)
  assert counter.summary()["programs"] == 0
  _assert_trees_equal(restored, state)


def test_save_policy_keeps_the_last_k_and_restores_the_latest(tmp_path):
  mesh = make_mesh()
  state = _fresh_state(mesh)
  checkpointer = Checkpointer(tmp_path, keep=2, save_every=2)
  started = [checkpointer.save(step, state, {}, {"step": step}) for step in range(8)]
  assert started == [step % 2 == 0 for step in range(8)]
  assert checkpointer.all_steps() == [4, 6]
  assert checkpointer.save(7, state, {}, {"step": 7}, force=True)
  assert not checkpointer.save(6, state, {}, {"step": "again"})        # Kept as it is.
  assert checkpointer.save(7, state, {"a": np.ones(1)}, {"step": 7, "done": True}, force=True)
  assert checkpointer.all_steps() == [6, 7] and checkpointer.latest_step() == 7
  checkpointer.close()
  reopened = Checkpointer(tmp_path, keep=2, save_every=2)
  assert reopened.latest_step() == 7
  _, arrays, meta = reopened.restore(_fresh_state(mesh))
  assert arrays.keys() == {"a"} and meta == {"step": 7, "done": True}   # The forced copy.
  assert reopened.restore(_fresh_state(mesh), step=6)[2] == {"step": 6}
  with pytest.raises(InputError, match=r"no finished checkpoint for step 4 \(found \[6, 7\]\)"):
    reopened.restore(_fresh_state(mesh), step=4)


def _run_and_die(script: str) -> None:
  """Runs `script` in a child Python on one CPU device; it must end with os._exit(3)."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": _REPO}
  env.pop("XLA_FLAGS", None)
  result = subprocess.run([sys.executable, "-c", script], env=env, timeout=120,
                          capture_output=True, text=True, check=False)
  assert result.returncode == 3, result.stderr[-2000:]


def test_a_process_killed_while_replacing_its_only_step_keeps_the_old_copy(tmp_path):
  """keep=1: a child saves step 1, starts replacing it (forced, as a phase's final save does)
  with a 64 MB copy and dies at once; the old copy comes back, or the new one when it was
  already finalised, and the folder holds nothing else."""
  script = textwrap.dedent(f"""
      import os
      import jax.numpy as jnp
      from jaxseg.train.checkpoint import Checkpointer
      checkpointer = Checkpointer({str(tmp_path)!r}, keep=1, save_every=1)
      checkpointer.save(1, {{"w": jnp.full((4096, 4096), 1.0)}}, {{}}, {{"copy": "old"}})
      checkpointer.wait()
      checkpointer.save(1, {{"w": jnp.full((4096, 4096), 2.0)}}, {{}}, {{"copy": "new"}},
                        force=True)
      os._exit(3)
  """)
  _run_and_die(script)
  assert checkpoint.finished_steps(tmp_path) == [1]       # What check_run_start sees.
  checkpointer = Checkpointer(tmp_path, keep=1, save_every=1)
  assert checkpointer.all_steps() == [1]
  restored, _, meta = checkpointer.restore({"w": jnp.zeros((4096, 4096))})
  value = {"old": 1.0, "new": 2.0}[meta["copy"]]
  assert float(restored["w"].min()) == float(restored["w"].max()) == value
  assert sorted(p.name for p in tmp_path.iterdir() if "tmp" not in p.name) == ["1"]


def test_replacing_a_step_leaves_only_the_new_copy(tmp_path):
  mesh = make_mesh()
  with Checkpointer(tmp_path, keep=1, save_every=1) as checkpointer:
    checkpointer.save(2, _fresh_state(mesh), {}, {"copy": "old"})
    checkpointer.save(2, _fresh_state(mesh), {}, {"copy": "new"}, force=True)
    assert checkpointer.all_steps() == [2]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["2"]
  assert Checkpointer(tmp_path, keep=1, save_every=1).restore(
      _fresh_state(mesh))[2] == {"copy": "new"}


def test_unfinished_saves_are_never_listed(tmp_path):
  mesh = make_mesh()
  with Checkpointer(tmp_path, keep=5, save_every=1) as checkpointer:
    checkpointer.save(3, _fresh_state(mesh), {"a": np.ones(2)}, {"step": 3})
  # What orbax leaves behind when a process dies while writing step 5.
  partial = tmp_path / "5.orbax-checkpoint-tmp-1760000000"
  (partial / "state").mkdir(parents=True)
  (partial / "state" / "manifest.ocdbt").write_bytes(b"\x00" * 10)
  checkpointer = Checkpointer(tmp_path, keep=5, save_every=1)
  assert checkpointer.all_steps() == [3] and checkpointer.latest_step() == 3
  assert checkpointer.restore(_fresh_state(mesh))[2] == {"step": 3}


def test_a_process_killed_mid_save_leaves_only_restorable_steps(tmp_path):
  """A child saves step 1, starts saving a 64 MB step 2 and dies at once (os._exit)."""
  script = textwrap.dedent(f"""
      import os, sys
      import jax.numpy as jnp, numpy as np
      from jaxseg.train.checkpoint import Checkpointer
      checkpointer = Checkpointer({str(tmp_path)!r}, keep=5, save_every=1)
      checkpointer.save(1, {{"w": jnp.full((4096, 4096), 1.0)}}, {{}}, {{"step": 1}})
      checkpointer.wait()
      checkpointer.save(2, {{"w": jnp.full((4096, 4096), 2.0)}}, {{}}, {{"step": 2}})
      os._exit(3)
  """)
  _run_and_die(script)
  checkpointer = Checkpointer(tmp_path, keep=5, save_every=1)
  steps = checkpointer.all_steps()
  assert steps in ([1], [1, 2])
  target = {"w": jnp.zeros((4096, 4096))}
  for step in steps:
    restored, _, meta = checkpointer.restore(target, step)
    assert meta == {"step": step}
    assert float(restored["w"].min()) == float(restored["w"].max()) == step


def test_missing_or_damaged_checkpoints_raise_input_error(tmp_path):
  mesh = make_mesh()
  with pytest.raises(InputError, match="--resume needs a previous run in the same workdir"):
    Checkpointer(tmp_path / "never_written", keep=1, save_every=1).restore(_fresh_state(mesh))
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(InputError, match="is a file"):
    Checkpointer(tmp_path / "a_file", keep=1, save_every=1)
  with Checkpointer(tmp_path / "run", keep=2, save_every=1) as checkpointer:
    checkpointer.save(1, _fresh_state(mesh), {}, {})
  other_model = replicate(TrainState.create({"w": jnp.ones(3)}, {}, make_optimizer(_ADAM)), mesh)
  with pytest.raises(InputError, match="resume with the config of the run that wrote it"):
    Checkpointer(tmp_path / "run", keep=2, save_every=1).restore(other_model)
  for root, _, files in os.walk(tmp_path / "run" / "1" / "state"):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"damaged")
  with pytest.raises(InputError, match=r"run/1: checkpoint cannot be restored"):
    Checkpointer(tmp_path / "run", keep=2, save_every=1).restore(_fresh_state(mesh))


def test_resuming_from_a_middle_step_gives_the_uninterrupted_params(tmp_path):
  mesh = make_mesh()
  step_fn = make_train_step(_loss_fn, mesh)
  with Checkpointer(tmp_path / "full", keep=2, save_every=2) as checkpointer:
    full = _train(_fresh_state(mesh), step_fn, mesh, 0, 6, checkpointer)
    assert checkpointer.all_steps() == [4, 6]
  full = jax.tree.map(np.asarray, full)

  # Interrupted run: 4 steps (saves at 2 and 4), then every object is dropped.
  with Checkpointer(tmp_path / "resumed", keep=2, save_every=2) as checkpointer:
    _train(_fresh_state(mesh), make_train_step(_loss_fn, mesh), mesh, 0, 4, checkpointer)
  del checkpointer

  checkpointer = Checkpointer(tmp_path / "resumed", keep=2, save_every=2)
  state, arrays, meta = checkpointer.restore(_fresh_state(mesh))
  assert int(state.step) == 4 and meta == {"stage": "test", "next_batch": 4}
  np.testing.assert_array_equal(arrays["seen"], np.arange(4))
  state = _train(state, make_train_step(_loss_fn, mesh), mesh, meta["next_batch"], 6,
                 checkpointer)
  checkpointer.close()
  _assert_trees_equal(jax.tree.map(np.asarray, state), full)
  assert int(full.step) == 6


def test_finished_steps_reads_names_without_creating_anything(tmp_path):
  directory = tmp_path / "checkpoints" / "cmd"
  assert checkpoint.finished_steps(directory) == []
  assert not (tmp_path / "checkpoints").exists()
  for name in ("7", "12", "13.orbax-checkpoint-tmp-1700000000", "notes"):
    (directory / name).mkdir(parents=True)
  assert checkpoint.finished_steps(directory) == [7, 12]


def test_damaged_checkpoint_names_the_fallback(tmp_path):
  """A damaged checkpoint on --resume ended in a tensorstore traceback."""
  state = {"w": jnp.arange(4.0)}
  with Checkpointer(tmp_path, keep=3, save_every=1) as c:
    c.save(1, state, meta={"epoch": 0, "batch": 1})
    c.save(2, state, meta={"epoch": 0, "batch": 2})
  with open(tmp_path / "2" / "state" / "manifest.ocdbt", "wb") as f:
    f.write(b"\x00damaged")
  with pytest.raises(InputError, match="checkpoint cannot be restored") as e:
    Checkpointer(tmp_path, keep=3, save_every=1).restore(state)
  assert e.value.path == str(tmp_path / "2")
  assert f"delete {tmp_path / '2'} to resume from step 1" in e.value.fix


def test_a_run_read_mid_replacement_gives_the_old_copy_and_a_failed_save_puts_it_back(
    tmp_path, monkeypatch):
  """Another run's reader (init, eval) takes the old copy of a step being replaced; a save that
  fails after moving the old copy aside puts it back when the checkpointer closes."""
  from jaxseg.train import restore  # pylint: disable=g-import-not-at-top
  mesh = make_mesh()
  state = _fresh_state(mesh)
  with Checkpointer(tmp_path, keep=1, save_every=1) as checkpointer:
    checkpointer.save(2, state, {}, {"copy": "old"})
  os.rename(tmp_path / "2", tmp_path / "2.replaced")         # as a crash mid-replacement
  variables, _ = restore.load_run(str(tmp_path), ())
  jax.tree.map(np.testing.assert_array_equal, variables["params"],
               jax.tree.map(np.asarray, state.params))
  checkpointer = Checkpointer(tmp_path, keep=1, save_every=1)   # puts it back
  assert sorted(p.name for p in tmp_path.iterdir()) == ["2"]

  def fails(*args, **kwargs):
    raise OSError("disk full")
  monkeypatch.setattr(checkpointer._manager, "save", fails)  # pylint: disable=protected-access
  with pytest.raises(OSError, match="disk full"):
    checkpointer.save(2, state, {}, {"copy": "new"}, force=True)
  checkpointer.close()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["2"]
  assert Checkpointer(tmp_path, keep=1, save_every=1).restore(state)[2] == {"copy": "old"}
