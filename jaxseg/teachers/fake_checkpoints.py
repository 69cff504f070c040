"""Test helpers: random DINO/DINOv2 state dicts with the official names and shapes, and a
torch-free writer of the zip `torch.save` format (the pickle torch writes, byte for byte in
structure: protocol 2, tensors as `torch._utils._rebuild_tensor_v2` over persistent storage
ids `('storage', torch.FloatStorage, key, 'cpu', numel)`).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import zipfile

import numpy as np

_STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                  np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
                  np.dtype(np.int32): "IntStorage", np.dtype(np.uint8): "ByteStorage"}


@dataclasses.dataclass(frozen=True)
class StridedTensor:
  """A tensor viewing `storage` (1-D) at element `offset` with `size` and element `stride`."""
  storage: np.ndarray
  offset: int
  size: tuple[int, ...]
  stride: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class _Global:
  """Pickled as the GLOBAL opcode `module name` (torch need not be importable)."""
  module: str
  name: str


@dataclasses.dataclass(frozen=True)
class _Reduce:
  """Pickled as `func(*args)` via REDUCE."""
  func: _Global
  args: tuple


@dataclasses.dataclass(frozen=True)
class _Storage:
  """Pickled as a persistent id, as torch does for storages."""
  key: str
  dtype: np.dtype
  numel: int


class _TorchLikePickler(pickle._Pickler):  # pylint: disable=protected-access
  """Pure-python pickler that writes torch globals by name and storages as persistent ids."""
  dispatch = dict(pickle._Pickler.dispatch)  # pylint: disable=protected-access

  def persistent_id(self, obj):
    if isinstance(obj, _Storage):
      return ("storage", _Global("torch", _STORAGE_NAMES[obj.dtype]), obj.key, "cpu",
              obj.numel)
    return None

  def _save_global(self, obj):
    self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
    self.memoize(obj)

  def _save_reduce(self, obj):
    self.save(obj.func)
    self.save(obj.args)
    self.write(pickle.REDUCE)

  dispatch[_Global] = _save_global
  dispatch[_Reduce] = _save_reduce


def save_torch_zip(path: str, obj, root: str = "archive") -> None:
  """Writes `obj` (nested dicts of np.ndarray / StridedTensor / plain values) like torch.save.

  np.ndarrays are stored contiguously, one storage each; a StridedTensor shares its storage
  array with every other StridedTensor holding the same array object.
  """
  storages: list[np.ndarray] = []
  storage_keys: dict[int, str] = {}

  def storage_of(array: np.ndarray) -> _Storage:
    if id(array) not in storage_keys:
      storage_keys[id(array)] = str(len(storages))
      storages.append(array)
    return _Storage(storage_keys[id(array)], array.dtype, array.size)

  def rebuild(storage, offset, size, stride):
    hooks = _Reduce(_Global("collections", "OrderedDict"), ())
    return _Reduce(_Global("torch._utils", "_rebuild_tensor_v2"),
                   (storage, offset, tuple(size), tuple(stride), False, hooks))

  def convert(value):
    if isinstance(value, dict):
      items = [(k, convert(v)) for k, v in value.items()]
      return _Reduce(_Global("collections", "OrderedDict"), (items,))
    if isinstance(value, StridedTensor):
      return rebuild(storage_of(value.storage), value.offset, value.size, value.stride)
    if isinstance(value, np.ndarray):
      flat = np.ascontiguousarray(value).reshape(-1)
      strides = [int(np.prod(value.shape[i + 1:], dtype=np.int64)) for i in range(value.ndim)]
      return rebuild(storage_of(flat), 0, value.shape, strides)
    return value

  buffer = io.BytesIO()
  _TorchLikePickler(buffer, protocol=2).dump(convert(obj))
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
    archive.writestr(f"{root}/data.pkl", buffer.getvalue())
    archive.writestr(f"{root}/byteorder", "little")
    for key, array in enumerate(storages):
      archive.writestr(f"{root}/data/{key}", array.astype(array.dtype.newbyteorder("<")).tobytes())
    archive.writestr(f"{root}/version", "3\n")


def dino_state_dict(patch_size: int, depth: int = 12, dim: int = 384, image_size: int = 224,
                    layerscale: bool = False, num_register_tokens: int = 0,
                    seed: int = 0) -> dict[str, np.ndarray]:
  """Random float32 tensors under the original DINO / DINOv2 names and shapes.

  DINO ViT-S/p: image_size 224; DINOv2 ViT-S/14: image_size 518, layerscale, and a
  `mask_token` (1, D); registers add `register_tokens` (1, R, D).
  """
  rng = np.random.default_rng(seed)
  normal = lambda *shape, std=0.02: (std * rng.standard_normal(shape)).astype(np.float32)
  grid = image_size // patch_size
  state = collections.OrderedDict()
  state["cls_token"] = normal(1, 1, dim, std=0.5)
  state["pos_embed"] = normal(1, 1 + grid * grid, dim, std=0.5)
  if layerscale:
    state["mask_token"] = normal(1, dim)
  if num_register_tokens:
    state["register_tokens"] = normal(1, num_register_tokens, dim, std=0.5)
  state["patch_embed.proj.weight"] = normal(dim, 3, patch_size, patch_size, std=0.05)
  state["patch_embed.proj.bias"] = normal(dim)
  for i in range(depth):
    p = f"blocks.{i}."
    state[p + "norm1.weight"] = 1 + normal(dim, std=0.1)
    state[p + "norm1.bias"] = normal(dim)
    state[p + "attn.qkv.weight"] = normal(3 * dim, dim, std=0.05)
    state[p + "attn.qkv.bias"] = normal(3 * dim)
    state[p + "attn.proj.weight"] = normal(dim, dim, std=0.05)
    state[p + "attn.proj.bias"] = normal(dim)
    if layerscale:
      state[p + "ls1.gamma"] = normal(dim, std=0.3)
    state[p + "norm2.weight"] = 1 + normal(dim, std=0.1)
    state[p + "norm2.bias"] = normal(dim)
    state[p + "mlp.fc1.weight"] = normal(4 * dim, dim, std=0.05)
    state[p + "mlp.fc1.bias"] = normal(4 * dim)
    state[p + "mlp.fc2.weight"] = normal(dim, 4 * dim, std=0.05)
    state[p + "mlp.fc2.bias"] = normal(dim)
    if layerscale:
      state[p + "ls2.gamma"] = normal(dim, std=0.3)
  state["norm.weight"] = 1 + normal(dim, std=0.1)
  state["norm.bias"] = normal(dim)
  return state


def dinov2_hf_state_dict(original: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The Hugging Face `Dinov2Model` names of an original DINOv2 state dict (qkv split)."""
  hf = {}
  for key, value in original.items():
    parts = key.split(".")
    if key in ("cls_token", "mask_token", "register_tokens"):
      hf[f"embeddings.{key}"] = value
    elif key == "pos_embed":
      hf["embeddings.position_embeddings"] = value
    elif key.startswith("patch_embed.proj."):
      hf[f"embeddings.patch_embeddings.projection.{parts[-1]}"] = value
    elif key.startswith("norm."):
      hf[f"layernorm.{parts[-1]}"] = value
    else:
      layer, rest = f"encoder.layer.{parts[1]}", ".".join(parts[2:])
      if rest.startswith("attn.qkv."):
        for name, chunk in zip(("query", "key", "value"), np.split(value, 3, axis=0)):
          hf[f"{layer}.attention.attention.{name}.{parts[-1]}"] = np.ascontiguousarray(chunk)
      elif rest.startswith("attn.proj."):
        hf[f"{layer}.attention.output.dense.{parts[-1]}"] = value
      elif rest.startswith(("ls1.", "ls2.")):
        hf[f"{layer}.layer_scale{rest[2]}.lambda1"] = value
      else:
        hf[f"{layer}.{rest}"] = value
  return hf
