"""Helpers for tests: locating the real ScanNet mini set without copying it."""

from __future__ import annotations

import os

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scannet_mini_root() -> str | None:
  """Path of the real ScanNet mini set, from $JAXSEG_SCANNET_MINI or ../shared/data/scannet_mini
  beside the repository; None when absent (tests then skip)."""
  root = os.environ.get("JAXSEG_SCANNET_MINI",
                        os.path.join(_REPO_ROOT, "..", "shared", "data", "scannet_mini"))
  return root if os.path.isdir(os.path.join(root, "labeled")) else None


def require_scannet_mini() -> str:
  """Returns the mini-set root or skips the calling test with the reason."""
  import pytest  # pylint: disable=g-import-not-at-top
  root = scannet_mini_root()
  if root is None:
    pytest.skip("real ScanNet mini set not found: set JAXSEG_SCANNET_MINI or place it at "
                "../shared/data/scannet_mini")
  return root
