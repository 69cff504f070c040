"""Generate-on-first-use cache: reuse, atomicity, parameter-specific directories."""

import json
import logging
import os

import pytest

from jaxseg.errors import InputError
from jaxseg.synthetic import cache

TINY = dict(num_train=1, num_val=1, frames_per_scene=2, image_size=(64, 48), spacing=0.1)


def _entries(folder):
  """The entries of `folder` except lock files (empty files that stay, by design)."""
  return sorted(n for n in os.listdir(folder) if not n.endswith(".lock"))


def test_generates_once_then_reuses(tmp_path, monkeypatch, caplog):
  with caplog.at_level(logging.INFO, logger="jaxseg"):
    root = cache.ensure_synthetic_scannet(str(tmp_path), **TINY)
  assert any("Generating the built-in synthetic" in r.getMessage() and root in r.getMessage()
             for r in caplog.records)
  assert os.path.dirname(root) == str(tmp_path)
  assert _entries(tmp_path) == [os.path.basename(root)]  # no temporary directory left
  with open(os.path.join(root, cache.MARKER_NAME)) as f:
    marker = json.load(f)
  assert marker["version"] == cache.GENERATOR_VERSION and marker["config"]["num_train"] == 1
  with open(os.path.join(root, "scannetv2_train.txt")) as f:
    train = f.read().split()
  with open(os.path.join(root, "scannetv2_val.txt")) as f:
    val = f.read().split()
  assert len(train) == 1 and len(val) == 1 and train != val
  for scene in train + val:
    assert os.path.isfile(os.path.join(root, scene, f"{scene}_vh_clean_2.ply"))
    assert len(os.listdir(os.path.join(root, scene, "depth"))) == 2
  with open(os.path.join(root, "scannetv2-labels.combined.tsv")) as f:
    header = f.readline().rstrip("\n").split("\t")
  assert header == ["id", "raw_category", "category", "count", "nyu40id", "nyu40class"]

  def fail(*args, **kwargs):
    raise AssertionError("regenerated although the cache was complete")

  monkeypatch.setattr(cache, "generate_dataset", fail)
  assert cache.ensure_synthetic_scannet(str(tmp_path), **TINY) == root


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
  def interrupted(out_root, config, seed):
    os.makedirs(os.path.join(out_root, "scene9000_00"))
    raise KeyboardInterrupt

  monkeypatch.setattr(cache, "generate_dataset", interrupted)
  with pytest.raises(KeyboardInterrupt):
    cache.ensure_synthetic_scannet(str(tmp_path), **TINY)
  assert _entries(tmp_path) == []


def test_default_location_and_parameter_specific_names(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(cache, "generate_dataset", lambda out, config, seed: calls.append(config))
  monkeypatch.setenv("JAXSEG_CACHE", str(tmp_path))
  default = cache.ensure_synthetic_scannet()
  assert default == os.path.join(str(tmp_path), "synthetic_scannet_v1")
  assert calls[0].num_train == 8 and calls[0].color_size == (320, 240)
  other = cache.ensure_synthetic_scannet(seed=1)
  assert other != default and os.path.basename(other).startswith("synthetic_scannet_v1-")
  assert len(calls) == 2


def test_foreign_directory_is_reported(tmp_path):
  os.makedirs(tmp_path / "synthetic_scannet_v1")
  with pytest.raises(InputError, match="delete the directory"):
    cache.ensure_synthetic_scannet(str(tmp_path))


def test_leftovers_of_killed_generations_are_removed(tmp_path, monkeypatch):
  """SIGKILL left 22 MB `.synthetic_*.tmp-*` folders in the cache that were never removed."""
  leftover = tmp_path / ".synthetic_scannet_v1.tmp-killed"
  (leftover / "scene9000_00").mkdir(parents=True)
  other = tmp_path / ".synthetic_scannet_v1-0123456789.tmp-running"  # other parameters
  other.mkdir()
  monkeypatch.setattr(cache, "generate_dataset", lambda out, config, seed: None)
  cache.ensure_synthetic_scannet(str(tmp_path))
  assert not leftover.exists() and other.exists()
