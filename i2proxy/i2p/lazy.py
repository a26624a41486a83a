"""A lock-free ``cached_property`` for immutable value objects.

``functools.cached_property`` takes a lock on every first access in Python 3.11, which made it
a measurable share of parsing a destination.  Our objects are immutable, so computing a value
twice in a race is harmless: store it in the instance ``__dict__`` and let later lookups find it
there without calling the descriptor again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class lazy(Generic[T]):
    """Compute once per instance, then serve from ``__dict__`` (works on frozen dataclasses)."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> T:
        if instance is None:
            return self  # type: ignore[return-value]
        value = self.func(instance)
        instance.__dict__[self.name] = value
        return value
