"""jaxseg.load refuses what it cannot label with, naming the path and the fix."""

import importlib.util
import json
import os

import numpy as np
import pytest

import jaxseg
from jaxseg.errors import InputError
from jaxseg.eval.classifier import Classifier
from jaxseg.inference import bundle


def test_a_supervised_run_is_refused_with_the_fix(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"method": "coarse3d"}))
  with pytest.raises(InputError, match="a COARSE3D run: .* clustering runs .*--config.mode=eval"):
    jaxseg.load(str(tmp_path))


def test_a_folder_without_a_run_is_refused(tmp_path):
  with pytest.raises(InputError, match="no config.json: not a jaxseg run directory"):
    jaxseg.load(str(tmp_path))


def test_a_run_evaluated_with_recalibrated_statistics_is_read_from_its_bundle(tmp_path):
  """Its checkpoints hold the running averages, its classifier the recalibrated features'
  centroids: only the bundle holds both as evaluated."""
  spec = importlib.util.spec_from_file_location("cfg", os.path.join(
      os.path.dirname(__file__), "..", "..", "configs", "scannet_svc.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.eval.batch_norm = "recalibrate"
  (tmp_path / "config.json").write_text(config.to_json())
  with pytest.raises(InputError, match="recalibrated BatchNorm statistics.*evaluate it again"):
    jaxseg.load(str(tmp_path))
  stats = {"encoder": {"bn": {"mean": np.full(4, 0.5, np.float32),
                              "var": np.full(4, 2.0, np.float32)}}}
  classes = int(config.data.num_classes)
  classifier = Classifier(np.eye(classes, 4, dtype=np.float32),
                          np.arange(classes, dtype=np.int32), tuple(map(str, range(classes))))
  bundle.write(str(tmp_path / "model.jaxseg"), config,
               {"params": {}, "batch_stats": stats}, classifier)
  model = jaxseg.load(str(tmp_path))
  np.testing.assert_array_equal(model.variables["batch_stats"]["encoder"]["bn"]["var"], 2.0)
