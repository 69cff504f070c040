"""A Ctrl-C swallowed where it landed still stops the next progress item."""

import os
import signal
import sys
import time

import pytest

from jaxseg import interrupts
from jaxseg.logging_utils import progress


class _Finaliser:
  """Ctrl-C arriving in a finaliser: Python cannot raise it there and reports it as an
  unraisable exception, as for XLA's gc callbacks."""

  def __del__(self):
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1.0)   # The handler runs here and raises.


def _swallowed_ctrl_c():
  _Finaliser()   # Collected at once: its __del__ runs, and its KeyboardInterrupt is dropped.


def test_swallowed_ctrl_c_stops_the_next_item_without_a_traceback(capfd):
  previous, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
  sys.unraisablehook = sys.__unraisablehook__   # the plain interpreter's, as in the CLI
  interrupts.install()
  try:
    seen = []
    with pytest.raises(KeyboardInterrupt):
      for item in progress(range(5), desc="items"):
        seen.append(item)
        if item == 1:
          _swallowed_ctrl_c()
    assert seen == [0, 1]
    assert "Traceback" not in capfd.readouterr().err
  finally:
    interrupts.install()          # clears the mark for the rest of the session
    signal.signal(signal.SIGINT, previous)
    sys.unraisablehook = hook
  assert list(progress(range(3), desc="after")) == [0, 1, 2]
