"""What a run distilled from, read from its config.json (for reports of runs started from it)."""

import json

from jaxseg.train import restore


def _run(folder, **config):
  folder.mkdir(parents=True)
  base = {"method": "pointdc", "init": "", "cmd": {"epochs": 3},
          "teacher": {"name": "dino_vits8", "checkpoint": "/w/dino.pth"}}
  (folder / "config.json").write_text(json.dumps({**base, **config}))
  (folder / "checkpoints" / "cmd").mkdir(parents=True)
  return folder


def test_distilled_teacher_of_a_run_or_its_checkpoint_folder(tmp_path):
  run = _run(tmp_path / "distilled")
  assert restore.distilled_teacher(str(run)) == "dino_vits8 (/w/dino.pth)"
  assert restore.distilled_teacher(str(run / "checkpoints" / "cmd")) == "dino_vits8 (/w/dino.pth)"
  assert restore.distilled_teacher(str(_run(tmp_path / "random", init="random"))) is None
  assert restore.distilled_teacher(str(_run(tmp_path / "growsp", method="growsp"))) is None
  fallback = _run(tmp_path / "fallback", teacher={"name": "fallback", "checkpoint": ""})
  assert "NOT DINO" in restore.distilled_teacher(str(fallback))
  assert restore.distilled_teacher(str(tmp_path / "nowhere")) is None
