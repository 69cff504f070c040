"""Reads PyTorch `torch.save` checkpoints (zip format) into numpy without importing torch.

A `.pth` file written by `torch.save` (PyTorch >= 1.6) is an uncompressed zip:

  <root>/data.pkl      the pickled object; each tensor is
                       `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`
                       whose storage is a persistent id
                       `('storage', torch.FloatStorage, key, location, numel)`
  <root>/data/<key>    raw little-endian bytes of storage `key`
  <root>/byteorder     optional, "little" or "big"
  <root>/version       format version

`load_torch_checkpoint` unpickles `data.pkl` with an allow-list of globals: tensor and
parameter rebuilders, storage types, `collections.OrderedDict` and `argparse.Namespace`
(the `args` of training checkpoints). Any other global (e.g. `os.system`) is refused, so a
malicious file cannot run code. Legacy non-zip pickles (PyTorch < 1.6) are not supported.
"""

from __future__ import annotations

import collections
import os
import pickle
import zipfile
from typing import Any

import ml_dtypes
import numpy as np

from jaxseg.errors import InputError

# Storage class name -> numpy dtype of its elements.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
  """Stands in for a `torch.<X>Storage` class inside the pickle: only carries the dtype."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


class Namespace:
  """Stands in for `argparse.Namespace` (training arguments): a plain attribute bag."""

  def __setstate__(self, state: dict[str, Any]) -> None:
    self.__dict__.update(state)

  def __repr__(self) -> str:
    return f"Namespace({self.__dict__!r})"


def _rebuild_tensor_v2(storage: np.ndarray, storage_offset: int, size, stride,
                       requires_grad=False, backward_hooks=None, metadata=None) -> np.ndarray:
  """Returns a contiguous copy of the strided view `storage[offset :: stride]` of shape `size`."""
  del requires_grad, backward_hooks, metadata
  size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
  if any(s < 0 for s in stride) or storage_offset < 0:
    raise pickle.UnpicklingError(f"negative stride {stride} or offset {storage_offset}")
  if 0 in size:
    return np.zeros(size, storage.dtype)
  last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= storage.size:
    raise pickle.UnpicklingError(
        f"tensor of size {size}, stride {stride}, offset {storage_offset} reads past its "
        f"storage of {storage.size} elements")
  itemsize = storage.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(
      storage[storage_offset:], shape=size, strides=tuple(s * itemsize for s in stride),
      writeable=False)
  return np.array(view, order="C")  # ascontiguousarray would turn 0-d into 1-d.


def _rebuild_parameter(data: np.ndarray, requires_grad=False, backward_hooks=None) -> np.ndarray:
  """`torch.nn.Parameter` -> its data array."""
  del requires_grad, backward_hooks
  return data


def _safe_global(module: str, name: str) -> Any:
  """The allow-listed globals; None for anything else."""
  if module == "collections" and name == "OrderedDict":
    return collections.OrderedDict
  if module == "torch._utils" and name == "_rebuild_tensor_v2":
    return _rebuild_tensor_v2
  if module == "torch._utils" and name == "_rebuild_parameter":
    return _rebuild_parameter
  if module == "torch" and name in _STORAGE_DTYPES:
    return _StorageType(name)
  if module == "argparse" and name == "Namespace":
    return Namespace
  return None


class _TorchUnpickler(pickle.Unpickler):
  """Unpickles `data.pkl` with storages read from the zip and only allow-listed globals."""

  def __init__(self, file, archive: zipfile.ZipFile, root: str, byteorder: str, path: str):
    super().__init__(file)
    self._archive = archive
    self._root = root
    self._byteorder = byteorder
    self._path = path
    self._storages: dict[str, np.ndarray] = {}

  def find_class(self, module: str, name: str) -> Any:
    found = _safe_global(module, name)
    if found is None:
      raise pickle.UnpicklingError(
          f"refusing global {module}.{name}: only tensors, storages, OrderedDict and "
          "argparse.Namespace may appear in a checkpoint read without torch")
    return found

  def persistent_load(self, pid: Any) -> np.ndarray:
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)):
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    _, storage_type, key, _, numel = pid
    if key not in self._storages:
      raw = self._archive.read(f"{self._root}data/{key}")
      dtype = storage_type.dtype.newbyteorder("<" if self._byteorder == "little" else ">")
      if len(raw) < int(numel) * dtype.itemsize:
        raise pickle.UnpicklingError(
            f"storage {key} has {len(raw)} bytes, fewer than {numel} elements of {dtype}")
      array = np.frombuffer(raw, dtype=dtype, count=int(numel))
      self._storages[key] = array.astype(storage_type.dtype, copy=False)
    return self._storages[key]


def load_torch_checkpoint(path: str | os.PathLike) -> Any:
  """Loads a zip-format `torch.save` file; tensors come back as numpy arrays.

  Args:
    path: the `.pth` file.
  Returns:
    The saved object (usually a dict name -> np.ndarray, possibly nested), with every tensor
    a C-contiguous numpy array of the tensor's dtype and shape.
  Raises:
    InputError: missing file, not a zip-format torch file, or a refused/corrupt pickle.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise InputError(path, "checkpoint file not found", "check the path")
  if not zipfile.is_zipfile(path):
    raise InputError(path, "not a zip-format torch.save file (legacy pre-1.6 pickles are not "
                     "supported)", "re-save it with torch>=1.6 `torch.save(obj, path)`")
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
    if len(pickles) != 1:
      raise InputError(path, f"expected one data.pkl in the archive, found {len(pickles)}",
                       "pass a file written by torch.save")
    root = pickles[0][:-len("data.pkl")]
    byteorder = "little"
    if f"{root}byteorder" in archive.namelist():
      byteorder = archive.read(f"{root}byteorder").decode().strip()
    try:
      with archive.open(pickles[0]) as file:
        return _TorchUnpickler(file, archive, root, byteorder, path).load()
    except (pickle.UnpicklingError, KeyError, EOFError) as error:
      raise InputError(path, f"cannot read the checkpoint safely: {error}",
                       "use an official checkpoint or convert it with tools/convert_teacher.py "
                       "from a trusted copy") from error
