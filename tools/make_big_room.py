"""Writes a 2,000,010-point room in the S3DIS layout (12 m x 10 m x 3 m: floor, ceiling, four
walls and 30 tables, points drawn uniformly on each surface), to check that a room of the
largest S3DIS size is stored, evaluated and labelled whole.

  python tools/make_big_room.py /tmp/big/s3dis        # -> /tmp/big/s3dis/Area_5/bigroom_1/
  python experiments/main.py --config configs/s3dis_svc.py --config.data.root=/tmp/big/s3dis \
      --config.data.train_split=Area_5 --config.data.val_split=Area_5 --config.mode=eval \
      --config.eval.checkpoint=random --config.eval.linear_probe=False --config.eval.seeds='(1,)'
"""

import argparse
import os

import numpy as np

_SIZE = np.array([12.0, 10.0, 3.0])


def _plane(rng, n, origin, u, v):
  a, b = rng.random((n, 1)), rng.random((n, 1))
  return np.asarray(origin) + a * np.asarray(u) + b * np.asarray(v)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("root", help="the S3DIS-layout root to write Area_5/bigroom_1 into")
  folder = os.path.join(parser.parse_args().root, "Area_5", "bigroom_1", "Annotations")
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(0)
  x, y, z = _SIZE
  parts = [("floor_1", _plane(rng, 600000, (0, 0, 0), (x, 0, 0), (0, y, 0)), (120, 110, 100)),
           ("ceiling_1", _plane(rng, 600000, (0, 0, z), (x, 0, 0), (0, y, 0)), (230, 230, 230))]
  for i, (origin, along) in enumerate([((0, 0, 0), (x, 0, 0)), ((0, y, 0), (x, 0, 0)),
                                       ((0, 0, 0), (0, y, 0)), ((x, 0, 0), (0, y, 0))]):
    parts.append((f"wall_{i + 1}", _plane(rng, 150000, origin, along, (0, 0, z)),
                  (200, 190, 170)))
  for t in range(30):
    corner = (rng.uniform(0.5, x - 2), rng.uniform(0.5, y - 2), 0.75)
    parts.append((f"table_{t + 1}", _plane(rng, 6667, corner, (1.2, 0, 0), (0, 0.8, 0)),
                  (90, 60, 40)))
  for name, points, rgb in parts:
    colours = np.clip(np.asarray(rgb) + rng.normal(0, 8, (len(points), 3)), 0, 255)
    np.savetxt(os.path.join(folder, name + ".txt"), np.c_[points, colours],
               fmt="%.3f %.3f %.3f %d %d %d")
  print(f"{sum(len(p) for _, p, _ in parts)} points in {folder}")


if __name__ == "__main__":
  main()
