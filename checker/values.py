"""Value identity: history values compare as Clojure's ``=`` (Knossos) and Porcupine's ``==``.

Python's ``==`` says ``True == 1 == 1.0`` and hashes them alike, so a checker that compares
history values with it finds ``write true`` then ``read 1`` linearizable, and merges
``{true: x}`` with ``{1: x}``. Knossos (Clojure ``=``) and Porcupine (Go ``==`` on typed
values) tell them apart: a boolean is never a number, and an integer is never a float
(``(= 1 1.0)`` is false in Clojure). Within one category Python's ``==`` is Clojure's:
``0.0`` equals ``-0.0``, ``NaN`` equals nothing.

:func:`freeze` gives every history value a hashable form in which that identity *is*
Python's ``==`` and ``hash``: integers and strings stay themselves (their ``==`` is already
right, and they are almost every value, so the search's hashing stays in C), lists become
tuples, maps :class:`~checker.models.base.FrozenMap`, sets frozensets, and booleans and
non-integer numbers become :class:`Typed` values that equal only a value of their own kind
(``Typed("boolean", True)`` is not ``1``; ``Typed("float", 1.0)`` is not ``1``). Everything
the models compare, and everything the search hashes (states, the identical-op classes,
the read-by-state lookups), is built from frozen values, so one rule governs them all.
:func:`thaw` gives back plain data for explanations and ``results.json``.
"""

from __future__ import annotations

import decimal
import fractions
import json
from collections.abc import Hashable, Mapping
from typing import Any


class Typed:
    """A boolean or non-integer number whose equality includes its kind (Clojure ``=``)."""

    __slots__ = ("kind", "value", "_hash")

    def __init__(self, kind: str, value: Any) -> None:
        self.kind = kind
        self.value = value
        self._hash = hash((kind, value))

    def __eq__(self, other: object) -> bool:
        return type(other) is Typed and other.kind == self.kind and other.value == self.value

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return self._hash

    def __lt__(self, other: object) -> bool:  # a fixed order for canonical map states
        if type(other) is Typed and other.kind == self.kind:
            return bool(self.value < other.value)
        return NotImplemented

    def __repr__(self) -> str:
        if self.kind == "boolean":
            return "true" if self.value else "false"
        return repr(self.value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Typed, (self.kind, self.value))


TRUE = Typed("boolean", True)
FALSE = Typed("boolean", False)

# Clojure's equality categories of the numbers a history may hold (integers stay plain).
_NUMBER_KINDS: tuple[tuple[type, str], ...] = (
    (float, "float"),
    (decimal.Decimal, "decimal"),
    (fractions.Fraction, "ratio"),
    (complex, "complex"),
)


def freeze(value: Any) -> Any:
    """The hashable, Clojure-``=`` form of a history value (see the module docstring)."""
    kind = type(value)
    if kind is str or kind is int or value is None:
        return value
    if kind is bool:
        return TRUE if value else FALSE
    if kind is float:
        return Typed("float", value)
    if kind is list or kind is tuple:
        return tuple([freeze(v) for v in value])
    if kind is Typed:
        return value
    from checker.models.base import FrozenMap  # the map type lives with the models

    if isinstance(value, FrozenMap):
        return value  # built from frozen keys and values
    if isinstance(value, bool):
        return TRUE if value else FALSE
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    for number_type, number_kind in _NUMBER_KINDS:
        if isinstance(value, number_type):
            return Typed(number_kind, value)
    if isinstance(value, tuple | list):
        return tuple([freeze(v) for v in value])
    if isinstance(value, Mapping):
        return FrozenMap((freeze(k), freeze(v)) for k, v in value.items())
    if isinstance(value, set | frozenset):
        return frozenset(freeze(v) for v in value)
    if isinstance(value, Hashable):
        return value  # e.g. an EDN keyword: its own type's equality
    from checker.models.base import ModelError

    raise ModelError(f"expected a value made of numbers, strings, lists and maps, got {value!r}")


def thaw(value: Any) -> Any:
    """JSON-friendly plain data for a frozen value or a state (the inverse of :func:`freeze`)."""
    from checker.models.base import NIL, FrozenMap

    if value is NIL:
        return None
    kind = type(value)
    if kind is Typed:
        return value.value
    if kind is str or kind is int or value is None:
        return value
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    if isinstance(value, FrozenMap | dict):
        if all(type(k) is str or type(k) is int for k in value):
            return {k: thaw(v) for k, v in value.items()}
        return [[thaw(k), thaw(v)] for k, v in value.items()]
    if isinstance(value, frozenset | set):
        items = [thaw(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    return value


def number(value: Any) -> Any:
    """The Python number inside a frozen number (an int, or a :class:`Typed` float...)."""
    return value.value if type(value) is Typed else value


def is_number(value: Any) -> bool:
    """A frozen integer or non-integer number (never a boolean)."""
    if type(value) is Typed:
        return value.kind != "boolean"
    return isinstance(value, int) and not isinstance(value, bool)


def show(value: Any) -> str:
    """A frozen value (or state) as Jepsen users read it: ``nil``, ``true``, ``1``, ``1.0``."""
    return _show(thaw(value))


def _show(plain: Any) -> str:
    if plain is None:
        return "nil"
    if plain is True or plain is False:
        return "true" if plain else "false"
    if isinstance(plain, str):
        return json.dumps(plain, ensure_ascii=False)
    if isinstance(plain, list):
        return "[" + ", ".join(_show(v) for v in plain) + "]"
    if isinstance(plain, dict):
        return "{" + ", ".join(f"{_show(k)}: {_show(v)}" for k, v in plain.items()) + "}"
    return repr(plain)
