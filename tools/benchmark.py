"""Runs a benchmark suite and writes `benchmarks/<suite>.json`.

  python tools/benchmark.py --suite kmeans            # one suite
  python tools/benchmark.py --suite all --quick       # every suite, small sizes

Each suite is a module `tools/bench_suites/<suite>.py` with `run(quick: bool) -> dict`.
Ratios inside a suite are measured side by side in the same process run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys

_TOOLS = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_TOOLS)


def _suites() -> list[str]:
  names = [f[:-3] for f in os.listdir(os.path.join(_TOOLS, "bench_suites"))
           if f.endswith(".py") and not f.startswith("_")]
  return sorted(names)


def _machine() -> dict:
  import jax
  return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "platform": platform.platform(), "python": platform.python_version(),
          "cpu_count": os.cpu_count(), "jax": jax.__version__,
          "devices": [str(d) for d in jax.devices()]}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--suite", required=True, help=f"one of {_suites()} or 'all'")
  parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
  parser.add_argument("--out", default=os.path.join(_ROOT, "benchmarks"))
  args = parser.parse_args()
  suites = _suites() if args.suite == "all" else [args.suite]
  unknown = set(suites) - set(_suites())
  if unknown:
    parser.error(f"unknown suite(s) {sorted(unknown)}; choose from {_suites()}")
  os.makedirs(args.out, exist_ok=True)
  for name in suites:
    module = importlib.import_module(f"bench_suites.{name}")
    print(f"== {name}", flush=True)
    result = {"suite": name, "quick": args.quick, "machine": _machine(),
              "command": " ".join(["python"] + sys.argv),
              "results": module.run(quick=args.quick)}
    path = os.path.join(args.out, f"{name}{'_quick' if args.quick else ''}.json")
    with open(path, "w") as f:
      json.dump(result, f, indent=2)
    print(json.dumps(result["results"], indent=2))
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
  main()
