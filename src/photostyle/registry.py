"""Registries: each piece of knowledge (FA variants, eval methods, upsamplers) named once.

A :class:`Registry` maps names to specs (frozen dataclasses describing a variant and what it can
do). Callers ask it for a spec (:meth:`Registry.get`, one clear error naming the choices) or for
the names of those with a capability (:meth:`Registry.names`, a live view that follows later
registrations), instead of keeping their own lists of names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar, overload

T = TypeVar("T")


class Registry(Generic[T]):
    """Specs by name, in registration order.

    Args:
        what: what a name names, for messages (``"FA variant"``: "unknown FA variant 'x'").
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._specs: dict[str, T] = {}

    def register(self, name: str, spec: T) -> T:
        """Add ``spec`` under ``name``.

        Raises:
            ValueError: ``name`` is registered already.
        """
        if name in self._specs:
            raise ValueError(f"{self.what} {name!r} is registered already")
        self._specs[name] = spec
        return spec

    def get(self, name: str) -> T:
        """The spec of ``name``.

        Raises:
            ValueError: no such name (the message names the choices).
        """
        spec = self._specs.get(name)
        if spec is None:
            raise ValueError(f"unknown {self.what} {name!r}; choose from {self.names()}")
        return spec

    def specs(self) -> tuple[T, ...]:
        """Every spec, in registration order."""
        return tuple(self._specs.values())

    def names(self, where: Callable[[T], bool] | None = None) -> Names:
        """The names (of the specs ``where`` accepts; None: all), read at each use."""
        return Names(self, where)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def _names(self, where: Callable[[T], bool] | None) -> tuple[str, ...]:
        return tuple(n for n, spec in self._specs.items() if where is None or where(spec))


class Names(Sequence[str]):
    """Names in a registry, as a tuple that follows later registrations (for CLI choices).

    ``repr`` is the tuple's, so messages read ``choose from ('a', 'b')``.
    """

    def __init__(self, registry: Registry[T], where: Callable[[T], bool] | None = None) -> None:
        self._read: Callable[[], tuple[str, ...]] = lambda: registry._names(where)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._read()[index]

    def __len__(self) -> int:
        return len(self._read())

    def __contains__(self, name: object) -> bool:
        return name in self._read()

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __repr__(self) -> str:
        return repr(self._read())
