"""The plain search: Wing & Gong's backtracking with Lowe's memoisation and nothing else.

An oracle for :func:`checker.linearizable.check`, kept deliberately simple: no pruning, no
decomposition into key components, no ordering heuristics, no budgets. A configuration is
the set of operations linearized so far and the model state; an operation may come next
when it is not linearized and no operation that must happen (ok, or a failure the model
observes) and is not yet linearized returned before it was invoked. The history is
linearizable when some path places every operation that must happen (info operations
may be placed or not). Memoisation is exact: whether a configuration can be completed
depends only on that set and that state.

Exponential: use it on small histories (the differential tests do).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from checker.history import HistoryError, pair_operations
from checker.linearizable import _as_ops, _inner_value, _looks_independent, _resolve_model, _view
from checker.models import Model
from checker.models.base import freeze, is_pair

__all__ = ["check_plain"]


def check_plain(
    history: Iterable[Any],
    model: str | type[Model] | Model,
    *,
    init: Any = None,
    nil_read: str | None = None,
    independent: bool | None = None,
) -> dict[str, Any]:
    """``{"valid": True | False, "model", "nil_read", "configs"}`` for ``history``.

    Jepsen ``[key, value]`` histories (detected as :func:`checker.linearizable.check`
    does, or forced by ``independent``) are checked per key, the model seeing the inner
    values; everything else is checked whole, key-aware models included.
    """
    the_model = _resolve_model(model, nil_read)
    pairs = pair_operations(_as_ops(history)).operations
    if independent is None:
        independent = not the_model.key_aware and _looks_independent(pairs)
    groups: dict[Any, list[tuple[Any, int, int | None, bool]]] = {}
    for pair in pairs:
        if independent:
            if not is_pair(pair.invoke.value):
                raise HistoryError(f"op index {pair.invoke.index}: expected a [key, value] tuple")
            key = freeze(pair.invoke.value[0])
            view = _view(pair, _inner_value(pair))
        else:
            key = None
            view = _view(pair, pair.value)
        the_model.validate(view)
        if pair.type == "fail" and not the_model.observes_failure(view):
            continue  # a failure the model does not observe never happened
        must = pair.type in ("ok", "fail")
        ret = pair.complete_position if must else None
        groups.setdefault(key, []).append((view, pair.invoke_position, ret, must))
    configs = 0
    valid = True
    initial = the_model.init(freeze(init))
    for members in groups.values():
        linearizable, visited = _search(the_model, members, initial)
        configs += visited
        if not linearizable:
            valid = False
            break
    return {
        "valid": valid,
        "model": the_model.name,
        "nil_read": the_model.nil_read,
        "configs": configs,
    }


def _search(
    model: Model, members: list[tuple[Any, int, int | None, bool]], initial: Any
) -> tuple[bool, int]:
    n = len(members)
    must_all = 0
    for i, (_, _, _, must) in enumerate(members):
        if must:
            must_all |= 1 << i
    failed: set[tuple[int, Any]] = set()

    def callable_now(j: int, done: int) -> bool:
        call_j = members[j][1]
        for i in range(n):
            if done >> i & 1 or i == j:
                continue
            ret_i = members[i][2]
            if ret_i is not None and ret_i < call_j:
                return False  # i must come first: it returned before j was invoked
        return True

    def extend(done: int, state: Any) -> bool:
        if done & must_all == must_all:
            return True
        if (done, state) in failed:
            return False
        for j in range(n):
            if done >> j & 1 or not callable_now(j, done):
                continue
            after = model.step(state, members[j][0])
            if after is not None and extend(done | 1 << j, after):
                return True
        failed.add((done, state))
        return False

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * n + 100))
    try:
        return extend(0, initial), len(failed)
    finally:
        sys.setrecursionlimit(limit)
