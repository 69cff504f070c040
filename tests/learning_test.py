"""Learning must show on the built-in rooms: the README demos (configs/scannet_svc.py and
configs/scannet_growsp.py, seeded) against a randomly initialised network under the same
evaluation seeds.

Too slow for the default run (PointDC 14.5 minutes on 2 CPU cores when these runs still used
the tests' cheaper XLA code generation, GrowSP about 7): set JAXSEG_SLOW_TESTS=1.
The default run checks the distillation loss fall on tinier rooms (tests/pointdc_test.py).
"""

import json
import os
import subprocess
import sys

import pytest

from jaxseg.eval.report import read_scalars
from tests.processes import training_env

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Stated margins, below what was measured on 2026-12-02 (distillation loss 0.043 -> 0.0048;
# PointDC 15.3 against 10.8 mIoU point-wise; GrowSP 15.0 against 10.8).
DISTILLATION_LOSS_FALL = 0.8
MIOU_MARGIN_OVER_RANDOM = 2.0
GROWSP_MIOU_MARGIN_OVER_RANDOM = 2.0

pytestmark = pytest.mark.skipif(not os.environ.get("JAXSEG_SLOW_TESTS"),
                                reason="slow: set JAXSEG_SLOW_TESTS=1 to run")


def _main(tmp, workdir, *overrides, config="scannet_svc.py"):
  command = [sys.executable, os.path.join(_ROOT, "experiments", "main.py"), "--config",
             os.path.join(_ROOT, "configs", config), f"--config.workdir={workdir}",
             "--config.eval.linear_probe=False", *overrides]
  result = subprocess.run(command, cwd=tmp, env=training_env(tmp / "cache"),
                          capture_output=True, text=True, timeout=1800)
  assert result.returncode == 0, result.stderr[-4000:]
  with open(workdir / "report.json") as f:
    return json.load(f)


def test_demo_learns_more_than_a_random_network(tmp_path):
  trained = _main(tmp_path, tmp_path / "demo")
  random = _main(tmp_path, tmp_path / "random", "--config.mode=eval",
                 "--config.eval.checkpoint=random")
  losses = [v for _, v in read_scalars(str(tmp_path / "demo" / "tensorboard"))["cmd/epoch_loss"]]
  assert losses[-1] <= (1 - DISTILLATION_LOSS_FALL) * losses[0], losses
  ours = trained["methods"]["PointDC: distillation + SVC (kmeans)"]["variants"]["point"]
  base = random["methods"]["Randomly initialised network"]["variants"]["point"]
  assert ours["miou"]["mean"] >= base["miou"]["mean"] + MIOU_MARGIN_OVER_RANDOM, (ours, base)


def test_growsp_demo_learns_more_than_a_random_network(tmp_path):
  trained = _main(tmp_path, tmp_path / "growsp", config="scannet_growsp.py")
  random = _main(tmp_path, tmp_path / "random", "--config.mode=eval",
                 "--config.eval.checkpoint=random", config="scannet_growsp.py")
  ours = trained["methods"]["GrowSP (random init)"]["variants"]["point"]
  base = random["methods"]["Randomly initialised network"]["variants"]["point"]
  assert ours["miou"]["mean"] >= base["miou"]["mean"] + GROWSP_MIOU_MARGIN_OVER_RANDOM, (
      ours, base)
  # Every round logged its primitive purity, and the run trained on them.
  scalars = read_scalars(str(tmp_path / "growsp" / "tensorboard"))
  assert scalars["growsp_fixed/primitive_purity"] and scalars["growsp_growing/primitive_purity"]
