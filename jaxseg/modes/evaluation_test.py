"""Evaluating another run's network uses the encoder and input features that run was trained
with."""

import json

from jaxseg import config_defaults
from jaxseg.modes import evaluation


def _config(checkpoint: str, input_colors: bool):
  config = config_defaults.base_config(name="x", data=config_defaults.data_config(
      fmt="synthetic", num_classes=20, voxel_size=0.05, smoothness_deg=5.0))
  config.eval.checkpoint = checkpoint
  config.model.input_colors = input_colors
  return config


def test_another_runs_input_setting_is_adopted(tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  (run / "config.json").write_text(json.dumps({"method": "clurender",
                                               "model": {"input_colors": False,
                                                         "name": "dgcnn"}}))
  config = _config(str(run), True)
  evaluation._network_of_run(config)   # pylint: disable=protected-access
  assert config.model.input_colors is False and config.model.name == "dgcnn"
  assert config.model.out_dim == 128
  # A checkpoint folder inside the run finds the run's config too.
  folder = run / "checkpoints" / "softclu"
  folder.mkdir(parents=True)
  config = _config(str(folder), True)
  evaluation._network_of_run(config)   # pylint: disable=protected-access
  assert config.model.input_colors is False


def test_random_and_own_networks_keep_the_config(tmp_path):
  for checkpoint in ("random", "", str(tmp_path)):     # tmp_path: no config.json
    config = _config(checkpoint, False)
    evaluation._network_of_run(config)   # pylint: disable=protected-access
    assert config.model.input_colors is False
