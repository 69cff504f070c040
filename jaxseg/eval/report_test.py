"""Reports and TensorBoard scalars: round trips and an independently framed event file."""

import glob
import json
import os
import struct

import numpy as np
import pytest
from tensorboardX.proto import event_pb2, summary_pb2

from jaxseg.errors import InputError
from jaxseg.eval import metrics
from jaxseg.eval.report import ScalarWriter, read_scalars, write_report

_NAMES = ["wall", "floor", "chair"]


def _crc32c(data: bytes) -> int:
  """Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), independent of tensorboardX."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc ^= byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
  return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
  crc = _crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _record(payload: bytes) -> bytes:
  header = struct.pack("<Q", len(payload))
  return header + struct.pack("<I", _masked(header)) + payload + struct.pack("<I", _masked(payload))


def _results():
  conf = np.array([[50, 2, 1, 0], [3, 40, 0, 5], [0, 0, 0, 0]])  # chair absent from the GT
  runs = [metrics.clustering_scores(conf, _NAMES),
          metrics.clustering_scores(conf + np.array([[0, 8, 0, 0], [0, 0, 0, 0], [0] * 4]), _NAMES)]
  probe = metrics.segmentation_scores(np.array([[30, 1, 0], [2, 20, 0], [0, 0, 0]]))
  return runs, {"class_names": _NAMES, "meta": {"dataset": "scannet_mini", "split": "val"},
                "methods": {"pointdc": {"variants": {"point": metrics.seed_summary(runs)}},
                            "linear_probe": {"variants": {"point": probe}}}}


def test_report_json_round_trip_and_markdown_numbers(tmp_path):
  runs, results = _results()
  json_path, md_path = write_report(str(tmp_path / "out"), "eval_val", results, "Mini eval")
  assert json_path.endswith("eval_val.json") and md_path.endswith("eval_val.md")
  with open(json_path) as f:
    loaded = json.load(f)
  assert loaded["title"] == "Mini eval" and loaded["class_names"] == _NAMES
  summary = loaded["methods"]["pointdc"]["variants"]["point"]
  assert summary["miou"]["values"] == pytest.approx([r["miou"] for r in runs])
  assert summary["class_iou"]["chair"] is None
  with open(md_path) as f:
    markdown = f.read()
  assert markdown.startswith("# Mini eval")
  assert "- dataset: scannet_mini" in markdown
  miou = np.array([r["miou"] for r in runs])
  row = next(line for line in markdown.splitlines() if line.startswith("| pointdc | point |"))
  assert f"{miou.mean():.2f} ± {miou.std():.2f}" in row and row.endswith("| 2 |")
  probe = results["methods"]["linear_probe"]["variants"]["point"]
  row = next(line for line in markdown.splitlines() if line.startswith("| linear_probe |"))
  assert f"| {probe['miou']:.2f} | {probe['oacc']:.2f} | {probe['macc']:.2f} | 1 |" in row
  wall = np.mean([r["class_iou"]["wall"] for r in runs])
  assert f"| wall | {wall:.2f} | {probe['iou'][0]:.2f} |" in markdown  # named from 'iou'
  assert "| chair | - | - |" in markdown


def test_report_rejects_malformed_results(tmp_path):
  with pytest.raises(InputError, match="methods"):
    write_report(str(tmp_path), "x", {"class_names": []}, "t")
  with pytest.raises(InputError, match="lack"):
    write_report(str(tmp_path), "x", {"class_names": [], "methods": {
        "m": {"variants": {"point": {"miou": 1.0}}}}}, "t")


def test_scalar_writer_round_trip(tmp_path):
  logdir = str(tmp_path / "tb")
  with ScalarWriter(logdir) as writer:
    for step in range(5):
      writer.scalars(step * 10, {"train/loss": np.float32(1.0 / (step + 1)), "eval/miou": step})
    writer.flush()
  scalars = read_scalars(logdir)
  assert set(scalars) == {"train/loss", "eval/miou"}
  assert [s for s, _ in scalars["train/loss"]] == [0, 10, 20, 30, 40]
  np.testing.assert_allclose([v for _, v in scalars["train/loss"]],
                             [1.0 / (i + 1) for i in range(5)], rtol=1e-6)
  assert [v for _, v in scalars["eval/miou"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
  # The written file is valid TFRecord framing under an independent CRC-32C.
  path = glob.glob(os.path.join(logdir, "events.out.tfevents.*"))[0]
  with open(path, "rb") as f:
    data = f.read()
  header = data[:8]
  assert struct.unpack("<I", data[8:12])[0] == _masked(header)


def test_reads_an_independently_written_event_file_and_detects_corruption(tmp_path):
  assert _crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
  events = [event_pb2.Event(wall_time=1.0, file_version="brain.Event:2")]
  for step, value in [(3, 0.5), (7, 0.25)]:
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="loss",
                                                                   simple_value=value)])
    events.append(event_pb2.Event(wall_time=2.0, step=step, summary=summary))
  data = b"".join(_record(e.SerializeToString()) for e in events)
  path = tmp_path / "events.out.tfevents.1.host"
  path.write_bytes(data + data[:20])  # a truncated record at the end is ignored
  assert read_scalars(str(tmp_path)) == {"loss": [(3, 0.5), (7, 0.25)]}
  corrupt = bytearray(data)
  corrupt[-6] ^= 0xFF
  path.write_bytes(bytes(corrupt))
  with pytest.raises(InputError, match="corrupt record"):
    read_scalars(str(tmp_path))
  with pytest.raises(InputError, match="no TensorBoard event files"):
    read_scalars(str(tmp_path / "missing"))
