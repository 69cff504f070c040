"""Test set-up (shared by tests/conftest.py): CPU only, 4 virtual CPU devices so multi-device
code is exercised, and XLA's cheaper CPU code generation.

The tests compile many small networks and run each a few times, so compilation dominates their
time: LLVM optimisation level 0 without its expensive passes shortens compilation and changes
no numerics (no fast-math). XLA:CPU's older elemental emitters (fusion emitters off) compile
each program about twice as fast as its fusion emitters: the suite compiles thousands of tiny
eager programs (45 ms each with them, 21 ms without; measured 2026-12-02), and the encoder
tests took 59 s instead of 75 s. Benchmarks and real runs keep XLA's defaults.
"""

import os

_TEST_XLA_FLAGS = ("--xla_force_host_platform_device_count=4",
                   "--xla_backend_optimization_level=0",
                   "--xla_llvm_disable_expensive_passes=true",
                   "--xla_cpu_use_fusion_emitters=false")


def configure_test_environment() -> None:
  """Adds the test XLA flags (those not already set) and selects the CPU platform."""
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  flags = os.environ.get("XLA_FLAGS", "")
  for flag in _TEST_XLA_FLAGS:
    if flag.split("=")[0] not in flags:
      flags += " " + flag
  os.environ["XLA_FLAGS"] = flags.strip()


configure_test_environment()


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slow_reliability: slow bad-input cases (a killed build, a full disk); part of "
      "the default run and CI, deselect with -m 'not slow_reliability' for a quick pass")
