"""Transactions out of a history: Jepsen's ``f: "txn"`` ops, paired and checked for shape.

An op's ``value`` is a list of micro-ops ``[f, k, v]``: ``["append", k, v]`` and
``["r", k, null]`` for list-append (the completion fills reads: ``["r", k, [1, 2]]``),
``["w", k, v]`` and ``["r", k, v]`` for rw-register. Each invoke is paired with its
completion on the same process (:func:`checker.history.pair_operations`):

- ``ok``: the completion's micro-ops (reads filled in) are what the txn did;
- ``fail``: it certainly did not happen; its writes are kept to recognise aborted reads;
- ``info`` (or no completion): it may have happened; the invoke's micro-ops are used and
  its reads tell nothing.

A txn is named ``T<index>`` after the op index of its completion (of its invoke when it
never completed), as Elle names transactions by their completion ops.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from checker.history import HistoryError, Op, pair_operations

Mop = tuple[str, Any, Any]


class TxnHistoryError(HistoryError):
    """A history a transactional checker cannot read (wrong op shape, unknown micro-op)."""


@dataclass(slots=True)
class Txn:
    id: int  # 0, 1, 2 ... in invoke order: the vertex of the dependency graph
    index: int  # op index of the completion (of the invoke when there is none)
    process: int | str
    type: str  # ok, fail or info
    mops: list[Mop]
    invoke_pos: int  # positions in the history's event order, for real-time precedence
    complete_pos: int | None  # None when the txn never completed
    invoke_index: int

    @property
    def name(self) -> str:
        return f"T{self.index}"


def hashable(value: Any) -> Any:
    """Keys (and values compared by identity) as hashable data: lists become tuples."""
    if isinstance(value, list):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((hashable(k), hashable(v)) for k, v in value.items()))
    return value


_PLAIN = (str, int, float, bool, type(None))


def _mops(value: Any, allowed: frozenset[str], op: Op) -> list[Mop]:
    if type(value) is not list and not isinstance(value, tuple):
        raise TxnHistoryError(
            f"op index {op.index}: expected a txn value (a list of micro-ops), got {value!r:.60}"
        )
    out: list[Mop] = []
    append = out.append
    for mop in value:
        if (type(mop) is not list and not isinstance(mop, tuple)) or len(mop) != 3:
            raise TxnHistoryError(
                f"op index {op.index}: expected a micro-op [f, key, value], got {mop!r:.60}"
            )
        f, key, v = mop
        if f not in allowed:
            raise TxnHistoryError(
                f"op index {op.index}: expected micro-ops {', '.join(sorted(allowed))}, "
                f"got {f!r}"
            )
        if type(key) not in _PLAIN:
            key = hashable(key)
        if f != "r" and type(v) not in _PLAIN:
            v = hashable(v)
        append((f, key, v))
    return out


def txns_from_ops(ops: Sequence[Op] | Iterable[Op], allowed: frozenset[str]) -> list[Txn]:
    """The client txns of a history, in invoke order (nemesis ops are left out).

    Raises :class:`TxnHistoryError` for ops whose ``f`` is not ``txn`` or whose micro-ops
    are not of the ``allowed`` kinds, and for a completion whose micro-ops do not match
    its invoke's (a different key or write than was asked).
    """
    paired = pair_operations(ops)
    txns: list[Txn] = []
    for pair in paired.operations:
        invoke = pair.invoke
        if invoke.f != "txn":
            raise TxnHistoryError(
                f"op index {invoke.index}: expected f 'txn' in a transactional history, "
                f"got {invoke.f!r}"
            )
        invoked = _mops(invoke.value, allowed, invoke)
        completion = pair.completion
        mops = invoked
        if pair.type == "ok" and completion is not None and completion.value is not None:
            mops = _mops(completion.value, allowed, completion)
            if mops != invoked and (
                len(mops) != len(invoked)
                or any(
                    a[0] != b[0] or a[1] != b[1] or (a[0] != "r" and a[2] != b[2])
                    for a, b in zip(mops, invoked, strict=True)
                )
            ):
                raise TxnHistoryError(
                    f"op index {completion.index}: the completion's micro-ops do not match "
                    f"those invoked at op index {invoke.index}"
                )
        if pair.type != "ok":  # reads of a txn that did not surely happen tell nothing
            mops = [(f, k, None) if f == "r" else (f, k, v) for f, k, v in mops]
        txns.append(
            Txn(
                id=len(txns),
                index=completion.index if completion is not None else invoke.index,
                process=invoke.process,
                type=pair.type,
                mops=mops,
                invoke_pos=pair.invoke_position,
                complete_pos=pair.complete_position,
                invoke_index=invoke.index,
            )
        )
    return txns
