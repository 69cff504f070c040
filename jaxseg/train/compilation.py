"""Compilation hygiene: the persistent XLA cache and a count of the compilations of a run.

  enable_persistent_cache()        # $JAXSEG_CACHE/xla (default ~/.cache/jaxseg/xla)
  counter = CompilationCounter()   # counts every XLA compilation from now on
  ...
  counter.summary()                # {'programs', 'compiled', 'loaded_from_cache',
                                   #  'compile_seconds'}

With the persistent cache, `--resume` and repeated runs load the programs an earlier run
compiled (same shapes, same code, same jax version) instead of compiling them again.
"""

from __future__ import annotations

import os
import threading

import jax

from jaxseg.synthetic.cache import default_cache_root

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


def enable_persistent_cache(directory: str | None = None) -> str:
  """Turns on jax's persistent compilation cache in `directory` (default
  $JAXSEG_CACHE/xla); every program that takes over $JAXSEG_XLA_CACHE_MIN_SECONDS (default
  0.5) seconds to compile is kept. Returns the directory."""
  directory = os.path.abspath(directory or os.path.join(default_cache_root(), "xla"))
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs",
                    float(os.environ.get("JAXSEG_XLA_CACHE_MIN_SECONDS", "0.5")))
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return directory


class CompilationCounter:
  """Counts the XLA programs built from now on: compiled, or loaded from the persistent cache
  (jax reports a backend compile for both)."""

  def __init__(self):
    self._lock = threading.Lock()
    self.programs, self.compile_seconds, self.cache_hits = 0, 0.0, 0
    jax.monitoring.register_event_duration_secs_listener(self._on_duration)
    jax.monitoring.register_event_listener(self._on_event)

  def _on_duration(self, event: str, seconds: float, **_) -> None:
    if event == _COMPILE_EVENT:
      with self._lock:
        self.programs += 1
        self.compile_seconds += seconds

  def _on_event(self, event: str, **_) -> None:
    if event == _CACHE_HIT_EVENT:
      with self._lock:
        self.cache_hits += 1

  def summary(self) -> dict[str, float]:
    with self._lock:
      return {"programs": self.programs, "compiled": self.programs - self.cache_hits,
              "loaded_from_cache": self.cache_hits,
              "compile_seconds": round(self.compile_seconds, 1)}
