"""A Ctrl-C swallowed where it landed still stops the next progress item."""

import os
import signal
import time

import pytest

from jaxseg import interrupts
from jaxseg.logging_utils import progress


def _swallowed_ctrl_c():
  """Ctrl-C arriving inside code that drops exceptions (as gc callbacks do)."""
  try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1.0)   # The handler runs here and raises.
  except KeyboardInterrupt:
    pass


def test_swallowed_ctrl_c_stops_the_next_item():
  previous = signal.getsignal(signal.SIGINT)
  interrupts.install()
  try:
    seen = []
    with pytest.raises(KeyboardInterrupt):
      for item in progress(range(5), desc="items"):
        seen.append(item)
        if item == 1:
          _swallowed_ctrl_c()
    assert seen == [0, 1]
  finally:
    interrupts.install()          # clears the mark for the rest of the session
    signal.signal(signal.SIGINT, previous)
  assert list(progress(range(3), desc="after")) == [0, 1, 2]
