"""Test set-up for end-to-end tests: 4 virtual CPU devices so multi-device code is exercised."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=4").strip()


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slow_reliability: slow bad-input cases (full disk, large scenes); part of "
      "the default run and CI, deselect with -m 'not slow_reliability' for a quick pass")
