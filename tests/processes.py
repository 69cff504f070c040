"""Helpers of the tests that start processes: the environment of a training run, a free
localhost port, and waiting for several processes with a deadline so that a hung collective
never hangs CI."""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Sequence


def training_env(cache_dir) -> dict[str, str]:
  """The environment of a training run started by a test: every compiled program goes to
  `cache_dir`'s persistent cache (so later runs load them), on 4 CPU devices, with LLVM at
  optimisation level 1 instead of XLA's default (3 in this jaxlib).

  The tests' cheapest code generation (jaxseg/conftest.py) suits their many small programs but
  slows a run's steps: the end-to-end PointDC run's warm training steps took 7-8 s with it
  instead of 2.2-2.5 s, the whole run 258 s instead of 205 s alone on 2 cores (2026-12-02).
  Level 1 keeps the steps' speed and compiles faster: that run compiled for 61.7 s instead of
  74.3 s, its warm steps took 1.9-2.2 s against 1.7-2.2 s, the run 114 s instead of 126 s
  (2026-12-04, one after the other on 2 cores). It changes float rounding slightly (the
  tiny run's pooled mIoU 13.67 instead of 14.07), which no test depends on.
  """
  return dict(os.environ, JAXSEG_CACHE=str(cache_dir), JAXSEG_XLA_CACHE_MIN_SECONDS="0",
              XLA_FLAGS="--xla_force_host_platform_device_count=4 "
                        "--xla_backend_optimization_level=1")


def free_port() -> int:
  """A TCP port on localhost that is free now."""
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def wait_all(procs: Sequence[subprocess.Popen], timeout_s: float) -> list[str]:
  """The combined output of every process (started with stdout=PIPE, text=True); kills all and
  fails when one runs past `timeout_s`, and fails (with its log) when one exits non-zero."""
  logs = []
  try:
    for proc in procs:
      logs.append(proc.communicate(timeout=timeout_s)[0])
  except subprocess.TimeoutExpired:
    for proc in procs:
      proc.kill()
    raise AssertionError(f"the processes did not finish in {timeout_s} s")
  for proc, log in zip(procs, logs):
    assert proc.returncode == 0, log[-4000:]
  return logs
