"""Helpers of the tests that start several processes: a free localhost port, and waiting for
all of them with a deadline so that a hung collective never hangs CI."""

from __future__ import annotations

import socket
import subprocess
from typing import Sequence


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
