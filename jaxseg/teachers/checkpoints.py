"""Official DINO / DINOv2 checkpoints -> `VisionTransformer` parameters, without torch.

Supported files (the kind is detected from the file's content, not its name):
  * original `.pth` (zip `torch.save`) of DINO (`dino_deitsmall{8,16}_pretrain.pth`) and
    DINOv2 (`dinov2_vits14[_reg4]_pretrain.pth`), timm-style names `cls_token`, `pos_embed`,
    `patch_embed.proj.*`, `blocks.{i}.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,
    mlp.fc2,ls2.gamma}.*`, `norm.*`, `register_tokens`, `mask_token` (unused, dropped).
    DINO training checkpoints holding `teacher` / `student` dicts with `module.` /
    `backbone.` prefixes are accepted (the `teacher` is used; `head.*` is dropped).
  * Hugging Face `model.safetensors` of `facebook/dinov2-small` (and the with-registers
    model): `embeddings.*`, `encoder.layer.{i}.attention.attention.{query,key,value}`,
    `attention.output.dense`, `layer_scale{1,2}.lambda1`, `norm{1,2}`, `mlp.fc{1,2}`,
    `layernorm`; an optional `dinov2.` prefix is stripped.
  * files written by `tools/convert_teacher.py` (flax msgpack of the parameter tree + config).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import struct
import zipfile
from typing import Any

import flax.serialization
import numpy as np

from jaxseg.errors import InputError
from jaxseg.models.vit import ViTConfig
from jaxseg.teachers.torch_pickle import load_torch_checkpoint

CONVERTED_FORMAT = "jaxseg-vit-v1"
_HF_RENAMES = [  # (HF pattern, original name), applied in order.
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.mask_token$", "mask_token"),
    (r"^embeddings\.register_tokens$", "register_tokens"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layer\.(\d+)\.layer_scale(\d)\.lambda1$", r"blocks.\1.ls\2.gamma"),
    (r"^encoder\.layer\.(\d+)\.(norm1|norm2|mlp\.fc1|mlp\.fc2)\.", r"blocks.\1.\2."),
    (r"^layernorm\.", "norm."),
]
_HF_QKV = re.compile(
    r"^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$")


def detect_format(path: str) -> str:
  """'torch' (zip torch.save), 'safetensors' or 'converted' (msgpack from convert_teacher)."""
  if not os.path.isfile(path):
    raise InputError(path, "checkpoint file not found", "check the path (see the teacher's "
                     "download link in `jaxseg.teachers.teacher.TEACHER_SPECS`)")
  if zipfile.is_zipfile(path):
    return "torch"
  with open(path, "rb") as file:
    head = file.read(9)
  if len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < (1 << 30):
    return "safetensors"
  return "converted"


def _original_from_hf(hf: dict[str, np.ndarray], path: str) -> dict[str, np.ndarray]:
  """Renames HF Dinov2 keys to the original names; query/key/value become one qkv."""
  out: dict[str, np.ndarray] = {}
  qkv: dict[tuple[str, str], dict[str, np.ndarray]] = {}
  for key, value in hf.items():
    key = key.removeprefix("dinov2.")
    match = _HF_QKV.match(key)
    if match:
      block, part, kind = match.groups()
      qkv.setdefault((block, kind), {})[part] = value
      continue
    for pattern, replacement in _HF_RENAMES:
      if re.match(pattern, key):
        key = re.sub(pattern, replacement, key)
        break
    out[key] = value
  for (block, kind), parts in qkv.items():
    if set(parts) != {"query", "key", "value"}:
      raise InputError(path, f"layer {block} lacks some of query/key/value {kind}",
                       "use a complete Hugging Face Dinov2 model.safetensors")
    out[f"blocks.{block}.attn.qkv.{kind}"] = np.concatenate(
        [parts["query"], parts["key"], parts["value"]], axis=0)
  return out


def _unwrap_torch(obj: Any, path: str) -> dict[str, np.ndarray]:
  """The backbone state dict inside an official or training DINO/DINOv2 `.pth` object."""
  if isinstance(obj, dict):
    for wrapper in ("teacher", "model", "state_dict"):
      if wrapper in obj and isinstance(obj[wrapper], dict):
        obj = obj[wrapper]
        break
  if not isinstance(obj, dict):
    raise InputError(path, f"expected a state dict, found {type(obj).__name__}",
                     "pass the backbone checkpoint (e.g. dino_deitsmall16_pretrain.pth)")
  state = {}
  for key, value in obj.items():
    if not isinstance(value, np.ndarray):
      continue
    for prefix in ("module.", "backbone."):
      key = key.removeprefix(prefix)
    if key.startswith("head."):
      continue
    state[key] = value
  return state


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a `.pth` or `model.safetensors` checkpoint; keys use the original DINO names."""
  path = os.fspath(path)
  kind = detect_format(path)
  if kind == "torch":
    return _unwrap_torch(load_torch_checkpoint(path), path)
  if kind == "safetensors":
    import safetensors.numpy  # pylint: disable=g-import-not-at-top
    try:
      return _original_from_hf(safetensors.numpy.load_file(path), path)
    except (OSError, ValueError) as error:
      raise InputError(path, f"unreadable safetensors file: {error}",
                       "re-download model.safetensors") from error
  raise InputError(path, "not a torch .pth or safetensors checkpoint",
                   "pass an official DINO/DINOv2 checkpoint or a converted .msgpack")


def config_from_state_dict(state: dict[str, np.ndarray], num_heads: int,
                           path: str) -> ViTConfig:
  """The `ViTConfig` a state dict with original names describes (heads are not stored)."""
  for key in ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight"):
    if key not in state:
      raise InputError(path, f"missing {key!r}; this is not a DINO/DINOv2 ViT checkpoint "
                       f"(keys start {sorted(state)[:5]})", "pass the backbone checkpoint")
  dim, _, patch, _ = state["patch_embed.proj.weight"].shape
  blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
  side = math.isqrt(state["pos_embed"].shape[1] - 1)
  if side * side + 1 != state["pos_embed"].shape[1]:
    raise InputError(path, f"pos_embed {state['pos_embed'].shape} is not 1 + a square grid",
                     "pass an official checkpoint")
  hidden = state["blocks.0.mlp.fc1.weight"].shape[0] if blocks else 4 * dim
  registers = state["register_tokens"].shape[1] if "register_tokens" in state else 0
  return ViTConfig(patch_size=int(patch), embed_dim=int(dim), depth=len(blocks),
                   num_heads=num_heads, mlp_ratio=hidden / dim,
                   layerscale="blocks.0.ls1.gamma" in state,
                   num_register_tokens=int(registers), pos_grid=side)


def _linear(state, name):
  return {"kernel": state.pop(f"{name}.weight").T, "bias": state.pop(f"{name}.bias")}


def _norm(state, name):
  return {"scale": state.pop(f"{name}.weight"), "bias": state.pop(f"{name}.bias")}


def params_from_state_dict(state: dict[str, np.ndarray], config: ViTConfig,
                           path: str) -> dict[str, Any]:
  """Maps original-named torch tensors to the `VisionTransformer` parameter tree (float32).

  Linear weights (out, in) become kernels (in, out); the patch conv (D, 3, p, p) becomes
  (p, p, 3, D). Every tensor must be used: leftovers or missing names raise InputError.
  """
  state = {k: np.asarray(v, np.float32) for k, v in state.items() if k != "mask_token"}
  try:
    weight = state.pop("patch_embed.proj.weight")
    params: dict[str, Any] = {
        "patch_embed": {"kernel": weight.transpose(2, 3, 1, 0),
                        "bias": state.pop("patch_embed.proj.bias")},
        "cls_token": state.pop("cls_token"),
        "pos_embed": state.pop("pos_embed"),
        "norm": _norm(state, "norm"),
    }
    if config.num_register_tokens:
      params["register_tokens"] = state.pop("register_tokens")
    for i in range(config.depth):
      prefix = f"blocks.{i}"
      block = {
          "norm1": _norm(state, f"{prefix}.norm1"),
          "attn": {"qkv": _linear(state, f"{prefix}.attn.qkv"),
                   "proj": _linear(state, f"{prefix}.attn.proj")},
          "norm2": _norm(state, f"{prefix}.norm2"),
          "mlp": {"fc1": _linear(state, f"{prefix}.mlp.fc1"),
                  "fc2": _linear(state, f"{prefix}.mlp.fc2")},
      }
      if config.layerscale:
        block["ls1"] = {"gamma": state.pop(f"{prefix}.ls1.gamma")}
        block["ls2"] = {"gamma": state.pop(f"{prefix}.ls2.gamma")}
      params[f"blocks_{i}"] = block
  except KeyError as error:
    raise InputError(path, f"checkpoint lacks tensor {error}", "pass a complete official "
                     "checkpoint of the requested architecture") from error
  if state:
    raise InputError(path, f"unexpected tensors {sorted(state)[:8]}",
                     "pass a DINO/DINOv2 ViT backbone checkpoint of the requested architecture")
  return params


def save_converted(path: str | os.PathLike, params: dict[str, Any], config: ViTConfig) -> None:
  """Writes params + config as flax msgpack (`{format, config (JSON), params}`)."""
  payload = {"format": CONVERTED_FORMAT, "config": json.dumps(dataclasses.asdict(config)),
             "params": params}
  with open(path, "wb") as file:
    file.write(flax.serialization.msgpack_serialize(payload))


def load_converted(path: str) -> tuple[dict[str, Any], ViTConfig]:
  """Reads a file written by `save_converted`."""
  with open(path, "rb") as file:
    data = file.read()
  try:
    payload = flax.serialization.msgpack_restore(data)
    if payload.get("format") != CONVERTED_FORMAT:
      raise ValueError(f"format tag {payload.get('format')!r}")
    config = ViTConfig(**json.loads(payload["config"]))
  except Exception as error:  # msgpack raises several unrelated types on garbage.
    raise InputError(path, f"not a converted teacher file ({error})",
                     "convert the checkpoint with tools/convert_teacher.py or pass the "
                     "original .pth / model.safetensors") from error
  return payload["params"], config


def load_vit_params(path: str | os.PathLike, num_heads: int = 6
                    ) -> tuple[dict[str, Any], ViTConfig]:
  """Reads any supported checkpoint -> (VisionTransformer params, its ViTConfig)."""
  path = os.fspath(path)
  if detect_format(path) == "converted":
    return load_converted(path)
  state = read_state_dict(path)
  config = config_from_state_dict(state, num_heads, path)
  return params_from_state_dict(state, config, path), config
