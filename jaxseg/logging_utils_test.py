"""Tests for jaxseg.logging_utils: a log file that cannot be written costs one line."""

import logging

from jaxseg import logging_utils


def test_unwritable_log_file_warns_once(tmp_path, capsys):
  logging_utils.setup_logging(logfile=str(tmp_path / "gone" / "log.txt"))
  try:
    logger = logging_utils.get_logger("test")
    logger.warning("first")
    logger.warning("second")
  finally:
    logging.basicConfig(force=True)
  err = capsys.readouterr().err
  assert err.count("cannot be written") == 1 and "Traceback" not in err
  assert "first" in err and "second" in err


def test_log_file_is_created_with_the_first_record(tmp_path):
  logging_utils.setup_logging(logfile=str(tmp_path / "log.txt"))
  try:
    assert not (tmp_path / "log.txt").exists()
    logging_utils.get_logger("test").info("hello")
    assert "hello" in (tmp_path / "log.txt").read_text()
  finally:
    logging.basicConfig(force=True)
