"""What the host allocator costs the sparse engine on CPU: glibc's default malloc against
malloc on transparent huge pages (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, glibc >= 2.35 with
/sys/kernel/mm/transparent_hugepage/enabled at `madvise` or `always`), side by side in one run.
Each child gets exactly its setting's GLIBC_TUNABLES (an inherited one is dropped).

XLA:CPU allocates each execution's output and temporary buffers afresh, and glibc serves
large blocks by mmap and returns them on free, so every execution touches new pages: one
page fault and a zeroed 4 KiB page per page touched. Huge pages take 512 times fewer faults.
The tunable is read when a process starts, so each setting runs in its own child process,
A B A B, and the suite reports per setting the medians over its two children.

Per setting and workload:
  first_call_s          the first call: compilation plus the first execution;
  step_s                median of the later calls;
  minor_faults_per_step page faults per later call, the mean over them (getrusage);
  system_s_per_step     kernel CPU seconds per later call, the mean (faults, page zeroing and
                        the rest of the kernel's work).
Workloads, on scene0000_00 (`sparse_engine.scene_voxels`): one 32->32 submanifold layer's
forward+backward at 2 cm on all cores ('all_cores') and pinned to one core ('1_core', with
taskset, as the sparse_engine suite compares it with spconv), and Res16FPN18's
forward+backward at 5 cm on all cores. Without the mini set the scene is sparse_engine's
synthetic room, and `scene` says so. Without taskset, '1_core' says it was skipped.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

_SETTINGS = {"glibc_default": {}, "glibc_thp": {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}}
_THP = "/sys/kernel/mm/transparent_hugepage/enabled"


def _measure(fn, *args, repeats: int) -> dict:
  """fn(*args) called 1 + `repeats` times: the first call's seconds, the median of the others
  and their mean page faults and kernel seconds (module docstring's keys)."""
  import jax  # pylint: disable=import-outside-toplevel
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - start
  before, times = resource.getrusage(resource.RUSAGE_SELF), []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  after = resource.getrusage(resource.RUSAGE_SELF)
  return {"first_call_s": first, "step_s": float(np.median(times)),
          "minor_faults_per_step": (after.ru_minflt - before.ru_minflt) / repeats,
          "system_s_per_step": (after.ru_stime - before.ru_stime) / repeats}


def _child(quick: bool, layer_only: bool) -> dict:
  """{workload: `_measure` result} for this process's allocator setting (its environment),
  plus 'scene': the scan's name; the layer only when `layer_only`."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from bench_suites import sparse_engine as se  # pylint: disable=import-outside-toplevel
  from jaxseg.models.res16fpn import Res16FPN18  # pylint: disable=import-outside-toplevel
  from jaxseg.ops.sparse import geometry as geo  # pylint: disable=import-outside-toplevel
  rng, repeats, out = np.random.default_rng(0), 3 if quick else 8, {}

  voxels, out["scene"] = se.scene_voxels(0.05 if quick else 0.02)
  spec = geo.GeometrySpec(((3,),))
  host, _, _ = se.packed_batch([voxels], spec, [np.zeros((len(voxels), 6), np.float32)])
  batch = {k: jnp.asarray(v) for k, v in host.items()}
  x = jnp.zeros(batch["voxel_feats"].shape[:2] + (32,)).at[0, :len(voxels)].set(
      rng.normal(size=(len(voxels), 32)).astype(np.float32))
  kernel = jnp.asarray(rng.normal(size=(27, 32, 32)).astype(np.float32) * 0.1)
  layer = lambda x, w: geo.submanifold_conv(x, geo.from_batch(batch, spec).levels[0], w)
  train = jax.jit(jax.grad(lambda x, w: jnp.sum(layer(x, w) ** 2), (0, 1)))
  out["layer_32_fwd_bwd"] = _measure(train, x, kernel, repeats=repeats)
  if layer_only:
    return out

  voxels, _ = se.scene_voxels(0.1 if quick else 0.05)
  spec = geo.GeometrySpec(((5,), (3,), (3,), (3,), (3,)))
  host, _, _ = se.packed_batch([voxels], spec,
                               [rng.normal(size=(len(voxels), 6)).astype(np.float32)])
  batch = {k: jnp.asarray(v) for k, v in host.items()}
  variables = se.init_network(batch, spec)
  stats = variables["batch_stats"]
  cotangent = jnp.asarray(rng.normal(size=batch["voxel_feats"].shape[:2] + (128,)),
                          jnp.float32)
  loss = se.network_loss(Res16FPN18(), spec)
  grad = jax.jit(jax.grad(lambda p: loss(p, stats, batch, cotangent)))
  out["res16fpn18_fwd_bwd"] = _measure(grad, variables["params"], repeats=repeats)
  return out


def _run_child(setting: str, quick: bool, one_core: bool) -> dict:
  """`_child`'s result from a new process with `setting`'s environment (pinned to core 0 and
  the layer only when `one_core`)."""
  env = dict(os.environ, **_SETTINGS[setting])
  if not _SETTINGS[setting]:
    env.pop("GLIBC_TUNABLES", None)
  tools = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = os.pathsep.join(
      p for p in [tools, os.path.dirname(tools), env.get("PYTHONPATH", "")] if p)
  command = [sys.executable, os.path.abspath(__file__), "--child"] + (
      ["--quick"] if quick else [])
  if one_core:
    command = ["taskset", "-c", "0"] + command + ["--layer_only"]
  result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f"{setting} child failed: {result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict:
  thp = "absent"
  if os.path.exists(_THP):
    with open(_THP) as f:
      thp = f.read().strip()
  out = {"transparent_hugepage": thp, "settings": {k: v or "none" for k, v in _SETTINGS.items()}}
  if not shutil.which("taskset"):
    out["1_core"] = {"skipped": "no taskset on this machine"}
  for core in ("all_cores", "1_core") if shutil.which("taskset") else ("all_cores",):
    runs = {setting: [] for setting in _SETTINGS}
    for _ in range(2):
      for setting in _SETTINGS:
        runs[setting].append(_run_child(setting, quick, core == "1_core"))
    out["scene"] = runs["glibc_default"][0].pop("scene")
    medians = {setting: {work: {key: float(np.median([c[work][key] for c in children]))
                                for key in children[0][work]}
                         for work in children[0] if work != "scene"}
               for setting, children in runs.items()}
    row = {setting: {work: {key: round(v, 4) for key, v in values.items()}
                     for work, values in works.items()} for setting, works in medians.items()}
    row["thp_step_speedup"] = {work: round(medians["glibc_default"][work]["step_s"] /
                                           medians["glibc_thp"][work]["step_s"], 2)
                               for work in medians["glibc_default"]}
    out[core] = row
  return out


if __name__ == "__main__" and "--child" in sys.argv:
  print(json.dumps(_child("--quick" in sys.argv, "--layer_only" in sys.argv)))
