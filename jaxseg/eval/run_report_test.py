"""timings.json across the invocations of one work directory: resumed, killed, evaluated."""

import pytest

from jaxseg.eval.run_report import finished_timings, started_timings

_COMPILED = {"compiled": 1}


def _invocation(previous, mode, resumed, seconds, started="2026-12-05T00:00:00+00:00"):
  return finished_timings(started_timings(previous, mode, resumed, started), seconds, _COMPILED)


def test_a_first_invocation_records_only_itself():
  record = _invocation(None, "train", False, {"svc": 5.0})
  assert record == {"mode": "train", "resumed": False, "started": "2026-12-05T00:00:00+00:00",
                    "finished": True, "stage_seconds": {"svc": 5.0}, "compilations": _COMPILED}


def test_resumed_runs_keep_every_earlier_invocation_and_sum_the_run():
  first = _invocation(None, "train", False, {"cmd": 100.0, "svc": 40.0})
  second = _invocation(first, "train", True, {"svc": 30.0, "eval": 7.0})
  third = _invocation(second, "train", True, {"eval": 6.5})
  assert third["stage_seconds"] == {"eval": 6.5}
  assert [e["stage_seconds"] for e in third["earlier_invocations"]] == [
      {"cmd": 100.0, "svc": 40.0}, {"svc": 30.0, "eval": 7.0}]
  assert third["stage_seconds_all_invocations"] == pytest.approx(
      {"cmd": 100.0, "svc": 70.0, "eval": 13.5})


def test_a_killed_invocation_stays_in_the_history_unfinished():
  first = _invocation(None, "train", False, {"cmd": 100.0})
  killed = started_timings(first, "train", True, "2026-12-05T01:00:00+00:00")  # never finished
  assert killed["finished"] is False
  resumed = _invocation(killed, "train", True, {"svc": 20.0})
  history = resumed["earlier_invocations"]
  assert [e["finished"] for e in history] == [True, False]
  assert history[1]["started"] == "2026-12-05T01:00:00+00:00"
  assert "stage_seconds" not in history[1]
  assert resumed["stage_seconds_all_invocations"] == pytest.approx({"cmd": 100.0, "svc": 20.0})


def test_evaluating_a_trained_directory_keeps_the_training_times():
  trained = _invocation(None, "train", False, {"cmd": 100.0, "eval": 9.0})
  evaluated = _invocation(trained, "eval", False, {"eval": 8.0})
  assert evaluated["mode"] == "eval"
  assert evaluated["earlier_invocations"][0]["stage_seconds"] == {"cmd": 100.0, "eval": 9.0}
  assert "stage_seconds_all_invocations" not in evaluated
  # A later resumed training sums its run's training invocations only, not the evaluation.
  resumed = _invocation(evaluated, "train", True, {"svc": 3.0})
  assert resumed["stage_seconds_all_invocations"] == pytest.approx(
      {"cmd": 100.0, "eval": 9.0, "svc": 3.0})


def test_a_fresh_run_ends_the_sum_at_its_start():
  old = _invocation(None, "train", False, {"cmd": 50.0})
  fresh = _invocation(old, "train", False, {"cmd": 60.0})   # a new run in the same directory
  resumed = _invocation(fresh, "train", True, {"svc": 1.0})
  assert resumed["stage_seconds_all_invocations"] == pytest.approx({"cmd": 60.0, "svc": 1.0})


def test_a_file_written_before_modes_were_recorded_is_kept():
  legacy = {"stage_seconds": {"cmd": 100.0}, "compilations": {"compiled": 9}}
  resumed = _invocation(legacy, "train", True, {"svc": 2.0})
  assert resumed["earlier_invocations"] == [legacy]
  assert resumed["stage_seconds_all_invocations"] == pytest.approx({"cmd": 100.0, "svc": 2.0})


def test_an_unreadable_earlier_file_is_not_carried_over():
  record = _invocation(["not", "a", "record"], "train", True, {"svc": 1.0})
  assert "earlier_invocations" not in record
  assert record["stage_seconds_all_invocations"] == {"svc": 1.0}
