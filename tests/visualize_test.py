"""tools/visualize.py as a user runs it: a far-away (UTM-style) cloud comes back in its source
frame, and the picture is written."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from jaxseg.io import ply

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_exported_ply_keeps_the_source_frame(tmp_path):
  rng = np.random.default_rng(0)
  source = np.array([500_000.0, 4_200_000.0, 30.0]) + rng.random((2000, 3)) * [4.0, 3.0, 2.5]
  clouds = tmp_path / "clouds"
  clouds.mkdir()
  np.savetxt(clouds / "far.txt", np.concatenate([source, rng.integers(0, 256, (2000, 3))], 1),
             fmt="%.4f")
  out = tmp_path / "views" / "far"
  result = subprocess.run(
      [sys.executable, os.path.join(_ROOT, "tools", "visualize.py"), "--format", "custom",
       "--root", str(clouds), "--scene", "far.txt", "--color", "segments", "--out", str(out)],
      capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr
  vertex = ply.read_ply(f"{out}.ply")["vertex"]
  written = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
  assert written.dtype == np.float64
  np.testing.assert_allclose(written, np.round(source, 4), atol=1e-6)
  image = np.asarray(Image.open(f"{out}.png"))
  assert image.ndim == 3 and len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 5
