"""Tests of the torch-free `.pth` reader."""

import os
import pickle
import zipfile

import ml_dtypes
import numpy as np
import pytest

from jaxseg.errors import InputError
from jaxseg.teachers import fake_checkpoints
from jaxseg.teachers.torch_pickle import Namespace, load_torch_checkpoint

TESTDATA = os.path.join(os.path.dirname(__file__), "testdata")


def test_reads_a_real_torch_save_file_identically():
  """torch_reference.pth was written by torch 2.13 (testdata/make_torch_reference.py); the
  .npz holds the same tensors exported by torch's own `.numpy()`."""
  loaded = load_torch_checkpoint(os.path.join(TESTDATA, "torch_reference.pth"))
  expected = np.load(os.path.join(TESTDATA, "torch_reference.npz"))
  tensors = loaded["nested"]
  names = ["contiguous", "transposed", "offset_slice", "expanded", "half", "bfloat16", "long",
           "bool", "double", "scalar", "empty", "parameter"]
  assert list(tensors) == names
  for name in names:
    got = tensors[name]
    want = expected[name]
    assert got.shape == want.shape, name
    if name == "bfloat16":
      assert got.dtype == ml_dtypes.bfloat16
      got = got.astype(np.float32)
    else:
      assert got.dtype == want.dtype, name
    np.testing.assert_array_equal(got, want, err_msg=name)
  np.testing.assert_array_equal(loaded["teacher"]["module.backbone.cls_token"],
                                expected["teacher_cls_token"])
  assert loaded["epoch"] == 3
  assert isinstance(loaded["args"], Namespace)
  assert (loaded["args"].lr, loaded["args"].arch) == (0.5, "vit_small")


def test_round_trip_of_strided_and_offset_tensors(tmp_path):
  rng = np.random.default_rng(0)
  storage = rng.standard_normal(40).astype(np.float32)
  views = {
      "offset_transposed": fake_checkpoints.StridedTensor(storage, 3, (4, 5), (1, 6)),
      "broadcast_row": fake_checkpoints.StridedTensor(storage, 10, (3, 4), (0, 2)),
  }
  plain = {"f16": rng.standard_normal((2, 3)).astype(np.float16),
           "i64": np.arange(6, dtype=np.int64).reshape(3, 2), "u8": np.arange(5, dtype=np.uint8)}
  path = str(tmp_path / "ckpt.pth")
  fake_checkpoints.save_torch_zip(path, {**views, **plain, "meta": {"epoch": 7}})
  loaded = load_torch_checkpoint(path)
  expected_offset = np.array([[storage[3 + i + 6 * j] for j in range(5)] for i in range(4)])
  expected_broadcast = np.array([[storage[10 + 2 * j] for j in range(4)] for _ in range(3)])
  np.testing.assert_array_equal(loaded["offset_transposed"], expected_offset)
  np.testing.assert_array_equal(loaded["broadcast_row"], expected_broadcast)
  for name, array in plain.items():
    assert loaded[name].dtype == array.dtype
    np.testing.assert_array_equal(loaded[name], array)
  assert loaded["meta"] == {"epoch": 7}


def test_view_past_the_end_of_its_storage_is_refused(tmp_path):
  storage = np.zeros(10, np.float32)
  path = str(tmp_path / "bad.pth")
  fake_checkpoints.save_torch_zip(
      path, {"w": fake_checkpoints.StridedTensor(storage, 5, (2, 3), (3, 1))})
  with pytest.raises(InputError, match="reads past"):
    load_torch_checkpoint(path)


def _zip_with_pickle(path, payload: bytes):
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", payload)
    archive.writestr("archive/version", "3\n")


class _RunsShell:
  def __init__(self, command):
    self.command = command

  def __reduce__(self):
    return (os.system, (self.command,))


def test_refuses_malicious_globals(tmp_path):
  marker = tmp_path / "pwned"
  path = str(tmp_path / "evil.pth")
  _zip_with_pickle(path, pickle.dumps({"w": _RunsShell(f"touch {marker}")}, protocol=2))
  with pytest.raises(InputError, match=r"refusing global (posix|os)\.system") as error:
    load_torch_checkpoint(path)
  assert path in str(error.value)
  assert not marker.exists()


def test_refuses_builtins_eval(tmp_path):
  path = str(tmp_path / "evil.pth")
  payload = b"\x80\x02cbuiltins\neval\nX\x06\x00\x00\x00print(1)\x85R."
  _zip_with_pickle(path, payload)
  with pytest.raises(InputError, match="refusing global builtins.eval"):
    load_torch_checkpoint(path)


def test_missing_and_non_zip_files(tmp_path):
  with pytest.raises(InputError, match="not found") as error:
    load_torch_checkpoint(tmp_path / "absent.pth")
  assert "absent.pth" in str(error.value)
  legacy = tmp_path / "legacy.pth"
  legacy.write_bytes(pickle.dumps({"a": 1}))
  with pytest.raises(InputError, match="not a zip-format"):
    load_torch_checkpoint(legacy)
