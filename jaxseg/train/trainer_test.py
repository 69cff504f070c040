"""Host-side pieces of the trainer and of PointDC's clustering phases: resume positions,
pseudo-label lookup, epoch schedules, and the README results table."""

import json
import importlib.util
import os

import ml_collections
import numpy as np
import optax

from jaxseg.train import trainer
from jaxseg.train.optim import optimizer_for

_SPEC = importlib.util.spec_from_file_location(
    "results_table", os.path.join(os.path.dirname(__file__), "..", "..", "tools", "results_table.py"))
results_table = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(results_table)


def test_start_position_continues_inside_or_after_an_epoch():
  assert trainer.start_position(None, 6) == (0, 0)
  assert trainer.start_position({"epoch": 3, "batch": 2}, 6) == (3, 2)
  assert trainer.start_position({"epoch": 3, "batch": 6}, 6) == (4, 0)


def test_pseudo_labels_follow_points_by_segment_and_respect_ignore():
  """Packed batches (scenes of records 2 and 0 in pack 0, record 1 in pack 1, an empty slot)
  against a per-point lookup in per-record tables."""
  rng = np.random.default_rng(0)
  sizes = [4, 6, 7]                                   # super-voxels of records 0, 1, 2
  tables = [rng.integers(-1, 5, size=n).astype(np.int32) for n in sizes]
  offsets = np.concatenate([[0], np.cumsum(sizes)])
  host = {"scene_index": np.array([[2, 0], [1, -1]], np.int32),
          "scene_segment_offset": np.array([[0, 7], [0, 0]], np.int32),
          "point_scene": rng.integers(0, 2, size=(2, 60)).astype(np.int32),
          "point_mask": rng.random((2, 60)) < 0.85,
          "point_labels": rng.integers(-1, 20, size=(2, 60)).astype(np.int32)}
  host["point_scene"][1] = 0
  local = np.stack([[rng.integers(-1, sizes[host["scene_index"][g, z]])
                     for z in host["point_scene"][g]] for g in range(2)])
  segment_offset = np.take_along_axis(host["scene_segment_offset"], host["point_scene"], 1)
  host["point_segments"] = np.where(local >= 0, local + segment_offset, -1).astype(np.int32)
  arrays = {"labels": np.concatenate(tables), "offsets": offsets}
  for ignore in (False, True):
    got = trainer.supervoxel_labels(ignore)(host, arrays)["pseudo_labels"]
    expected = np.full((2, 60), -1)
    for g in range(2):
      for p in range(60):
        record = host["scene_index"][g, host["point_scene"][g, p]]
        if local[g, p] < 0 or not host["point_mask"][g, p]:
          continue
        if ignore and host["point_labels"][g, p] < 0:
          continue
        expected[g, p] = tables[record][local[g, p]]
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
  for name, fitted, evaluated in (("run", "all", "all"),
                                  ("split", "scene000[0-5]_*", "scene000[6-8]_*")):
    report = {"methods": {"PointDC SVC (kmeans)": {"variants": {
        "point": summary(12.0), "supervoxel_pooled": summary(14.0),
        "linear_probe": {"miou": 40.0, "oacc": 70.0, "macc": 50.0}},
        "splits": {"clusters_fitted_on": fitted, "evaluated_on": evaluated}}},
              "meta": {"teacher": "fallback_not_dino (no weights)",
                       "stage_seconds": {"svc": 120.0, "eval": 30.0}}}
    (tmp_path / name).mkdir()
    (tmp_path / name / "report.json").write_text(json.dumps(report))
  table = results_table.table([str(tmp_path / "run"), str(tmp_path / "split")], None)
  rows = table.splitlines()[2:]
  scores = ("12.0 ± 0.5 / 50.0 ± 1.0 / 30.0 ± 0.0 | 14.0 ± 0.5 / 50.0 ± 1.0 / 30.0 ± 0.0 | "
            "40.0 / 70.0 / 50.0 | svc 2.0 min, eval 0.5 min |")
  assert rows == [
      f"| PointDC SVC (kmeans) | fallback_not_dino | transductive (all) | {scores}",
      f"| PointDC SVC (kmeans) | fallback_not_dino | scene000[0-5]_* → scene000[6-8]_* | {scores}"]
