"""Regenerates torch_reference.{pth,npz}: needs torch (2.13.0 used), run outside the repo venv:
  python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
  /tmp/torchvenv/bin/python jaxseg/teachers/testdata/make_torch_reference.py
The tests only read the files, so CI never needs torch.
"""
import argparse
import collections
import os
import numpy as np
import torch
import torch.nn.functional as F
torch.manual_seed(0)
out = os.path.dirname(os.path.abspath(__file__)) + "/"
base = torch.randn(3, 4)
big = torch.randn(6, 5)
obj = collections.OrderedDict()
obj["contiguous"] = base
obj["transposed"] = base.t()
obj["offset_slice"] = big[1:5:2, 2:]
obj["expanded"] = torch.randn(1, 4).expand(3, 4)
obj["half"] = torch.randn(5).half()
obj["bfloat16"] = torch.randn(3).bfloat16()
obj["long"] = torch.arange(4, dtype=torch.int64).reshape(2, 2) * 7 - 3
obj["bool"] = torch.tensor([True, False, True])
obj["double"] = torch.randn(2, dtype=torch.float64)
obj["scalar"] = torch.tensor(2.5)
obj["empty"] = torch.zeros(0, 3)
obj["parameter"] = torch.nn.Parameter(torch.randn(2, 3))
sd = {"teacher": {"module.backbone.cls_token": torch.randn(1, 1, 4)}, "epoch": 3,
      "args": argparse.Namespace(lr=0.5, arch="vit_small"), "nested": obj}
torch.save(sd, out + "torch_reference.pth")
expected = {k: (v.detach().float() if v.dtype == torch.bfloat16 else v.detach()).numpy() for k, v in obj.items()}
expected["teacher_cls_token"] = sd["teacher"]["module.backbone.cls_token"].numpy()
# Reference resizes computed by torch.
pos = torch.randn(1, 8, 5, 5)  # (1, D, M, M)
for gh, gw in [(3, 7), (9, 4)]:
  expected[f"bicubic_{gh}x{gw}"] = F.interpolate(pos, scale_factor=((gh + 0.1) / 5, (gw + 0.1) / 5), mode="bicubic").numpy()
expected["bicubic_input"] = pos.numpy()
grid = torch.randn(1, 3, 3, 4)
expected["bilinear_input"] = grid.numpy()
expected["bilinear_12x20"] = F.interpolate(grid, size=(12, 20), mode="bilinear", align_corners=False).numpy()
np.savez(out + "torch_reference.npz", **expected)
print({k: v.shape for k, v in expected.items()})
