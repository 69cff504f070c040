"""jaxseg.load refuses what it cannot label with, naming the path and the fix."""

import json

import pytest

import jaxseg
from jaxseg.errors import InputError


def test_a_supervised_run_is_refused_with_the_fix(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"method": "coarse3d"}))
  with pytest.raises(InputError, match="a COARSE3D run: .* clustering runs .*--config.mode=eval"):
    jaxseg.load(str(tmp_path))


def test_a_folder_without_a_run_is_refused(tmp_path):
  with pytest.raises(InputError, match="no config.json: not a jaxseg run directory"):
    jaxseg.load(str(tmp_path))
