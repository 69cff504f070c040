"""Host-side pieces of the stages: resume positions, pseudo-label lookup, epoch schedules,
and the README results table."""

import json
import os
import sys

import ml_collections
import numpy as np
import optax

from jaxseg.stages import loop
from jaxseg.stages.optimizers import optimizer_for
from jaxseg.stages.svc import pseudo_label_fields

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import results_table  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_start_position_continues_inside_or_after_an_epoch():
  assert loop.start_position(None, 6) == (0, 0)
  assert loop.start_position({"epoch": 3, "batch": 2}, 6) == (3, 2)
  assert loop.start_position({"epoch": 3, "batch": 6}, 6) == (4, 0)


def test_pseudo_labels_follow_points_by_segment_and_respect_ignore():
  rng = np.random.default_rng(0)
  table = rng.integers(-1, 5, size=(3, 7)).astype(np.int32)
  batch = {
      "scene_index": np.array([2, 0, -1], np.int32),
      "point_segments": rng.integers(-1, 7, size=(3, 50)).astype(np.int32),
      "point_mask": rng.random((3, 50)) < 0.8,
      "point_labels": rng.integers(-1, 20, size=(3, 50)).astype(np.int32),
  }
  for ignore in (False, True):
    got = pseudo_label_fields({"labels": table}, ignore)(batch)["pseudo_labels"]
    expected = np.full((3, 50), -1)
    for b in range(3):
      for p in range(50):
        scene, segment = batch["scene_index"][b], batch["point_segments"][b, p]
        if scene < 0 or segment < 0 or not batch["point_mask"][b, p]:
          continue
        if ignore and batch["point_labels"][b, p] < 0:
          continue
        expected[b, p] = table[scene, segment]
    np.testing.assert_array_equal(got, expected)


def test_step_decay_counts_epochs_in_steps():
  cfg = ml_collections.ConfigDict({"name": "sgd", "lr": 1.0, "momentum": 0.0, "dampening": 0.0,
                                   "weight_decay": 0.0, "schedule": "step",
                                   "decay_every_epochs": 2, "decay_factor": 0.5})
  tx = optimizer_for(cfg, steps_per_epoch=3, where="svc.optimizer")
  params = np.zeros((), np.float32)
  state = tx.init(params)
  rates = []
  for _ in range(13):
    updates, state = tx.update(np.ones((), np.float32), state, params)
    rates.append(-float(updates))
  # Decays after every 2 epochs x 3 steps = 6 updates.
  np.testing.assert_allclose(rates, [1.0] * 6 + [0.5] * 6 + [0.25])
  assert isinstance(tx, optax.GradientTransformation)


def test_results_table_reads_reports(tmp_path):
  summary = lambda m: {"num_seeds": 2, "miou": {"mean": m, "std": 0.5, "values": [m - .5, m + .5]},
                       "oacc": {"mean": 50.0, "std": 1.0, "values": [49, 51]},
                       "macc": {"mean": 30.0, "std": 0.0, "values": [30, 30]}}
  report = {"methods": {"PointDC SVC (kmeans)": {"variants": {
      "point": summary(12.0), "supervoxel_pooled": summary(14.0),
      "linear_probe": {"miou": 40.0, "oacc": 70.0, "macc": 50.0}}}},
            "meta": {"teacher": "fallback_not_dino (no weights)",
                     "stage_seconds": {"svc": 120.0, "eval": 30.0}}}
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "report.json").write_text(json.dumps(report))
  table = results_table.table([str(tmp_path / "run")], None)
  row = table.splitlines()[2]
  assert row == ("| PointDC SVC (kmeans) | fallback_not_dino | 12.0 ± 0.5 / 50.0 ± 1.0 / 30.0 ± 0.0 | "
                 "14.0 ± 0.5 / 50.0 ± 1.0 / 30.0 ± 0.0 | 40.0 / 70.0 / 50.0 | "
                 "svc 2.0 min, eval 0.5 min |")
