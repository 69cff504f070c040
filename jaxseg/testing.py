"""Helpers for tests: locating the real ScanNet mini set without copying it; camera poses."""

from __future__ import annotations

import os

import numpy as np

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


def look_at(eye, target) -> np.ndarray:
  """float64 (4, 4) camera-to-world pose (x right, y down, z forward) of a camera at `eye`
  looking at `target`, z up in the world (for projection tests)."""
  forward = np.asarray(target, float) - eye
  forward /= np.linalg.norm(forward)
  right = np.cross(forward, [0.0, 0.0, 1.0])
  right /= np.linalg.norm(right)
  pose = np.eye(4)
  pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, np.cross(forward, right), forward, eye
  return pose
