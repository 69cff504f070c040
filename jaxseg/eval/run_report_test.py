"""timings.json across resumed invocations."""

import pytest

from jaxseg.eval.run_report import timings

_FIRST = {"stage_seconds": {"cmd": 100.0, "svc": 40.0}, "compilations": {"compiled": 9}}


def test_a_fresh_run_records_only_its_own_invocation():
  assert timings(_FIRST, {"svc": 5.0}, {"compiled": 1}, resumed=False) == {
      "stage_seconds": {"svc": 5.0}, "compilations": {"compiled": 1}}
  assert timings(None, {"svc": 5.0}, {"compiled": 1}, resumed=True) == {
      "stage_seconds": {"svc": 5.0}, "compilations": {"compiled": 1}}


def test_resumed_runs_keep_every_earlier_invocation_and_the_totals():
  second = timings(_FIRST, {"svc": 30.0, "eval": 7.0}, {"compiled": 2}, resumed=True)
  third = timings(second, {"eval": 6.5}, {"compiled": 0}, resumed=True)
  assert third["stage_seconds"] == {"eval": 6.5}
  assert third["earlier_invocations"] == [
      _FIRST, {"stage_seconds": {"svc": 30.0, "eval": 7.0}, "compilations": {"compiled": 2}}]
  assert third["stage_seconds_all_invocations"] == pytest.approx(
      {"cmd": 100.0, "svc": 70.0, "eval": 13.5})


def test_an_unreadable_earlier_file_is_not_carried_over():
  assert "earlier_invocations" not in timings(["not", "a", "record"], {"svc": 1.0}, {},
                                              resumed=True)
