"""Tests for config key checking and resolved-config output."""

import json

import ml_collections

from jaxseg import config_utils


def _config():
  return ml_collections.ConfigDict({"mode": "prepare",
                                    "data": {"voxel_size": 0.02, "aug": {"flip": True}}})


def test_flatten_keys_lists_every_leaf():
  assert config_utils.flatten_keys(_config()) == ["data.aug.flip", "data.voxel_size", "mode"]


def test_known_keys_and_subtrees_pass():
  argv = ["main.py", "--config=c.py", "--config.data.voxel_size=0.05", "--config.mode",
          "prepare", "--config.data.aug.flip=False"]
  assert config_utils.unknown_override_message(argv, _config()) is None


def test_unknown_key_names_the_key_and_suggests():
  message = config_utils.unknown_override_message(
      ["--config.data.voxel_sise=0.05"], _config())
  assert "data.voxel_sise" in message
  assert "Did you mean data.voxel_size" in message
  assert "data.aug" in message and "data.voxel_size" in message


def test_resolved_config_round_trips(tmp_path):
  path = config_utils.write_resolved_config(_config(), str(tmp_path))
  with open(path) as f:
    assert json.load(f) == {"mode": "prepare",
                            "data": {"voxel_size": 0.02, "aug": {"flip": True}}}


def test_a_changed_config_keeps_the_previous_one(tmp_path):
  """resume_noflag_existing: config.json of the run that made the checkpoints was replaced."""
  first = config_utils.write_resolved_config(_config(), str(tmp_path))
  config_utils.write_resolved_config(_config(), str(tmp_path))  # same values: one file
  assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
  changed = _config()
  changed.data.voxel_size = 0.05
  config_utils.write_resolved_config(changed, str(tmp_path))
  kept = [p for p in tmp_path.iterdir() if p.name != "config.json"]
  assert len(kept) == 1 and kept[0].name.startswith("config.")
  assert json.loads(kept[0].read_text())["data"]["voxel_size"] == 0.02
  assert json.loads(open(first).read())["data"]["voxel_size"] == 0.05
