"""What every model shares: the model protocol, hashable values and states, the nil state.

A model is a small stateless object (Knossos' ``Model`` protocol, Porcupine's ``Model``
struct): ``init(value)`` gives the initial state, ``step(state, op)`` the state after the
operation or ``None`` when the operation cannot happen in that state. States are hashable
so that the search can memoise (linearized set, state) pairs (Lowe's cache).

The ``op`` given to ``step`` is the *completed view* of one operation, built by the
search from an invoke and its completion: ``type`` is ``"ok"``, ``"info"`` (may or may
not have happened) or ``"fail"`` (only for failures the model observes, see
:meth:`Model.observes_failure`); ``value`` is the completion's value for ``ok`` (falling
back to the invoke's when the completion carries none) and the invoke's otherwise, frozen
by :func:`freeze` (lists become tuples, maps :class:`FrozenMap`, booleans and floats
:class:`checker.values.Typed`: values compare as Clojure's ``=``, so ``true``, ``1`` and
``1.0`` are three values).

A read that returned nil means one of two things, the model's ``nil_read``: ``"absent"``
(the register or key holds nothing: raftnode's ``get`` of an absent key, Porcupine's etcd
and kv models) or ``"unknown"`` (Knossos: the result is unknown and constrains nothing).
Each model has a default (Knossos' models ``"unknown"``, ``etcd`` ``"absent"``); a model
is built with another by ``Model(nil_read=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

from checker.op import Op
from checker.values import freeze as freeze  # re-exported: the models freeze with it
from checker.values import show, thaw

# What a read that returned nil means (``Model.nil_read``).
NIL_ABSENT = "absent"  # the register / key holds nothing: the read constrains the state
NIL_UNKNOWN = "unknown"  # Knossos: the read's result is unknown, it constrains nothing
NIL_READS = (NIL_ABSENT, NIL_UNKNOWN)


class ModelError(ValueError):
    """An operation the model cannot read (unknown ``f``, a value of the wrong shape)."""


class _Nil:
    """The state of a register that holds nothing (``nil``): ``None`` means "inconsistent"."""

    __slots__ = ()
    _instance: ClassVar[_Nil | None] = None

    def __new__(cls) -> _Nil:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "nil"

    def __hash__(self) -> int:
        return 0x6E11

    def __eq__(self, other: object) -> bool:
        return other is self

    def __copy__(self) -> _Nil:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Nil:
        return self


NIL = _Nil()


class FrozenMap(Mapping[Any, Any]):
    """An immutable, hashable map: the state of key-value models, the value of `{...}`."""

    __slots__ = ("_items", "_hash")

    def __init__(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = ()) -> None:
        self._items: dict[Any, Any] = dict(items)
        self._hash: int | None = None

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: Any, default: Any = None) -> Any:
        return self._items.get(key, default)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._items.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other)
        return NotImplemented

    def set(self, key: Any, value: Any) -> FrozenMap:
        """A copy with ``key`` bound to ``value``."""
        items = dict(self._items)
        items[key] = value
        return FrozenMap(items)

    def restrict(self, keys: Iterable[Any]) -> FrozenMap:
        """A copy holding only ``keys`` (those present)."""
        return FrozenMap({k: self._items[k] for k in keys if k in self._items})

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self._items.items()) + "}"


def nil_to_none(state: Any) -> Any:
    return None if state is NIL else state


def none_to_nil(value: Any) -> Any:
    return NIL if value is None else value


class Model:
    """Base of every model: defaults for the optional parts of the protocol.

    Subclasses set ``name`` and ``functions`` and implement ``init`` and ``step``.
    """

    name: ClassVar[str] = "model"
    # The op functions (``f``) the model knows; anything else is an input error.
    functions: ClassVar[frozenset[str]] = frozenset()
    # Key-aware models (kv, multi-register) say which keys each op touches, so that the
    # search can split a history into independent components (P-compositionality).
    key_aware: ClassVar[bool] = False
    # What a nil read means unless the model is built with another (see the module doc).
    default_nil_read: ClassVar[str] = NIL_UNKNOWN

    def __init__(self, nil_read: str | None = None) -> None:
        if nil_read is None:
            nil_read = self.default_nil_read
        if nil_read not in NIL_READS:
            raise ModelError(f"nil_read must be one of {', '.join(NIL_READS)}, got {nil_read!r}")
        self.nil_read = nil_read

    @property
    def nil_absent(self) -> bool:
        """A nil read asserts that the register / key holds nothing."""
        return self.nil_read == NIL_ABSENT

    def init(self, value: Any = None) -> Hashable:
        raise NotImplementedError

    def step(self, state: Any, op: Op) -> Any:
        raise NotImplementedError

    def step_reason(self, state: Any, op: Op) -> str | None:
        """Why ``op`` cannot happen in ``state`` (None when it can): Knossos' ``inconsistent``.

        Only asked when a violation is explained, never by the search. Models say it in
        their own words ("read 1 but the register holds true"); this default names the op
        and the state.
        """
        if self.step(state, op) is not None:
            return None
        return f"{op.f} {show(op.value)} cannot happen in state {show(self.describe(state))}"

    def validate(self, op: Op) -> None:
        """Raise :class:`ModelError` when the model cannot read ``op``."""
        if op.f not in self.functions:
            raise ModelError(
                f"the {self.name} model has no operation {op.f!r}; expected one of "
                f"{', '.join(sorted(self.functions))}"
            )

    def is_noop(self, op: Op) -> bool:
        """True when ``op`` neither constrains nor changes any state (then it can be dropped).

        A read whose value is nil (Knossos), or a read that timed out, can be linearized
        anywhere in its interval without effect, so the search leaves it out.
        """
        return False

    def read_only(self, op: Op) -> bool:
        """True when ``op`` never changes the state: ``step`` gives the same state or None.

        The search linearizes such an op as soon as the current state allows it, without
        trying anything else first (an exchange argument: moving a read-only op earlier,
        to a point inside its interval where it holds, keeps every linearization valid);
        and it never tries a read-only ``info`` op at all (it need not happen).
        """
        return False

    def blind(self, op: Op) -> bool:
        """True when the state after ``op`` does not depend on the state before (a write).

        An info op followed at once by a blind op had no visible effect, so the search
        never tries a blind op right after an info op: leaving the info op out is as good.
        """
        return False

    def accepting_states(self, op: Op) -> tuple[Any, ...] | None:
        """For a read-only op that holds in a few known states only: those states.

        Only asked of ops whose component state holds nothing but what the op reads (a
        whole register; one key of a kv map). The search then finds the reads that hold
        in a state by looking the state up, instead of stepping every pending read.
        None (the default): unknown, the search steps the op.
        """
        return None

    def read_horizon(self, reads: list[Op]) -> Callable[[Any], Any] | None:
        """A map that forgets what of a state none of ``reads`` can ever see (or None).

        Given the read-only ops of a whole-state component (a register, one kv key), the
        model may return ``settle(state)``: a state that every sequence of steps takes to
        the same verdicts on those reads as ``state`` (and to states settling alike).
        Many states then become one, and the search's cache (keyed by state) merges the
        configurations that differ only in them: orders of appends no read will ever
        see, for instance. None (the default): nothing is forgotten.
        """
        return None

    def unseeable(self, state: Any) -> bool:
        """True when no read-only op that is not a no-op (:meth:`is_noop`) can hold in
        ``state`` or in any state reached from it (a state ``read_horizon``'s settle made:
        a list no read starts with, say).

        The search then gives up a configuration in such a state while a read that must
        happen is still to come: it could never be linearized. False (the default): not
        known.
        """
        return False

    def observes_failure(self, op: Op) -> bool:
        """True when a ``fail`` op still tells something about the state.

        Knossos drops every failed operation; the etcd model keeps a cas that failed
        because the value differed (it asserts that inequality).
        """
        return False

    def keys(self, op: Op) -> tuple[Any, ...]:
        """The keys ``op`` reads or writes (only for key-aware models)."""
        return ()

    def restrict(self, state: Any, keys: Iterable[Any]) -> Any:
        """The part of ``state`` that concerns ``keys`` (key-aware models)."""
        return state

    def describe(self, state: Any) -> Any:
        """JSON-friendly data for ``state`` (explanations, results.json)."""
        return thaw(state)

    def __repr__(self) -> str:
        return f"<model {self.name} nil={self.nil_read}>"


def is_pair(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2  # noqa: UP038 - faster


# Maps as states: a tuple of (key, value) pairs sorted by key. Tuples hash in C, which
# matters in the search's inner loop (a Python-level __hash__ costs more than a step).
Items = tuple[tuple[Any, Any], ...]


def _key_before(a: Any, b: Any) -> bool:
    try:
        return bool(a < b)
    except TypeError:  # keys of different types: any fixed order keeps states canonical
        return (type(a).__name__, repr(a)) < (type(b).__name__, repr(b))


def items_from(mapping: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> Items:
    out: Items = ()
    pairs = mapping.items() if isinstance(mapping, Mapping) else mapping
    for key, value in pairs:
        out = items_set(out, key, value)
    return out


def items_get(items: Items, key: Any, default: Any = None) -> Any:
    for item_key, value in items:
        if item_key == key:
            return value
    return default


def items_set(items: Items, key: Any, value: Any) -> Items:
    """``items`` with ``key`` bound to ``value`` (or removed when ``value`` is None)."""
    for position, (item_key, _) in enumerate(items):
        if item_key == key:
            if value is None:
                return items[:position] + items[position + 1 :]
            return (*items[:position], (key, value), *items[position + 1 :])
        if _key_before(key, item_key):
            if value is None:
                return items
            return (*items[:position], (key, value), *items[position:])
    return items if value is None else (*items, (key, value))


def items_restrict(items: Items, keys: Iterable[Any]) -> Items:
    wanted = set(keys)
    return tuple(item for item in items if item[0] in wanted)
