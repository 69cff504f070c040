"""jaxseg command line.

  python experiments/main.py --config configs/scannet_svc.py [--config.a.b=value ...] [--resume]

Loads an ml_collections config (`get_config()` in the given file), rejects unknown keys with a
clear message, writes the resolved config to `<workdir>/config.json`, and runs `config.mode`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
from ml_collections import config_flags

from jaxseg import config_utils  # pylint: disable=wrong-import-position
from jaxseg import logging_utils
from jaxseg import modes

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file with get_config(); override keys with "
    "--config.a.b=value.", lock_config=True)
_RESUME = flags.DEFINE_bool("resume", False,
                            "Continue from the newest checkpoint in the work directory.")


def _config_path(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _load_config_file(path: str):
  spec = importlib.util.spec_from_file_location("jaxseg_user_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _parse_flags(argv: list[str]) -> list[str]:
  """Parses flags; an unknown config key or bad config file exits with a one-line reason."""
  path = _config_path(argv)
  if path is None:
    sys.exit("error: --config is required, e.g. --config configs/scannet_svc.py")
  if not os.path.isfile(path.split(":")[0]):
    sys.exit(f"error: config file {path!r} not found; the configs are in {_ROOT}/configs/")
  message = config_utils.unknown_override_message(argv, _load_config_file(path.split(":")[0]))
  if message:
    sys.exit(f"error: {message}")
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"error: {e}")


def main(argv: list[str]) -> None:
  del argv
  config = _CONFIG.value
  workdir = os.path.abspath(config.workdir)
  os.makedirs(workdir, exist_ok=True)
  logging_utils.setup_logging(logfile=os.path.join(workdir, "log.txt"))
  logger = logging_utils.get_logger("main")
  errors = modes.validate(config)
  if errors:
    sys.exit("error: invalid config:\n  " + "\n  ".join(errors))
  logger.info("resolved config written to %s",
              config_utils.write_resolved_config(config, workdir))
  try:
    modes.run(config, workdir, resume=_RESUME.value)
  except modes.UserFacingError as e:
    logger.error("%s", e)
    sys.exit(1)


if __name__ == "__main__":
  logging.getLogger("absl").setLevel(logging.WARNING)
  app.run(main, flags_parser=_parse_flags)
