"""End-to-end runs of the paths the PointDC reference run does not take, and of GrowSP, through
experiments/main.py on tiny built-in rooms (4 CPU devices, whole rooms at 10 cm, augmentation
off so that every batch has the same shapes and compiles once).

PointDC variant: no distillation (init=random), Sinkhorn labels, more clusters than classes,
the size filter, the shard_map step and periodic validation; then `mode=eval` of its work
directory and of raw descriptors. GrowSP from that run's network (`init`): both stages with
the pmap step and mixup, evaluated by merging its primitives, then `mode=eval` of its work
directory (3 minutes, with JAXSEG_SLOW_TESTS=1 only;
its host pieces are unit-tested in jaxseg/methods/growsp/).
"""

import json
import os
import subprocess
import sys

import pytest

from jaxseg.eval.report import read_scalars
from tests.processes import training_env

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FIXED_SHAPES = [
    "--config.data.max_scenes=4", "--config.data.batch_size=4", "--config.data.voxel_size=0.1",
    "--config.data.synthetic.num_train=4", "--config.data.synthetic.num_val=2",
    "--config.data.synthetic.frames_per_scene=4", "--config.data.augment.rotate_z=False",
    "--config.data.augment.tilt=0.0", "--config.data.augment.flip=False",
    "--config.data.augment.scale=(1.0,1.0)", "--config.data.augment.translate=0.0",
    "--config.svc.invariance.color_jitter=0.0", "--config.svc.invariance.color_noise=0.0",
    "--config.eval.seeds=(1,)", "--config.eval.linear_probe=False",
    "--config.checkpoint.every_steps=100",
]


def _run(tmp, config, workdir, *overrides):
  command = [sys.executable, os.path.join(_ROOT, "experiments", "main.py"), "--config",
             os.path.join(_ROOT, "configs", config), f"--config.workdir={workdir}",
             *_FIXED_SHAPES, *overrides]
  result = subprocess.run(command, cwd=tmp, env=training_env(tmp / "cache"),
                          capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-4000:]
  with open(workdir / "report.json") as f:
    return json.load(f), result.stderr


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
  return tmp_path_factory.mktemp("methods")


_SLOW = pytest.mark.skipif(not os.environ.get("JAXSEG_SLOW_TESTS"),
                           reason="slow (5 minutes in all): set JAXSEG_SLOW_TESTS=1 to run")


@_SLOW
def test_pointdc_variant_then_eval_of_its_workdir_and_raw_descriptors(tmp):
  workdir = tmp / "variant"
  report, log = _run(tmp, "scannet_svc.py", workdir, "--config.init=random",
                     "--config.svc.assign=sinkhorn", "--config.svc.num_clusters=24",
                     "--config.eval.num_clusters=24", "--config.svc.min_segment_points=3",
                     "--config.parallel.mode=shard_map", "--config.svc.warmup_epochs=0",
                     "--config.svc.epochs=2", "--config.svc.recluster_every=1",
                     "--config.eval.every_epochs=2")
  name = "PointDC: random init + SVC (sinkhorn)"
  assert set(report["methods"]) == {name}
  assert "teacher" not in report["meta"]       # no distillation ran
  assert report["meta"]["init"] == "randomly initialised network"
  assert 0 < report["methods"][name]["variants"]["point"]["miou"]["mean"] <= 100
  assert not (workdir / "checkpoints" / "cmd").exists()
  assert not (workdir / "checkpoints" / "svc_warmup").exists()
  # Sinkhorn with equal cluster masses: every one of the 24 clusters gets super-voxels.
  rounds = [line for line in log.splitlines() if "clustering for svc epoch" in line]
  assert len(rounds) == 2 and all("into 24 clusters" in r and "min 0 " not in r for r in rounds)
  scalars = read_scalars(str(workdir / "tensorboard"))
  assert len(scalars["svc/val_miou"]) == 1

  evaluated, _ = _run(tmp, "scannet_svc.py", tmp / "eval_variant", "--config.mode=eval",
                      f"--config.eval.checkpoint={workdir}", "--config.eval.num_clusters=24")
  (name,) = evaluated["methods"]
  assert name == f"PointDC network of {workdir}"
  # The same network, clusters and seed as the run's own evaluation.
  assert (evaluated["methods"][name]["variants"]["point"]["miou"]["mean"] ==
          pytest.approx(report["methods"]["PointDC: random init + SVC (sinkhorn)"]
                        ["variants"]["point"]["miou"]["mean"], abs=0.5))
  raw, _ = _run(tmp, "scannet_svc.py", tmp / "raw", "--config.mode=eval",
                "--config.eval.features=raw_descriptors")
  assert list(raw["methods"]) == ["K-means on raw super-voxel descriptors (no network)"]


@_SLOW
def test_growsp_both_stages_with_pmap_from_a_pointdc_run(tmp):
  """GrowSP started from the PointDC run above (`init`): one epoch on the fixed super-voxels,
  two growing them."""
  workdir = tmp / "growsp"
  report, log = _run(tmp, "scannet_growsp.py", workdir, "--config.parallel.mode=pmap",
                     f"--config.init={tmp / 'variant'}", "--config.growsp.fixed_epochs=1",
                     "--config.growsp.growing_epochs=2", "--config.growsp.round_epochs=1",
                     "--config.growsp.primitives=24", "--config.growsp.grow_start=12",
                     "--config.growsp.grow_end=6", "--config.growsp.min_segment_points=3",
                     "--config.growsp.mixup=True")
  assert set(report["methods"]) == {"GrowSP (init from a run)"}
  assert report["meta"]["init"] == f"network of the run {tmp / 'variant'}"
  assert "teacher" not in report["meta"]      # that run did not distil
  rounds = [line for line in log.splitlines() if "primitives in" in line]
  assert len(rounds) == 3
  assert "(fixed)" in rounds[0] and "(M=12 per scene)" in rounds[1]
  assert "(M=9 per scene)" in rounds[2]
  for phase in ("growsp_fixed", "growsp_growing"):
    assert any(n.isdigit() for n in os.listdir(workdir / "checkpoints" / phase)), phase
  scalars = read_scalars(str(workdir / "tensorboard"))
  assert len(scalars["growsp_growing/primitive_purity"]) == 2
  # mode=eval of the run merges its saved primitives: the training run's own scores again.
  evaluated, _ = _run(tmp, "scannet_growsp.py", workdir, "--config.mode=eval")
  (again,) = evaluated["methods"].values()
  (trained,) = report["methods"].values()
  assert evaluated["meta"]["clustering"] == "the run's 24 primitives merged"
  for variant in ("point", "supervoxel_pooled"):
    assert again["variants"][variant]["miou"] == trained["variants"][variant]["miou"]


@_SLOW
def test_coarse3d_with_shard_map_its_baseline_on_the_same_labels_and_eval(tmp):
  """COARSE3D from the PointDC run's encoder with the shard_map step (the bank's sums and
  Sinkhorn normalisers added over devices), contrast from the first epoch; the baseline on
  exactly the same labels (weak.labels_from), trained with the reference's focal + Lovasz
  loss; `mode=eval` of the COARSE3D run scores its classifier head again."""
  workdir, baseline = tmp / "coarse3d", tmp / "coarse3d_ce"
  report, log = _run(tmp, "scannet_coarse3d.py", workdir, "--config.parallel.mode=shard_map",
                     f"--config.init={tmp / 'variant'}", "--config.coarse3d.epochs=2",
                     "--config.coarse3d.contrast_start_epoch=0", "--config.weak.ratio=0.01")
  (entry,) = report["methods"].values()
  assert set(report["methods"]) == {"COARSE3D"}
  assert report["meta"]["init"] == f"encoder of the pointdc run {tmp / 'variant'}"
  assert "COARSE3D weak labels:" in log and (workdir / "weak_labels.npz").is_file()
  scores = entry["variants"]["supervised"]
  assert 0 < scores["miou"] <= 100 and len(scores["iou"]) == 20
  contrast = [v for _, v in read_scalars(str(workdir / "tensorboard"))["coarse3d/epoch_contrast"]]
  assert len(contrast) == 2 and all(v > 0 for v in contrast)

  base, _ = _run(tmp, "scannet_coarse3d.py", baseline, "--config.coarse3d.epochs=2",
                 "--config.coarse3d.contrast=False", "--config.coarse3d.loss=focal_lovasz",
                 f"--config.weak.labels_from={workdir}")
  assert set(base["methods"]) == {"focal + Lovasz on the weak labels"}
  assert base["meta"]["training"] == "2 epochs, focal + Lovasz only"
  assert base["meta"]["weak_labels"].split(",")[0] == report["meta"]["weak_labels"].split(",")[0]

  evaluated, _ = _run(tmp, "scannet_coarse3d.py", workdir, "--config.mode=eval")
  (again,) = evaluated["methods"].values()
  assert again["variants"]["supervised"]["miou"] == scores["miou"]


@_SLOW
def test_clurender_pretraining_with_shard_map_then_eval_of_its_workdir(tmp):
  """CluRender on the voxel encoder (the shard_map step; 2 views of 160x120 per scene from
  the rooms' rendered frames), its clustering and rendering losses falling over three epochs
  on the same scenes (no augmentation), evaluated like every unsupervised network;
  `mode=eval` of the run scores its network again."""
  workdir = tmp / "clurender"
  report, log = _run(tmp, "scannet_clurender.py", workdir, "--config.parallel.mode=shard_map",
                     "--config.clurender.epochs=3", "--config.clurender.views=2",
                     "--config.clurender.render.image_size=(160,120)",
                     "--config.clurender.render.pixels=256",
                     "--config.clurender.render.ot_iterations=30")
  assert set(report["methods"]) == {"CluRender (SoftClu + rendering)"}
  assert report["meta"]["init"] == "randomly initialised network"
  assert "CluRender: 3 epochs, 64 clusters" in log
  assert "rendering: 4 of 4 training scenes have posed frames" in log
  scalars = read_scalars(str(workdir / "tensorboard"))
  for name in ("softclu/epoch_cluster_loss", "softclu/epoch_render_loss"):
    losses = [v for _, v in scalars[name]]
    assert len(losses) == 3 and losses[-1] < losses[0], (name, losses)
  evaluated, _ = _run(tmp, "scannet_clurender.py", workdir, "--config.mode=eval")
  (again,) = evaluated["methods"].values()
  (trained,) = report["methods"].values()
  assert again["variants"]["point"]["miou"] == trained["variants"]["point"]["miou"]
