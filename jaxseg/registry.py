"""Name -> factory registries (models, teachers, datasets), in the scenic/big_vision style.

Usage:
  ENCODERS = Registry("encoder")
  @ENCODERS.register("res16fpn18")
  class Res16FPN18(nn.Module): ...
  cls = ENCODERS.get(config.model.name)
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
  """A mapping from names to objects with a clear error on unknown names."""

  def __init__(self, kind: str):
    self.kind = kind
    self._items: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    def decorator(obj: T) -> T:
      if name in self._items:
        raise KeyError(f"{self.kind} {name!r} is registered twice")
      self._items[name] = obj
      return obj
    return decorator

  def get(self, name: str) -> T:
    if name not in self._items:
      raise KeyError(
          f"unknown {self.kind} {name!r}; known {self.kind}s: {sorted(self._items)}")
    return self._items[name]

  def names(self) -> list[str]:
    return sorted(self._items)
