"""End-to-end PointDC runs through experiments/main.py on tiny built-in rooms (4 CPU devices),
and the Colab quickstart notebook.

One full training run (CMD, SVC warm-up, SVC with re-clustering, evaluation) is shared by the
tests; a second run of the same command, started from the first one's state at the end of the
warm-up, is killed in the iterative SVC phase and resumed, and must end with the first run's
parameters. Every compiled program and the built dataset go to the runs' shared cache, so later
runs (and the notebook's) load them instead of compiling or building them again.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import nbformat
from nbclient import NotebookClient
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

import jaxseg
from jaxseg.data.scene import Scene
from jaxseg.eval.metrics import segmentation_scores
from jaxseg.eval.report import read_scalars
from jaxseg.io.labels import SCANNET_NYU40_IDS
from jaxseg.supervoxels import api as supervoxels_api
from jaxseg.train.restore import load_variables
from tests.processes import training_env

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 4 train / 2 val rooms at 10 cm, a 1-3 epoch schedule (one step an epoch).
_TINY = [
    "--config.data.max_scenes=4", "--config.data.batch_size=4",
    "--config.data.voxel_size=0.1", "--config.data.synthetic.num_train=4", "--config.data.synthetic.num_val=2",
    "--config.data.synthetic.frames_per_scene=4", "--config.cmd.image_size=(80,60)",
    "--config.cmd.epochs=3", "--config.svc.warmup_epochs=1", "--config.svc.epochs=2",
    "--config.svc.recluster_every=2",
    "--config.eval.seeds=(1,)", "--config.eval.probe.steps=20",
    "--config.checkpoint.every_steps=1",
]


def _command(workdir, *overrides):
  return [sys.executable, os.path.join(_ROOT, "experiments", "main.py"), "--config",
          os.path.join(_ROOT, "configs", "scannet_svc.py"), f"--config.workdir={workdir}",
          *_TINY, *overrides]


def _env(tmp):
  return training_env(tmp / "cache")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("pointdc")
  workdir = tmp / "full"
  result = subprocess.run(_command(workdir), cwd=tmp, env=_env(tmp), capture_output=True,
                          text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-4000:]
  return tmp, workdir, result.stderr


def test_svc_run_writes_report_checkpoints_and_scalars(full_run):
  _, workdir, log = full_run
  with open(workdir / "report.json") as f:
    report = json.load(f)
  method = report["methods"]["PointDC: distillation + SVC (kmeans)"]
  for variant in ("point", "supervoxel_pooled"):
    scores = method["variants"][variant]
    assert scores["num_seeds"] == 1
    assert 0 < scores["miou"]["mean"] <= 100 and 0 < scores["oacc"]["mean"] <= 100
  assert 0 < method["variants"]["linear_probe"]["oacc"] <= 100
  assert set(report["meta"]["stage_seconds"]) == {"cmd", "svc", "eval"}
  assert "NOT DINO" in report["meta"]["teacher"] and "NOT DINO" in log
  assert report["meta"]["init"] == "cross-modal distillation"
  # The iterative SVC phase runs the warm-up's train step (`pointdc.cluster`: one loss, one
  # parameter tree, schedules held in the optimizer state) and loads it from the persistent
  # cache instead of compiling it; one clustering pass's program repeats too. Phases that
  # compiled their own steps loaded 1 program.
  assert report["meta"]["compilations"]["loaded_from_cache"] >= 2
  assert "| PointDC: distillation + SVC (kmeans) | supervoxel_pooled |" in (
      workdir / "report.md").read_text()
  for phase in ("cmd", "svc_warmup", "svc"):
    assert any(n.isdigit() for n in os.listdir(workdir / "checkpoints" / phase)), phase
  scalars = read_scalars(str(workdir / "tensorboard"))
  assert len(scalars["cmd/epoch_loss"]) == 3 and len(scalars["svc/epoch_loss"]) == 2
  assert all(np.isfinite(v) for _, v in scalars["svc/epoch_loss"])
  # Throughput and the phase's ETA, in the log and in TensorBoard; 0 after the last epoch.
  assert "cmd epoch 3/3: " in log and "phase ETA 0 s" in log
  eta = [v for _, v in scalars["cmd/epoch_eta_minutes"]]
  assert eta[0] > 0 and eta[-1] == 0
  assert all(v > 0 for _, v in scalars["svc/epoch_voxels_per_second"])
  # Pictures of the first two evaluated scenes, listed in the report.
  assert len(method["renders"]) == 2
  for path in method["renders"]:
    assert os.path.dirname(path) == str(workdir / "renders")
    assert np.asarray(Image.open(path)).shape[2] == 3


def test_distillation_loss_falls(full_run):
  """Three Adam steps on four rooms cut the distillation loss by almost half (measured: 0.053
  -> 0.028); a sign error, a dead gradient or targets that do not follow their points would
  not."""
  _, workdir, _ = full_run
  losses = [v for _, v in read_scalars(str(workdir / "tensorboard"))["cmd/epoch_loss"]]
  assert losses[-1] <= 0.75 * losses[0], losses


def test_infer_labels_new_clouds_as_evaluation_did(full_run):
  """mode=infer with the run's model bundle on the evaluation rooms, given as plain .npy
  clouds, reproduces the evaluation's first-seed point-wise mIoU exactly, and writes every
  file; the bundle holds what the work directory holds."""
  tmp, workdir, _ = full_run
  from_bundle, from_run = jaxseg.load(workdir / "model.jaxseg"), jaxseg.load(workdir)
  np.testing.assert_array_equal(from_bundle.classifier.centroids, from_run.classifier.centroids)
  assert from_bundle.labels_are_classes and from_run.labels_are_classes
  for a, b in zip(jax.tree.leaves(from_bundle.variables), jax.tree.leaves(from_run.variables)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with open(workdir / "report.json") as f:
    report = json.load(f)
  source = tfds.builder_from_directory(report["meta"]["dataset_dir"]).as_data_source("val")
  clouds = tmp / "clouds"
  clouds.mkdir()
  records = {f"room_{i}": source[i] for i in range(len(source))}
  for name, record in records.items():
    np.save(clouds / f"{name}.npy", np.c_[record["coords"], record["colors"]].astype(np.float32))
  result = subprocess.run(_command(tmp / "infer", "--config.mode=infer",
                                   f"--config.infer.input={clouds}",
                                   f"--config.infer.model={workdir / 'model.jaxseg'}",
                                   "--config.infer.pooling=False"),
                          cwd=tmp, env=_env(tmp), capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-4000:]
  out = tmp / "infer" / "infer"
  with open(out / "predictions.json") as f:
    summary = json.load(f)
  assert summary["labels"] == "classes" and len(summary["scenes"]) == len(records)
  assert summary["pooling"] == "point-wise"
  conf = np.zeros((20, 20), np.int64)
  for name, record in records.items():
    labels = np.load(out / f"{name}_labels.npy")
    truth = np.asarray(record["labels"])
    assert labels.shape == truth.shape and labels.min() >= 0
    np.add.at(conf, (truth[truth >= 0], labels[truth >= 0]), 1)
    nyu40 = np.loadtxt(out / f"{name}.txt", dtype=np.int64)
    np.testing.assert_array_equal(nyu40, np.asarray(SCANNET_NYU40_IDS)[labels])
    assert (out / f"{name}.ply").stat().st_size > 0 and (out / f"{name}.png").exists()
  (method,) = report["methods"].values()
  assert segmentation_scores(conf)["miou"] == pytest.approx(
      method["variants"]["point"]["miou"]["values"][0], abs=1e-9)


def test_pooled_labels_reproduce_the_pooled_evaluation(full_run):
  """predict_scene with pooling, on the evaluation rooms with their own super-voxels,
  reproduces the evaluation's first-seed super-voxel pooled mIoU exactly: pooled labels use
  the pooled variant's own cluster -> class match."""
  _, workdir, _ = full_run
  model = jaxseg.load(workdir / "model.jaxseg")
  with open(workdir / "report.json") as f:
    report = json.load(f)
  source = tfds.builder_from_directory(report["meta"]["dataset_dir"]).as_data_source("val")
  conf = np.zeros((20, 20), np.int64)
  for i in range(len(source)):
    record = source[i]
    scene = Scene(name=f"room_{i}", coords=np.asarray(record["coords"]),
                  colors=np.asarray(record["colors"]),
                  segments=np.asarray(record["segments"], np.int32))
    labels, truth = model.predict_scene(scene, pooling=True), np.asarray(record["labels"])
    np.add.at(conf, (truth[truth >= 0], labels[truth >= 0]), 1)
  (method,) = report["methods"].values()
  assert segmentation_scores(conf)["miou"] == pytest.approx(
      method["variants"]["supervoxel_pooled"]["miou"]["values"][0], abs=1e-9)


def test_pooled_prediction_against_a_float64_reference(full_run):
  """predict_scene with pooling: each super-voxel of the scene takes the class of its mean
  unit feature (numpy float64 reference from the model's point features and classifier);
  points outside every super-voxel keep their own class. Scenes without super-voxels get
  them computed with the run's settings, and every computed super-voxel has one label."""
  _, workdir, _ = full_run
  model = jaxseg.load(workdir / "model.jaxseg")
  with open(workdir / "report.json") as f:
    source = tfds.builder_from_directory(
        json.load(f)["meta"]["dataset_dir"]).as_data_source("val")
  record = source[0]
  scene = Scene(name="room", coords=np.asarray(record["coords"]),
                colors=np.asarray(record["colors"]),
                segments=np.asarray(record["segments"], np.int32))
  feats = model.point_features(scene).astype(np.float64)
  centroids = model.classifier.centroids.astype(np.float64)
  mapping = model.classifier.pooled_cluster_to_class
  expected = mapping[np.argmax(feats @ centroids.T, axis=1)]
  segments = scene.segments
  assert (segments >= 0).mean() > 0.5
  for segment in np.unique(segments[segments >= 0]):
    members = segments == segment
    expected[members] = mapping[np.argmax(feats[members].mean(0) @ centroids.T)]
  np.testing.assert_array_equal(model.predict_scene(scene, pooling=True), expected)
  pointwise = model.predict(scene.coords, scene.colors, pooling=False)
  np.testing.assert_array_equal(
      pointwise, model.classifier.cluster_to_class[np.argmax(feats @ centroids.T, axis=1)])
  assert not np.array_equal(pointwise, expected)     # pooling changed some labels.
  # Georeferenced coordinates are recentred before the float32 cast, colours in 0..1 scaled,
  # as the file readers do (cast directly, 56% of these labels changed).
  far = model.predict(scene.coords + np.array([5e5, 4e6, 100.0]), scene.colors / 255.0,
                      pooling=False)
  assert np.mean(far == pointwise) > 0.99

  pooled = model.predict(scene.coords, scene.colors)  # super-voxels computed here
  computed = supervoxels_api.compute_with_settings(
      Scene(name="room", coords=scene.coords, colors=scene.colors),
      model.config.data.supervoxels.to_dict())
  for segment in np.unique(computed[computed >= 0]):
    assert len(np.unique(pooled[computed == segment])) == 1


def test_rerun_without_resume_is_refused(full_run):
  tmp, workdir, _ = full_run
  result = subprocess.run(_command(workdir), cwd=tmp, env=_env(tmp), capture_output=True,
                          text=True, timeout=600)
  assert result.returncode != 0
  assert "pass --resume" in result.stderr


def _wait_for_step(folder, process, timeout=600):
  start = time.time()
  while time.time() - start < timeout:
    if os.path.isdir(folder) and any(n.isdigit() for n in os.listdir(folder)):
      return
    assert process.poll() is None, "the run ended before it could be interrupted"
    time.sleep(0.2)
  raise AssertionError(f"no checkpoint appeared in {folder}")


def _state_after_warmup(full_workdir, log, workdir):
  """`workdir` as the full run left its own at the end of the SVC warm-up: the finished CMD
  and warm-up checkpoints, and the capacity signatures made until then (the log numbers
  them), so the same batches get the same padded shapes as in the full run."""
  for phase in ("cmd", "svc_warmup"):
    shutil.copytree(full_workdir / "checkpoints" / phase, workdir / "checkpoints" / phase)
  before = log[:log.index("svc_warmup epoch 1/1")]
  for kind in ("train", "eval"):
    made = len(re.findall(rf"{kind} capacity signature \d+ ", before))
    with open(full_workdir / f"capacities_{kind}.json") as f:
      signatures = json.load(f)["signatures"][:made]
    with open(workdir / f"capacities_{kind}.json", "w") as f:
      json.dump({"signatures": signatures}, f)


def test_killed_in_iterative_svc_and_resumed_equals_uninterrupted(full_run):
  """The same run, resumed from the full run's state at the end of the warm-up, killed
  (SIGKILL) after the iterative phase's first checkpoint and resumed again: it trains its next
  epoch on the clustering restored from the checkpoint (re-clustering is every 2 epochs) and
  ends with the parameters of the uninterrupted run (the same batches, the same capacity
  history, hence the same float sums)."""
  tmp, full_workdir, log = full_run
  workdir = tmp / "interrupted"
  _state_after_warmup(full_workdir, log, workdir)
  command = _command(workdir, "--config.eval.after_training=False", "--resume")
  process = subprocess.Popen(command, cwd=tmp, env=_env(tmp), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  try:
    _wait_for_step(workdir / "checkpoints" / "svc", process)
    process.send_signal(signal.SIGKILL)
  finally:
    process.wait(timeout=60)
  resumed = subprocess.run(command, cwd=tmp, env=_env(tmp), capture_output=True,
                           text=True, timeout=900)
  assert resumed.returncode == 0, resumed.stderr[-4000:]
  assert "resuming svc from step" in resumed.stderr
  with open(workdir / "timings.json") as f:   # the killed invocation stays on record
    timings = json.load(f)
  assert (timings["mode"], timings["resumed"], timings["finished"]) == ("train", True, True)
  assert [(e["resumed"], e["finished"]) for e in timings["earlier_invocations"]] == [
      (True, False)]
  expected = load_variables(str(full_workdir), ("svc",))
  got = load_variables(str(workdir), ("svc",))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               got, expected)


def _outputs(cell, kind):
  return [o for o in cell.get("outputs", []) if o.get("output_type") == kind or
          kind in o.get("data", {})]


def test_quickstart_notebook_runs_top_to_bottom(full_run, tmp_path, monkeypatch):
  """experiments/colab_quickstart.ipynb runs top to bottom (nbclient, a real Jupyter kernel)
  on its smallest settings (JAXSEG_NOTEBOOK_SMOKE=1: the tiny rooms, one clustering epoch from
  a random network), in a copy of the checkout so nothing is written into the repository,
  with the full run's cache (its dataset and compiled programs) and capacity signatures (so
  its batches pad to the full run's shapes and its step and feature passes load the full
  run's programs instead of compiling their own): the demo trains and evaluates, the renders
  are shown, and a .ply is labelled from Python and from the command line with the same
  labels."""
  checkout = tmp_path / "jaxseg"
  for name in ("configs", "experiments"):
    shutil.copytree(os.path.join(_ROOT, name), checkout / name)
  (checkout / "workdirs" / "colab_demo").mkdir(parents=True)
  for kind in ("train", "eval"):
    shutil.copy(full_run[1] / f"capacities_{kind}.json", checkout / "workdirs" / "colab_demo")
  monkeypatch.setenv("JAXSEG_NOTEBOOK_SMOKE", "1")
  for key, value in _env(full_run[0]).items():
    if key.startswith(("JAXSEG_", "XLA_")):
      monkeypatch.setenv(key, value)
  notebook = nbformat.read(os.path.join(_ROOT, "experiments", "colab_quickstart.ipynb"),
                           as_version=4)
  NotebookClient(notebook, timeout=900, kernel_name="python3",
                 resources={"metadata": {"path": str(checkout / "experiments")}}).execute()

  code = [c for c in notebook.cells if c.cell_type == "code"]
  text = "\n".join(o.get("text", "") for c in code for o in _outputs(c, "stream"))
  assert "is installed; runtime accelerator: cpu" in text
  assert "| supervoxel_pooled |" in text                  # the report was printed
  assert "PointDC: random init + SVC" in text              # the notebook's own run
  pictures = [o for c in code for o in _outputs(c, "image/png")]
  assert len(pictures) >= 3        # two evaluation renders and the labelled scan
  assert "the command line and Python agree on 100.0% of the points" in text
  assert (checkout / "workdirs" / "colab_demo" / "infer" / "my_scan_labels.npy").is_file()
