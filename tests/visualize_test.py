"""tools/visualize.py as a user runs it: a far-away (UTM-style) cloud comes back in its source
frame, and the picture is written."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from jaxseg.io import ply
from jaxseg.viz import render

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


def test_predictions_are_drawn_beside_the_ground_truth(tmp_path):
  """--predictions (an infer labels file): the panel of ground truth | prediction | errors is
  written, wider than one view; a labels file of the wrong length is refused."""
  rng = np.random.default_rng(1)
  points = rng.random((3000, 3)) * [4.0, 3.0, 2.5]
  clouds = tmp_path / "clouds"
  clouds.mkdir()
  np.savetxt(clouds / "room.txt", np.concatenate([points, rng.integers(0, 256, (3000, 3))], 1),
             fmt="%.4f")
  labels = (points[:, 2] > 1.0).astype(np.int32)
  np.save(tmp_path / "room_labels.npy", labels)
  np.save(tmp_path / "short.npy", labels[:10])
  command = [sys.executable, os.path.join(_ROOT, "tools", "visualize.py"), "--format", "custom",
             "--root", str(clouds), "--scene", "room.txt"]
  out = tmp_path / "room"
  result = subprocess.run(command + ["--predictions", str(tmp_path / "room_labels.npy"),
                                     "--out", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr
  assert "coloured by predictions" in result.stdout
  panel = np.asarray(Image.open(f"{out}.png")).reshape(-1, 3)
  colours = {tuple(c) for c in np.unique(panel, axis=0)}
  for colour in render.palette(20)[:2]:          # both predicted classes are drawn
    assert tuple(colour) in colours
  bad = subprocess.run(command + ["--predictions", str(tmp_path / "short.npy"), "--out",
                                  str(tmp_path / "bad")], capture_output=True, text=True,
                       timeout=300, check=False)
  assert bad.returncode != 0 and "has 10 labels, the scene 3000 points" in bad.stderr
