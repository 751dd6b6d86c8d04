"""Is a history linearizable? Wing & Gong's search with Lowe's memoisation, per component.

``check(history, model, *, init=None, time_limit=None)`` decides whether the client
operations of ``history`` (a list of :class:`~checker.op.Op` or op maps, invokes and
completions as recorded) can be put in one sequential order that respects real time
(an operation that completed before another was invoked comes first) and that the model
accepts, step by step (Herlihy & Wing's linearizability).

Semantics (Knossos'): invokes and completions are paired per process
(:func:`checker.history.pair_operations`; two outstanding operations on one process is an
input error, raised as :class:`~checker.history.HistoryError`). An ``ok`` operation took
effect exactly once between its invoke and its completion. A ``fail`` operation never
happened and is dropped — unless the model observes that failure (the ``etcd`` model: a
cas that failed because the value differed). An ``info`` operation, or an invoke never
completed, may take effect at any time after its invoke, or never. Nemesis operations are
ignored. An ok op's value is its completion's value (the invoke's when the completion has
none); an info op's is its invoke's.

Search (as Porcupine's ``checkSingle``): the call and return events of the operations in
time order form a doubly linked list; the search linearizes one callable operation at a
time (lifting its call and return out of the list) and backtracks (unlifting them) when
the first remaining return cannot be passed. A cache of (linearized set as a bitset
integer, model state) pairs already visited (Lowe's memoisation) makes every
configuration visited once. Pruning on top of that, each justified by an exchange
argument:

- P-compositionality: independent keys are separate histories, checked apart — Jepsen
  ``[key, value]`` tuples, and for key-aware models (kv, multi-register) the connected
  components (networkx) of the graph whose nodes are keys and whose edges join the keys
  one operation touches.
- Operations that can neither constrain nor change any state (a read of nil, a read that
  timed out, any read-only op that may not have happened) are left out.
- A read-only operation (``model.read_only``) that holds in the current state is
  linearized at once, and nothing else is tried there: it could be moved to this point in
  any linearization. Reads that hold are found by looking the state up among the states
  the model says they accept (``model.accepting_states``), not by stepping each one.
- Other candidates are tried in the order they must be linearized: by return time (the op
  whose return comes first first), info ops — which need never happen — last. An info op
  that would leave the state as it is is not tried.
- Of identical operations (same function, value and outcome) callable together only the
  one returning first is tried: any linearization that starts with another can swap them.
- A configuration fails if a failed one had the same ops that must happen linearized, the
  same state, and a subset of its info ops: having spent more optional ops cannot help.
- What of a state no read can ever see is forgotten (``model.read_horizon``, for a
  component whose reads see the whole state): a kv value that no get of its key starts
  with stays so whatever is appended, so all such values are one state, and the orders of
  appends a put erases before any get sees them make one configuration, not one per order.
  Nothing is cut short: the search fails where it would have, at the read.
- Register reads that no linearization can place are refuted before any search
  (register and cas-register models: a value never written, read before its every write
  was invoked, or overwritten by a write that completed before the read was invoked while
  its only write completed before that one began — the write-read edges unique values
  give, after Gibbons & Korach); the failure names the rule and the witnesses.
- A write (register models) of a value that no op ever reads or expects in a cas
  leaves the register where nothing but another write can follow: it is placed only
  when its return must be passed, or just before another write, together with every
  such write callable there; info ops that could only leave such a value are never
  tried (``_unseen_writes``). The 2^k orders of k writes in flight that no read sees
  become one.
- Components are searched in turns (slices of steps doubling each round), so that a cheap
  invalid component ends the check before an expensive one is finished (the others are
  then reported under ``skipped_keys``; ``all_components=True`` decides every one).

No step costs Python-level work in proportion to the history: the reads found by state
are kept incrementally (a read enters when the frontier passes its call, leaves when it is
linearized, both undone on backtracking), the partial linearization is a cons list, and
the cache keys hold the linearized set as a window from the first op that must happen and
is not linearized (``(low, lin >> low)``, one-to-one with the set), so memory per cached
configuration follows the ops still open, not the history. With no info op the search
keeps the linearized set as that window itself (its integer operations as wide as the
ops still open); with info ops as a whole (n/64 machine words per operation, in C). A
forced read's configuration (the read is the only move tried there) is not cached.

Every pruning has a switch (:data:`PRUNINGS`, ``check(..., prunings=...)``) and its
soundness argument in a comment where it is applied; ``checker.plain`` is a search with
none of them, and the differential tests compare each against a brute force.

Values compare as Clojure's ``=`` (:mod:`checker.values`): ``true``, ``1`` and ``1.0`` are
three values, in the models, in the identical-op classes and in the read-by-state lookups.

Budgets: ``time_limit`` (seconds, wall clock, for the whole check: pairing, splitting and
every component's search, looked at every 1024 steps and between components; a check that
runs out is ``"unknown"``) and ``max_configs``
(cache entries, per component and over all live components: the memory budget; 130 to
260 bytes each) end in ``"unknown"``, never a guess.

The result dict (JSON-ready once passed through ``checker.history.to_jsonable``):

``valid``
    ``True``, ``False`` or ``"unknown"`` — the worst over all components.
``model``
    the model's name.
``nil_read``
    what a read of nil meant: ``"absent"`` (the register/key holds nothing) or
    ``"unknown"`` (Knossos: constrains nothing).
``prunings``
    only when some prunings were switched off: the ones used.
``op_count``
    client operations searched (after pairing, dropping failures and no-op reads).
``dropped``
    ``{"fail": n, "noop": n}``: operations left out, and why.
``independent``
    True when the history was split by Jepsen ``[key, value]`` tuples.
``component_count``
    how many independent histories were searched (keys or key components; 1 if none).
``configs``
    configurations visited (cache entries), summed over components.
``seconds``
    wall-clock seconds spent.
``error``
    only when ``valid`` is ``"unknown"``: why (``"time limit of S s reached"``,
    ``"memory limit of N configurations reached"``).
``unknown_keys``
    only when some components were not decided for want of time or memory: their keys.
``skipped_keys``
    only when a component was found invalid before others were decided (their search
    stopped there: the verdict was known): their keys.
``failures``
    only when ``valid`` is False: one explanation per invalid component, sorted by key:

    ``key``
        the component's key (the Jepsen key, the kv key, a sorted list of the keys of a
        multi-key component), or None for a history checked whole.
    ``op``
        the operation that cannot be linearized: the one whose completion no search
        could get past (an *op record*, below).
    ``previous_ok``
        the last ok operation (acknowledged, ``type`` "ok") of the longest partial
        linearization found (op record), or None when it has none. Info ops it linearized
        after that one are in ``linearized``.
    ``linearized``
        that longest partial linearization: op indices (the invoke's ``index``) in
        linearization order. Every history event before ``op``'s completion is covered by it.
    ``partial_linearizations``
        up to 8 partial linearizations that reach ``op``'s completion, one per distinct
        model state: ``[{"ops": [index, ...], "state": state, "steps": [{"op": op
        record, "state": state after it}, ...]}]`` (``steps``: the last 20 ops only).
    ``states``
        every state the model could be in at that point (up to 64, JSON-friendly).
    ``reasons``
        aligned with ``states``: why ``op`` cannot happen in that state, in the model's
        words (``Model.step_reason``), or None where its step holds (the search then
        failed further on, at an op that must follow).
    ``reason``
        the first of ``reasons`` that is not None, when there is one: "read 1 but the
        register holds true".
    ``concurrent``
        op records of the operations whose interval overlaps ``op``'s (``op`` excluded),
        in invoke order: the window where the search failed.
    ``window``
        ``[first, last]`` history indices spanning ``op`` and the concurrent operations.

An *op record* is ``{"index", "completion_index", "process", "type", "f", "value",
"error", "invoke_time", "complete_time"}``: ``index`` is the invoke's history index,
``completion_index`` the completion's (None when it never completed), ``type`` the
outcome (ok, info, fail) and ``value`` what the model saw (the value inside the key tuple
for independent histories).
"""

from __future__ import annotations

import copy
import functools
import gc
import time
from bisect import bisect_right, insort
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from types import MappingProxyType
from typing import Any, TypeVar

from checker.history import HistoryError, OperationPair, op_from_mapping, pair_operations
from checker.models import MODELS, Model, ModelError
from checker.models.base import NIL, NIL_READS, freeze, is_pair, none_to_nil, show, thaw
from checker.op import Op
from checker.results import UNKNOWN, worst

__all__ = ["DEFAULT_MAX_CONFIGS", "PRUNINGS", "check"]

# The search's prunings, each with its switch (``check(..., prunings=...)``) and its
# soundness argument in a comment where it is applied. All are on by default; the
# differential tests (tests/checker/test_differential.py) run each alone and all together
# against a brute force, and checker/plain.py is the search with none of them.
PRUNINGS: tuple[str, ...] = (
    "components",  # P-compositionality: key components of key-aware models apart
    "noops",  # ops that constrain and change nothing are left out
    "forced-reads",  # a read that must happen and holds is linearized at once
    "identical-ops",  # of identical concurrent ops only the first-returning is tried
    "info-then-blind",  # no blind op right after an info op
    "info-unchanged",  # no info op that leaves the state as it is
    "info-dominance",  # a failed situation with fewer info ops used dominates
    "read-horizon",  # what no read can see is forgotten (kv UNSEEN, unseen lists)
    "unseeable",  # a state no read can ever see is a dead end while a read is due
    "impossible-reads",  # register reads refuted before any search (never/not yet/overwritten)
    "unseen-writes",  # register writes of values no op observes: placed only where they must be
)

# About 130 bytes per cached configuration (twice that with info ops, whose failed
# configurations are also kept by situation): 5 million stays around a gigabyte at most.
DEFAULT_MAX_CONFIGS = 5_000_000
# Search steps between two looks at the clock.
_CLOCK_EVERY = 1024
_MAX_PARTIALS = 8
_MAX_STEPS = 20  # steps (op and state after it) given at the end of each partial linearization
# Steps a component search runs before letting the next one run (doubling each round).
_FIRST_SLICE = 1024
_MAX_SLICE = 1 << 20
_SKIPPED = "not searched to the end: another component is not linearizable"
_MAX_STATES = 64


@dataclass(slots=True)
class _Operation:
    """One operation as the search sees it."""

    view: Op  # the completed view given to model.step (index, time: see _op_index)
    pair: OperationPair
    key: Any  # the component key (None when checked whole)
    call: int  # event position of the invoke
    ret: int | None  # event position of the completion; None: info (any time after, or never)
    must: bool  # ok (or an observed failure): must be linearized


@dataclass(slots=True)
class _Outcome:
    valid: bool | str
    configs: int
    error: str | None = None
    failing: int | None = None  # op id (in the component) whose return could not be passed
    partials: list[tuple[Any, list[int]]] = field(default_factory=list)
    states: list[Any] = field(default_factory=list)
    paths: list[list[int]] = field(default_factory=list)  # aligned with states: ops to reach it
    explanation: dict[str, Any] | None = None  # a refutation's own (impossible reads)


# ----------------------------------------------------------------------------- inputs


def _resolve_model(model: str | type[Model] | Model, nil_read: str | None = None) -> Model:
    if isinstance(model, str):
        if model not in MODELS:
            raise ModelError(
                f"unknown model {model!r}; expected one of {', '.join(sorted(MODELS))}"
            )
        return MODELS[model](nil_read=nil_read)
    if isinstance(model, type):
        return model(nil_read=nil_read)
    if nil_read is not None and getattr(model, "nil_read", None) != nil_read:
        if nil_read not in NIL_READS:
            raise ModelError(f"nil_read must be one of {', '.join(NIL_READS)}, got {nil_read!r}")
        model = copy.copy(model)  # the caller's model keeps its own meaning
        model.nil_read = nil_read
    return model


def _as_ops(history: Iterable[Op | Mapping[str, Any]]) -> list[Op]:
    ops: list[Op] = []
    for position, item in enumerate(history):
        if isinstance(item, Op):
            ops.append(item)
        else:
            ops.append(op_from_mapping(item, position=position))
    return ops


def _view(pair: OperationPair, value: Any) -> Op:
    invoke = pair.invoke
    completion = pair.completion
    # Positional (index, time, type, process, f, value, error, node): a third cheaper
    # than by keyword, for every op of the history.
    return Op(
        invoke.index,
        invoke.time,
        pair.type,
        invoke.process,
        invoke.f,
        freeze(value),
        None if completion is None else completion.error,
        invoke.node,
    )


def _looks_independent(pairs: Sequence[OperationPair]) -> bool:
    """Jepsen independent tuples: every invoke's value is a [key, value] pair.

    A history of cas ops alone whose values are pairs of plain values is a plain
    cas-register history ([expected, new]), not a keyed one.
    """
    if not pairs:
        return False
    all_scalar_cas = True
    for pair in pairs:
        value = pair.invoke.value
        if not is_pair(value):
            return False
        if pair.invoke.f != "cas" or isinstance(value[1], list | tuple):
            all_scalar_cas = False
    return not all_scalar_cas


def _inner_value(pair: OperationPair) -> Any:
    """The value inside an independent [key, value] tuple (completion's for ok, else invoke's)."""
    invoke_inner = pair.invoke.value[1]
    if pair.type == "ok" and pair.completion is not None:
        completed = pair.completion.value
        if is_pair(completed) and completed[1] is not None:
            return completed[1]
    return invoke_inner


# ----------------------------------------------------------------------------- search


def _search(
    model: Model,
    operations: list[_Operation],
    whole_state_reads: bool,
    initial_state: Any,
    deadline: float | None,
    max_configs: int,
    time_limit: float | None,
    prunings: frozenset[str] = frozenset(PRUNINGS),
) -> Generator[int, int, _Outcome]:
    """Search one component; a generator that pauses every so many steps.

    The scheduler in :func:`check` sends how many steps to run before the next pause and
    receives the cache size; the outcome is the generator's return value. Pausing lets
    several components advance in turns, so that a cheap invalid one is found before an
    expensive one is finished.
    """
    n = len(operations)
    pause_at = yield 0
    if not any(op.must for op in operations):
        return _Outcome(True, 0)
    step = model.step
    views = [op.view for op in operations]
    must = [op.must for op in operations]
    is_info = [not flag for flag in must]
    read_only = [model.read_only(view) for view in views]
    blind = [model.blind(view) for view in views]
    # Pruning "info-then-blind": a blind op (a write: the state after it does not depend
    # on the state before) is not tried right after an info op. Soundness: linearizing an
    # info op k passes no return (it has none), so every op callable after k was callable
    # before it; a blind op i takes both s and step(s, k) to the same state t, so the
    # configuration (L+k+i, t) is reached as (L+i, t) plus k still pending, and k may still
    # happen later or never: everything that follows the first follows the second, which
    # the search tries when it tries i before k (where i is callable, as shown).
    any_info = any(is_info)
    info_erased_any = "info-then-blind" in prunings and any_info and any(blind)
    info_erased = is_info if info_erased_any else [False] * n  # read only: is_info is shared
    forcing = "forced-reads" in prunings
    # No per-op bit masks: they would be as wide as the history each (n^2/8 bytes in
    # all). Membership is tested in ``placed`` (a byte per op, set on lift, cleared on
    # unlift); ``lin``, the linearized set as an integer, is built for the cache keys.
    placed = bytearray(n)

    # Porcupine's entry list: call and return events in history order, doubly linked,
    # with a head and a tail sentinel. Lifting an op unlinks its call and its return;
    # unlifting relinks them (in reverse order, as dancing links do).
    # Each event as one integer, position * width + 2 * op + (1 for a call), so that
    # sorting compares machine integers (positions are distinct: one event each).
    width = 2 * n
    codes = [op.call * width + 2 * i + 1 for i, op in enumerate(operations)]
    codes += [op.ret * width + 2 * i for i, op in enumerate(operations) if op.ret is not None]
    codes.sort()
    m = len(codes)
    head, tail = m, m + 1
    nxt = [*range(1, m), tail, 0, tail]
    prv = [head, *range(0, m - 1), head, m - 1]
    is_call = [code & 1 for code in codes]  # 1 for a call, 0 for a return
    op_of = [(code % width) >> 1 for code in codes]
    return_entry = [-1] * n
    for entry, i in enumerate(op_of):
        if not is_call[entry]:
            return_entry[i] = entry
    # Ops are numbered in invoke order, so the k-th call event is op k's.
    call_entry = [entry for entry, call in enumerate(is_call) if call]
    if any(op_of[entry] != i for i, entry in enumerate(call_entry)):
        for entry, i in enumerate(op_of):  # (not in invoke order: place each)
            if is_call[entry]:
                call_entry[i] = entry
    # Candidates are tried by return time: the op whose return comes first must be
    # linearized before the search can pass it, so it is tried first; info ops (no
    # return) need never happen, so they come after every op that must.
    order_key = [return_entry[i] if must[i] else m + call_entry[i] for i in range(n)]
    # Pruning "identical-ops": see _symmetry_masks for its soundness.
    if "identical-ops" in prunings:
        # Only ops that can be tried as candidates get masks: with "forced-reads" a read
        # that must happen is only ever linearized as a forced read, a move that never
        # looks at skip_of (and such a read covers no candidate: covering is within a
        # class, the same f, value and outcome, hence read-only and must alike; leaving
        # one out of its class could only drop a cover, trying more, never fewer).
        if forcing:
            tried = [i for i in range(n) if not (read_only[i] and must[i])]
        else:
            tried = list(range(n))
        skip_of = _symmetry_masks(views, tried, call_entry, return_entry, m)
    else:
        skip_of = [()] * n
    if info_erased_any:
        guarded = [bool(skip_of[i]) or blind[i] for i in range(n)]
    else:
        guarded = [bool(covering) for covering in skip_of]
    # Pruning "unseen-writes" (see _unseen_writes for its soundness): ``unseen`` marks the
    # writes that must happen and leave a value no op observes, tried on their own only
    # when their return is the frontier and otherwise placed just before another write
    # (``absorbing``: the writes that take them along); ``never`` marks the info ops that
    # can only leave such a value, never tried.
    unseen = never = None
    if "unseen-writes" in prunings and model.name in _REGISTER_MODELS and whole_state_reads:
        unseen, never = _unseen_writes(views, must)
    absorbing = [False] * n
    if unseen is not None:
        if not any(unseen):
            unseen = None
        else:
            absorbing = blind
    if unseen is None:
        unseen = [False] * n
    if never is None or not any(never):
        never = [False] * n

    def advance_frontier(entry: int, cands: list[int], rcands: list[int]) -> int:
        """From ``entry`` on, add the calls met to the candidates; return the next return.

        Mutators (and info ops) go to ``cands`` in the order to try them; read-only ops
        the model names no accepting states for go to ``rcands``; the others go to
        ``callable_reads`` under each state they accept (undone through ``undo_log`` when
        the search backtracks past this point).
        """
        while entry < m and is_call[entry]:
            j = op_of[entry]
            if never[j]:
                pass
            elif not read_only[j] or not forcing:
                insort(cands, j, key=order_key.__getitem__)
            elif stepped_reads[j]:
                rcands.append(j)
            else:
                for accepted in accepting_of[j]:
                    waiting = callable_reads.get(accepted)
                    if waiting is None:
                        callable_reads[accepted] = [j]
                    else:
                        waiting.append(j)
                undo_log.append(j)
            entry = nxt[entry]
        return entry

    # Pruning "forced-reads": a read-only op that must happen and holds in the current
    # state is linearized at once, and nothing else is tried there (see forced_read for
    # its soundness). Off, reads are candidates like any other op.
    # The ones that hold in a state are found by looking the state up when the model names
    # their accepting states (model.accepting_states: exact, not a pruning), else by
    # stepping them.
    # The reads found by state are kept incrementally, so that no step costs work in
    # proportion to the history: callable_reads holds, under each state a read accepts,
    # exactly the reads that are callable (their call lies before the frontier) and not
    # linearized. A read enters when the frontier passes its call (advance_frontier) and
    # leaves when it is linearized; undo_log records both so that backtracking restores
    # the dict exactly (each frame keeps the log's length). Reads that are only in the
    # future or already placed are never looked at again.
    # An entry is the read itself (an int) when it entered, appended to the list of each
    # of its accepting states (undone by popping each of those lists: every later entry
    # is undone first, so it is last in each again), and (state, position, read) when it
    # left that state's list from that position.
    callable_reads: dict[Any, list[int]] = {}
    undo_log: list[int | tuple[Any, int, int]] = []
    accepting_of: list[tuple[Any, ...]] = [()] * n
    stepped_reads = [False] * n
    for i in range(n):
        if forcing and read_only[i] and must[i]:
            accepting = model.accepting_states(views[i]) if whole_state_reads else None
            if accepting is None:
                stepped_reads[i] = True
            else:
                accepting_of[i] = tuple(accepting)

    # With no read found by stepping, rcands stays the one empty list it starts as
    # (advance_frontier only ever adds a stepped read to it), so the search need not copy
    # it for each configuration whose frontier moves (own_rcands starts True then).
    no_stepped_reads = not any(stepped_reads)

    def forced_read(state: Any, lin: int, frontier: int, rcands: list[int]) -> int:
        """A read-only op that holds in ``state`` (-1 if none): the only move to try here.

        Soundness (an exchange argument): take any successful extension of this
        configuration that places the read r later, after ops x1..xk. Move r to the
        front. Real time allows r before each xi: r's invoke lies before the frontier
        (the first return not yet passed), and each xi, not yet linearized, returns at or
        after the frontier, so no xi completed before r was invoked; moving r earlier
        breaks no "r before x" either. r holds in this state and changes nothing, so
        x1..xk see the states they saw before. So if any extension succeeds, one that
        starts with r does, and trying only r loses nothing. Only reads that must happen
        are forced (an info read need not happen at all).
        """
        waiting = callable_reads.get(state)
        if waiting:
            return waiting[-1]
        for j in rcands:
            if step(state, views[j]) is not None:
                return j
        return -1

    # What no read can see is forgotten (model.read_horizon): states that differ only
    # there become one, and so do their configurations in the cache. Nothing is cut
    # short (the search still fails at the read that cannot hold, as without it), so a
    # violation is explained the same way.
    # Pruning "read-horizon" (the kv UNSEEN merge, list-append's unseen list). Soundness:
    # the model promises that settle(s) and s take every sequence of this component's
    # steps to the same verdict on each of its reads (model.read_horizon), and settle to
    # states that settle alike (read-only ops never change the state). So a configuration
    # (L, settle(s)) has a successful extension exactly when (L, s) has one, and merging
    # them in the cache loses no linearization. The promise covers the reads that must
    # happen, nil reads included under the model's nil meaning; an info read (present when
    # the "noops" pruning is off) may fail where it held before, but it need not happen,
    # so dropping it from a linearization gives one that holds.
    settle = None
    if "read-horizon" in prunings and whole_state_reads:
        must_reads = [views[j] for j in range(n) if read_only[j] and must[j]]
        if must_reads:
            settle = model.read_horizon(must_reads)
    # Pruning "unseeable": a settled state no read can ever see (model.unseeable) is a
    # dead end while a read that must happen is still to come: cut there rather than try
    # every order of the ops in between (2^k configurations for k appends in flight).
    # Soundness: the model promises no read holds in such a state or in any state reached
    # from it; a pending read that must happen has to be linearized at some later point,
    # in such a state, so no extension succeeds.
    # (A no-op read holds everywhere, so only the others count: see model.unseeable.)
    # (must_reads_left: the reads that must happen and are not linearized, kept on
    # lift and unlift; is_must_read marks them.)
    # (Only looked at where settle is not None: without it, no count is needed.)
    if settle is not None:
        is_must_read = [
            read_only[j] and must[j] and not model.is_noop(views[j]) for j in range(n)
        ]
    else:
        is_must_read = [False] * n
    must_reads_left = sum(is_must_read)
    cut_unseeable = "unseeable" in prunings
    unseeable = model.unseeable
    info_unchanged = "info-unchanged" in prunings

    state = initial_state
    lin = 0
    remaining = sum(must)
    # The cache keys (Lowe's memoisation) hold the linearized set in a window that does
    # not grow with the history: ``low`` is the first op that must happen and is not
    # linearized (ops are numbered in invoke order), every op below it that must happen
    # is linearized, so the set is exactly (low, lin >> low) plus the info ops below low
    # that were linearized (0 when the history has none). The map from lin to that key is
    # one-to-one (lin = its info bits | ((lin >> low) << low) | the must ops below low),
    # so two configurations share a key only when they share the linearized set and the
    # state: the memoisation stays exact, and a key's size is the span of the ops still
    # open rather than the history's length.
    low = must.index(True)
    info_bits_mask = sum(1 << i for i in range(n) if is_info[i]) if any_info else 0

    def config_key(new_lin: int, new_low: int, new_state: Any) -> tuple[Any, ...]:
        below = new_lin & info_bits_mask & ((1 << new_low) - 1)
        return (new_low, new_lin >> new_low, below, new_state)

    # With no info op, ``lin`` itself is kept as the window (bit k: op low + k), shifted as
    # low moves, so that no step costs integer work in proportion to the history (every
    # op not linearized is then at or above low). With info ops it is the whole set.
    windowed = not info_bits_mask
    cache: set[tuple[Any, ...]] = {(low, 0, state) if windowed else config_key(0, low, state)}
    # frames: (mutator candidates, read candidates, ops to try, index of the next one,
    # the forced read or -1, op linearized, state before, frontier before, low before,
    # undo log length before, path before)
    stack: list[tuple[Any, ...]] = []
    path: tuple[int, Any] | None = None  # the ops linearized, as a cons list (last first)
    stack_append, stack_pop, cache_add = stack.append, stack.pop, cache.add
    # Pruning "info-dominance": failed configurations by (linearized ops that must happen,
    # state): the sets of info ops they had used. Having used more info ops in the same
    # situation cannot help. Soundness: which ops are callable depends only on the
    # returns still ahead, and info ops have none; so from (M+U', s) with U ⊆ U' the ops
    # still to place are those of (M+U, s) less U' - U, with the same real-time order
    # among them and the same state: every extension of the first is one of the second,
    # which failed (all its extensions were tried or pruned soundly; a cache hit is a
    # configuration already failed, since the linearized set only grows along a path).
    info_mask = info_bits_mask
    if "info-dominance" not in prunings:
        info_mask = 0
    failed_with: dict[tuple[int, int, Any], list[int]] = {}
    cands: list[int] = []
    rcands: list[int] = []
    frontier = advance_frontier(nxt[head], cands, rcands)
    forced = forced_read(state, lin, frontier, rcands)
    # A forced configuration's one move is given in ``only``, one list for all of them
    # rather than a tuple each: it is read once, at index 0, just after it is set; the
    # frame that keeps it has index 1 (= ntrying) so, restored on backtracking, it is
    # never read again.
    only = [0]
    if forced < 0:
        trying = cands
    else:
        only[0] = forced
        trying = only
    ntrying = len(trying)
    idx = 0
    steps = 0
    next_check = _CLOCK_EVERY
    best_frontier = -1
    best_states: dict[Any, list[int]] = {}

    while True:
        while idx < ntrying:
            i = trying[idx]
            idx += 1
            if forced >= 0:
                # A forced read holds here (found by its accepting state, or stepped by
                # forced_read) and, read-only, leaves the state as it is. Being the only
                # move tried from this configuration, the one it leads to is not cached:
                # memoisation only spares work, and any configuration reached again that
                # way is one forced read away from one that is cached.
                steps += 1
                new_state = state
                absorbed = None
                new_lin = lin | 1 << (i - low) if windowed else lin | 1 << i
                new_low = low
                if i == low:
                    new_low += 1
                    while new_low < n and (is_info[new_low] or placed[new_low]):
                        new_low += 1
                    if windowed:
                        new_lin >>= new_low - low
            else:
                if guarded[i]:
                    covering = skip_of[i]
                    if covering and not all(placed[j] for j in covering):
                        continue  # an identical op returning no later stands for this one
                    if blind[i] and stack and info_erased[stack[-1][5]]:
                        continue  # it would erase the info op just linearized: skip that one instead
                if unseen[i] and return_entry[i] != frontier:
                    continue  # an unseen write goes with a later write, or when it must
                steps += 1
                new_state = step(state, views[i])
                if new_state is None:
                    continue
                absorbed = None
                if absorbing[i]:
                    # The unseen writes callable here go just before this write (all of them:
                    # see _unseen_writes).
                    absorbed = [j for j in cands if unseen[j] and j != i] or None
                if settle is not None and not read_only[i]:
                    new_state = settle(new_state)
                    if (
                        cut_unseeable
                        and must_reads_left - is_must_read[i] > 0
                        and unseeable(new_state)
                    ):
                        continue
                if is_info[i] and new_state == state and info_unchanged and absorbed is None:
                    # Pruning "info-unchanged": an info op that changes nothing here need not
                    # happen here. Soundness: it passes no return, so (L+i, s) has the same
                    # callable ops and state as (L, s), with i no longer available: every
                    # extension of it is an extension of (L, s), which the search is in.
                    continue
                new_lin = lin | 1 << (i - low) if windowed else lin | 1 << i
                new_low = low
                if absorbed is None:
                    if i == low:
                        new_low += 1
                        while new_low < n and (is_info[new_low] or placed[new_low]):
                            new_low += 1
                else:
                    placed[i] = 1
                    for j in absorbed:
                        new_lin |= 1 << (j - low) if windowed else 1 << j
                        placed[j] = 1
                    while new_low < n and (is_info[new_low] or placed[new_low]):
                        new_low += 1
                    placed[i] = 0
                    for j in absorbed:
                        placed[j] = 0
                if windowed:
                    if new_low != low:
                        new_lin >>= new_low - low
                    visited = (new_low, new_lin, new_state)
                else:
                    visited = config_key(new_lin, new_low, new_state)
                if visited in cache:
                    continue  # Lowe's memoisation
                cache_add(visited)
                if info_mask:
                    used = new_lin & info_mask
                    if used and _dominated(failed_with.get(
                        (new_low, (new_lin ^ used) >> new_low, new_state)
                    ), used):
                        continue
            stack_append(
                (cands, rcands, trying, idx, forced, i, state, frontier, low, len(undo_log), path,
                 absorbed, lin)
            )
            state = new_state
            lin = new_lin
            low = new_low
            own_cands = False
            own_rcands = no_stepped_reads
            if absorbed is not None:
                # Lift the absorbed writes first, each call then return (unlifted in the
                # exact reverse order on backtracking, as dancing links need).
                gone = {i, *absorbed}
                cands = [j for j in cands if j not in gone]
                own_cands = True
                for j in absorbed:
                    path = (j, path)
                    placed[j] = 1
                    e = call_entry[j]
                    a, b = prv[e], nxt[e]
                    nxt[a] = b
                    prv[b] = a
                    r = return_entry[j]
                    a, b = prv[r], nxt[r]
                    nxt[a] = b
                    prv[b] = a
                    remaining -= 1
                    if r == frontier:
                        if not own_rcands:
                            rcands = rcands[:]
                            own_rcands = True
                        frontier = advance_frontier(b, cands, rcands)
            path = (i, path)
            placed[i] = 1
            must_reads_left -= is_must_read[i]
            # lift op i: its call and its return leave the entry list
            e = call_entry[i]
            a, b = prv[e], nxt[e]
            nxt[a] = b
            prv[b] = a
            if forced < 0:
                if not own_cands:
                    cands = cands.copy()
                    del cands[idx - 1]
                    own_cands = True
            elif stepped_reads[i]:
                rcands = [j for j in rcands if j != i]
                own_rcands = True
            else:
                for accepted in accepting_of[i]:
                    waiting = callable_reads[accepted]
                    if waiting[-1] == i:
                        waiting.pop()
                        undo_log.append((accepted, len(waiting), i))
                    else:
                        place = waiting.index(i)
                        del waiting[place]
                        undo_log.append((accepted, place, i))
            r = return_entry[i]
            if r >= 0:
                a, b = prv[r], nxt[r]
                nxt[a] = b
                prv[b] = a
                remaining -= 1
                if r == frontier:
                    if not own_cands:
                        cands = cands[:]
                    if not own_rcands:
                        rcands = rcands[:]
                    frontier = advance_frontier(b, cands, rcands)
            break
        else:
            # Every candidate failed here: remember how far this configuration got.
            if frontier >= best_frontier:
                if frontier > best_frontier:
                    best_frontier = frontier
                    best_states = {}
                if len(best_states) < _MAX_STATES and state not in best_states:
                    best_states[state] = path
            if info_mask:
                used = lin & info_mask
                _remember_failure(failed_with, (low, (lin ^ used) >> low, state), used)
            if not stack:
                break
            (
                cands, rcands, trying, idx, forced, i, state, frontier, low, logged, path,
                absorbed, lin,
            ) = stack_pop()
            ntrying = len(trying)
            while len(undo_log) > logged:
                entry = undo_log.pop()
                if type(entry) is int:
                    for accepted in accepting_of[entry]:
                        callable_reads[accepted].pop()
                else:
                    accepted, place, j = entry
                    callable_reads[accepted].insert(place, j)
            placed[i] = 0
            must_reads_left += is_must_read[i]
            # unlift op i, in the reverse order of lifting (dancing links)
            e = call_entry[i]
            r = return_entry[i]
            if r >= 0:
                nxt[prv[r]] = r
                prv[nxt[r]] = r
                remaining += 1
            nxt[prv[e]] = e
            prv[nxt[e]] = e
            if absorbed is not None:
                for j in reversed(absorbed):
                    placed[j] = 0
                    r = return_entry[j]
                    nxt[prv[r]] = r
                    prv[nxt[r]] = r
                    remaining += 1
                    e = call_entry[j]
                    nxt[prv[e]] = e
                    prv[nxt[e]] = e
            continue
        # A new configuration.
        if remaining == 0:
            return _Outcome(True, len(cache))
        # forced_read, inlined (one call per configuration).
        waiting = callable_reads.get(state)
        if waiting:
            forced = waiting[-1]
            only[0] = forced
            trying = only
            ntrying = 1
        else:
            forced = -1
            for j in rcands:
                if step(state, views[j]) is not None:
                    forced = j
                    break
            if forced < 0:
                trying = cands
                ntrying = len(trying)
            else:
                only[0] = forced
                trying = only
                ntrying = 1
        idx = 0
        if steps >= next_check:
            next_check = steps + _CLOCK_EVERY
            if len(cache) > max_configs:
                return _Outcome(
                    UNKNOWN, len(cache), f"memory limit of {max_configs} configurations reached"
                )
            if deadline is not None and time.monotonic() > deadline:
                return _Outcome(UNKNOWN, len(cache), f"time limit of {time_limit} s reached")
        if steps >= pause_at:
            pause_at = steps + (yield len(cache))

    failing = op_of[best_frontier] if 0 <= best_frontier < m else None
    partials = [(state, _cons_to_list(path)) for state, path in best_states.items()]
    return _Outcome(
        False,
        len(cache),
        failing=failing,
        partials=partials[:_MAX_PARTIALS],
        states=[state for state, _ in partials],
        paths=[ops for _, ops in partials],
    )


# ----------------------------------------------------------------------------- refutations

# Models with plain register semantics: a write (or a cas that took effect) leaves its
# new value, a read of a value holds only where the register holds that value.
_REGISTER_MODELS = frozenset({"register", "cas-register"})


def _unseen_writes(views: list[Op], must: list[bool]) -> tuple[list[bool], list[bool]]:
    """The writes of values no op observes, and the info ops that can only leave one.

    Pruning "unseen-writes" (register and cas-register models, one register per
    component). A value v is *unseen* when it is not nil and no op of the component (ok,
    info or observed failure, as searched) reads v or is a cas from v. A register holding
    an unseen v is *dead*: the only ops that hold there are writes (blind: the state after
    one does not depend on the state before) and no-ops (reads of nil that constrain
    nothing: they hold everywhere and change nothing); a read of u and a cas from u hold
    only where the register holds u, and u is not v. So in any valid linearization an op
    that leaves v is followed by no-ops and then a write, or by no-ops to the end.

    Removal lemma: taking such an op out of a linearization leaves a sequence that the
    model accepts with every other op seeing the same state as before (the no-ops after
    it hold anywhere; the write after them leaves its own value whatever it found), and
    that real time allows (fewer ops to order).

    1. An info op that can only leave an unseen value (an info write of v, an info cas to
       v) is never tried (``never``): by the lemma, a linearization that places it stays
       one without it, and an info op need not happen. (The other way round, a
       linearization without it is one of the history, where it simply never happened.)
    2. A write w that must happen and leaves an unseen value (``unseen``) is tried on its
       own only when its return is the frontier (the first return not yet passed); and
       when the search places a write y (any write, w's like included), every unseen
       write callable there (not y) is placed just before y, in any order: y *absorbs*
       them. The moves tried from a configuration still depend on it alone (its
       linearized set fixes the frontier and the callable ops), so Lowe's memoisation
       stays exact.

    Completeness (the search still finds a linearization when the configuration C, with
    frontier f the return of op z, has a valid extension E; by induction on the ops left
    to place, it is enough that some move tried at C leads to a configuration with a valid
    extension). Real-time facts used: an op placed in E before z was invoked before f, so
    it is callable at C; an op callable at C can be put anywhere before its own return
    (every op not placed at C returns at or after f, after any call before f), and placing
    ops earlier never makes a later op uncallable (fewer returns ahead).

    - E starts with a write y that is tried at C (not an unseen write, or one whose
      return is f): move every unseen write A callable at C (but y) to just
      before y: A, y, E less A. Each of A is callable at C and stays so; the states from y
      on are E's (y's own value, then the lemma for each w of A taken out of E's tail).
      That is y's move with its absorption, tried at C.
    - E starts with an op that is not a write (a read, a cas): it is tried as without
      this pruning.
    - E starts with an unseen write w1 whose return is not f. After w1 the register is
      dead, so E starts with a run R (w1 first) of unseen writes and no-ops, followed by
      the end of E or by a write y that is not unseen. If z is in R: move z to the front.
      Real time allows it: z is callable at C, and no op of R before it returned before
      it was invoked (all return at or after f, and z's call is before f). The model
      accepts it: the ops of R are writes and no-ops, which hold on any register; after
      R, less z, the register is dead again (w1 still comes first in R), and what follows
      R is y, a write whose value does not depend on it, or nothing. The first move is
      z, tried at C (an unseen write whose return is the frontier, or a no-op). If z is
      not in R, z comes later, so R is followed by y, callable at C (placed before z);
      then N, A, y, E less N, A and y (N the no-ops of R, A every unseen write callable
      at C: R's among them) is valid by the points above, and starts with a no-op or
      with y's move with its absorption, both tried at C.
    (Info ops of point 1 are out of the history here: the argument is about the rest.)

    Returns ``(unseen, never)``, aligned with ``views``.
    """
    observed: set[Any] = set()
    for view in views:
        if view.f == "read":
            if view.value is not None:
                observed.add(view.value)
        elif view.f == "cas":
            observed.add(none_to_nil(view.value[0]))
        elif view.f != "write":
            return [False] * len(views), [False] * len(views)  # an op this rule knows not
    unseen = [False] * len(views)
    never = [False] * len(views)
    for i, view in enumerate(views):
        f = view.f
        if f == "write":
            value = view.value
        elif f == "cas":
            value = view.value[1]
        else:
            continue
        if value is None or value is NIL or value in observed:  # (nil: never unseen)
            continue
        if must[i]:
            unseen[i] = view.f == "write"
        else:
            never[i] = True
    return unseen, never


def _decided(outcome: _Outcome) -> Generator[int, int, _Outcome]:
    """A component decided before any search, shaped as a search for the scheduler."""
    yield 0
    return outcome


def _written(view: Op) -> Any:
    """The value a register op leaves when it takes effect (frozen), or NIL for none."""
    if view.f == "write":
        return none_to_nil(view.value)
    if view.f == "cas":
        return none_to_nil(view.value[1])
    return _NOT_A_WRITE


_NOT_A_WRITE = object()
# A view's ``extra`` (no unknown keys): one read-only empty map shared by every view the
# check builds, rather than a new dict per op (the view loop's default_factory call);
# read-only, so that no code can fill it for all of them at once.
_NO_EXTRA = MappingProxyType({})
# The types freeze returns as they are (checker.values.freeze: ints, strs, None; a bool's
# type is bool, not int, so it is not among them).
_FROZEN_AS_IS = frozenset({int, str, type(None)})
_by_call = attrgetter("call")


def _impossible_read(
    model: Model, key: Any, members: list[_Operation], start_state: Any, keyed: bool
) -> dict[str, Any] | None:
    """A read of a register that no linearization can place, with why; None if none found.

    Pruning "impossible-reads" (register and cas-register models, a read of a value v
    that must happen, v not nil and not the initial state; Gibbons & Korach's write-read
    edges). The register holds its initial value or the value of the last write (or cas
    that took effect) linearized before; so a read of v needs some op that may write v
    (ok or info) linearized before it. Three refutations follow, each sound on its own:

    - never written: no op that may happen writes v (a failed op never happened);
    - read before written: every op that writes v was invoked after the read completed,
      so it is linearized after the read;
    - overwritten: exactly one op W writes v and it completed ok, and another op X that
      completed ok and writes a value (a write, a cas that took effect; its value is not
      v, W being the only writer of v) was invoked after W completed and completed before
      the read was invoked. Every linearization puts W before X before the read; after X
      the register holds X's value, and no op between X and the read can bring v back
      (only W writes v), so the read cannot hold.

    A refutation ends the component as invalid without a search; a history with none
    goes to the search as before (nothing is cut short there).
    """
    writers: dict[Any, list[_Operation]] = {}
    stores: list[_Operation] = []  # ops that completed ok and store a value
    reads: list[_Operation] = []  # reads of a value that must happen and completed
    for op in members:
        view = op.view
        f = view.f
        if f == "write":
            value = view.value
        elif f == "cas":
            value = view.value[1]
        else:
            if f == "read" and op.must and op.ret is not None and view.value is not None:
                reads.append(op)
            continue
        if value is None:
            value = NIL
        held = writers.get(value)
        if held is None:
            writers[value] = [op]
        else:
            held.append(op)
        if op.must and op.ret is not None:
            stores.append(op)
    if not reads:
        return None
    # For "overwritten": the earliest return among stores invoked after a given point.
    stores.sort(key=_by_call)
    store_calls = [op.call for op in stores]
    earliest_ret_after = [0] * (len(stores) + 1)
    earliest = float("inf")
    earliest_ret_after[len(stores)] = earliest
    for place in range(len(stores) - 1, -1, -1):
        ret = stores[place].ret
        if ret < earliest:
            earliest = ret
        earliest_ret_after[place] = earliest
    # Per written value, what the rules ask of a read of it, computed once per value
    # rather than once per read: the earliest call of its writers (read-before-written
    # when that is after the read's return) and, for a value whose only writer completed
    # ok, the earliest return of a store invoked after that writer completed
    # (overwritten when that is before the read's call; infinity otherwise).
    bounds: dict[Any, tuple[int, float]] = {}
    never = float("inf")
    for value, candidates in writers.items():
        if len(candidates) == 1:
            writer = candidates[0]
            if writer.must and writer.ret is not None:
                bounds[value] = (
                    writer.call, earliest_ret_after[bisect_right(store_calls, writer.ret)]
                )
            else:
                bounds[value] = (writer.call, never)
        else:
            bounds[value] = (min(op.call for op in candidates), never)
    # A read value is never nil here, so it equals a nil start state never (NIL == x only
    # for x NIL): the comparison is skipped then.
    start_is_nil = start_state is NIL
    for read in reads:
        value = read.view.value
        if not start_is_nil and value == start_state:
            continue
        bound = bounds.get(value)
        witnesses: list[_Operation] = []
        if bound is None:
            rule = "never-written"
            reason = f"read {show(value)} but no operation wrote {show(value)}"
        elif bound[0] > read.ret:
            rule = "read-before-written"
            witnesses = writers[value]
            reason = (
                f"read {show(value)} but every write of {show(value)} was invoked after "
                "the read completed"
            )
        elif bound[1] < read.call:
            writer = writers[value][0]
            after = bisect_right(store_calls, writer.ret)
            later = next(
                op for op in stores[after:] if op.ret is not None and op.ret < read.call
            )
            rule = "overwritten"
            witnesses = [writer, later]
            reason = (
                f"read {show(value)} but {show(value)} was overwritten by {later.view.f} "
                f"{show(later.view.value)} (op index {_op_index(later)}), which completed "
                "before the read was invoked"
            )
        else:
            continue
        return _refutation(key, members, read, witnesses, rule, reason, keyed)
    return None


# A refuted component this small is also searched (with a small budget) so that its
# explanation has what a search gives: the states the register could hold, the partial
# linearizations, the model's reason in each state.
_EXPLAIN_BY_SEARCH = 2000
_EXPLAIN_CONFIGS = 100_000


def _search_for_explanation(
    model: Model,
    members: list[_Operation],
    whole_state_reads: bool,
    start_state: Any,
    prunings: frozenset[str],
    deadline: float | None,
) -> _Outcome:
    """A component searched to completion for its explanation (the verdict is already
    known), within a second and ``_EXPLAIN_CONFIGS`` configurations.

    Without "unseen-writes": the explanation lists every state the register could hold at
    the failing op, an unseen write's value included."""
    budget = time.monotonic() + 1.0
    if deadline is not None:
        budget = min(budget, deadline)
    search = _search(
        model, members, whole_state_reads, start_state, budget, _EXPLAIN_CONFIGS, 1.0,
        prunings - {"unseen-writes"},
    )
    next(search)
    try:
        while True:
            search.send(_MAX_SLICE)
    except StopIteration as stop:
        return stop.value


def _explained_by_search(
    model: Model,
    key: Any,
    members: list[_Operation],
    whole_state_reads: bool,
    start_state: Any,
    refuted: dict[str, Any],
    keyed: bool,
    prunings: frozenset[str],
    deadline: float | None,
) -> dict[str, Any]:
    """The search's explanation of a refuted component, with the refutation added to it.

    The verdict is the refutation's; a search cut short by its budget leaves the
    refutation's own explanation. A search that finds the component linearizable
    contradicts a refutation: a defect, raised loudly (never a verdict).
    """
    outcome = _search_for_explanation(
        model, members, whole_state_reads, start_state, prunings, deadline
    )
    if outcome.valid is True:
        raise AssertionError(
            f"the search linearized a history refuted as {refuted['refuted_by']}: "
            f"{refuted['reason']}"
        )
    if outcome.valid is not False:
        return refuted
    explanation = _explain(model, key, members, outcome, keyed, start_state)
    explanation["refuted_by"] = refuted["refuted_by"]
    explanation["refutation"] = refuted["reason"]
    explanation["witnesses"] = refuted["witnesses"]
    return explanation


def _searched_with_unseen_writes(
    model: Model,
    members: list[_Operation],
    whole_state_reads: bool,
    start_state: Any,
    outcome: _Outcome,
    prunings: frozenset[str],
    deadline: float | None,
) -> _Outcome:
    """A failed search's outcome for its explanation, searched again with unseen writes tried.

    Pruning "unseen-writes" keeps the search from placing a write no op observes where
    nothing requires it, so the partial linearizations and the states it reports at the
    failing op leave those out. A small component found invalid is searched again without
    it (same budget as :func:`_explained_by_search`) so that its explanation lists every
    state the register could hold; the verdict stays the first search's, and a second
    search that linearizes the component contradicts it: a defect, raised loudly.
    """
    again = _search_for_explanation(
        model, members, whole_state_reads, start_state, prunings, deadline
    )
    if again.valid is True:
        raise AssertionError("the search without unseen-writes linearized an invalid component")
    if again.valid is not False:
        return outcome
    again.configs = outcome.configs
    return again


def _refutation(
    key: Any,
    members: list[_Operation],
    read: _Operation,
    witnesses: list[_Operation],
    rule: str,
    reason: str,
    keyed: bool,
) -> dict[str, Any]:
    """An explanation, in the search's shape, of a read refuted before any search."""
    end = read.ret if read.ret is not None else read.call
    concurrent = sorted(
        (
            op
            for op in members
            if op is not read and op.call < end and (op.ret is None or op.ret > read.call)
        ),
        key=lambda op: op.call,
    )
    indices = [_op_index(read)] + [_op_index(op) for op in concurrent + witnesses]
    completions = [
        op.pair.completion.index
        for op in [read, *concurrent, *witnesses]
        if op.pair.completion is not None
    ]
    return {
        "key": _key_label(key) if keyed else None,
        "op": _op_record(read),
        "previous_ok": None,
        "linearized": [],
        "partial_linearizations": [],
        "states": [],
        "reasons": [],
        "reason": reason,
        "refuted_by": rule,
        "witnesses": [_op_record(op) for op in witnesses],
        "concurrent": [_op_record(op) for op in concurrent],
        "window": [min(indices), max(indices + completions)],
    }


def _cons_to_list(path: tuple[int, Any] | None) -> list[int]:
    """The ops of a cons-list path (last first), first to last."""
    ops: list[int] = []
    while path is not None:
        ops.append(path[0])
        path = path[1]
    ops.reverse()
    return ops


_MAX_FAILED_USES = 16  # info-op sets kept per situation: the search stays linear in them


def _remember_failure(
    failed_with: dict[tuple[int, int, Any], list[int]],
    situation: tuple[int, int, Any],
    used: int,
) -> None:
    """Keep the minimal failed info-op sets of a situation (supersets prove nothing more)."""
    uses = failed_with.get(situation)
    if uses is None:
        failed_with[situation] = [used]
        return
    if any(not earlier & ~used for earlier in uses):
        return
    kept = [earlier for earlier in uses if earlier & ~used]
    kept.append(used)
    failed_with[situation] = kept[-_MAX_FAILED_USES:]


def _dominated(failed_uses: list[int] | None, used: int) -> bool:
    """True when a failed configuration in the same situation had used a subset of ``used``.

    Same ops that must happen linearized, same state, fewer info ops spent: everything
    that can follow here could follow there (info ops have no return to wait for), and
    it failed there.
    """
    if failed_uses:
        for earlier in failed_uses:
            if not earlier & ~used:
                return True
    return False


def _symmetry_masks(
    views: list[Op], tried: list[int], call_entry: list[int], return_entry: list[int], m: int
) -> list[tuple[int, ...]]:
    """For each op, the identical ops that, while unlinearized, make trying it moot.

    Op j covers op i when both are identical (same f, value, outcome, error), j was
    invoked first, j returns no later (info ops return "at infinity") and their intervals
    overlap (otherwise j is linearized whenever i is callable). Only the ops of ``tried``
    (the ones the search may try as candidates) are classed and given masks; the others
    get none and cover none (fewer covers: never a move less).

    Pruning "identical-ops". Soundness: identical ops have the same step (a model's step
    reads f, value, type and error only; "same value" is Clojure's ``=`` through freeze,
    so ``true`` and ``1`` never share a class). Say the search, in configuration C, would
    place i next while j, covering i, is pending, and some extension i, y1.., j, z1.. (or
    with j left out: then j is info, so i is too) succeeds. Exchange i and j (or put j in
    i's place and leave i out). Every state is the same. Real time still holds: j first
    is fine since every op of C was placed while j's return was ahead (call < ret_j) and
    every later op x had ret_x > call_i > call_j (i preceded it); i in j's old place is
    fine since each op before it was invoked before ret_j <= ret_i, and each op after it
    already followed i. So trying i while j is pending is moot: the search tries j.
    """
    n = len(views)
    masks: list[tuple[int, ...]] = [()] * n
    by_class: dict[tuple[Any, ...], list[int]] = {}
    infinity = m + 1
    if any(call_entry[i] > call_entry[j] for i, j in zip(tried, tried[1:], strict=False)):
        tried = sorted(tried, key=call_entry.__getitem__)
    for i in tried:
        view = views[i]
        error = view.error
        try:
            cls = (view.f, view.value, view.type, None if error is None else freeze(error))
            members = by_class.get(cls)
        except (TypeError, ModelError):
            continue
        if members is None:
            by_class[cls] = [i]
            continue
        ret_i = return_entry[i]
        if ret_i < 0:
            ret_i = infinity
        call_i = call_entry[i]
        covering: list[int] = []
        alive: list[int] = []
        for j in members:
            ret_j = return_entry[j]
            if ret_j < 0:
                ret_j = infinity
            if ret_j < call_i:
                continue  # j returned before i was invoked: j is linearized when i is callable
            alive.append(j)
            if ret_j <= ret_i:
                covering.append(j)
        alive.append(i)
        by_class[cls] = alive
        if covering:
            masks[i] = tuple(covering)
    return masks


# ----------------------------------------------------------------------------- check


_Checked = TypeVar("_Checked", bound=Callable[..., Any])


def _without_cycle_collector(function: _Checked) -> _Checked:
    """Run ``function`` with the cyclic GC paused (restored after, as it was).

    A check allocates hundreds of thousands of objects that live until it ends (ops,
    pairs, views, cache tuples): the collector would scan them again and again and free
    nothing (measured: a third of the time of a 20k-op check). Nothing is lost: it
    collects once it is enabled again.
    """

    @functools.wraps(function)
    def paused(*args: Any, **kwargs: Any) -> Any:
        collecting = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if collecting:
                gc.enable()

    return paused  # type: ignore[return-value]


@_without_cycle_collector
def check(
    history: Iterable[Op | Mapping[str, Any]],
    model: str | type[Model] | Model,
    *,
    init: Any = None,
    time_limit: float | None = None,
    max_configs: int = DEFAULT_MAX_CONFIGS,
    independent: bool | None = None,
    decompose: bool = True,
    all_components: bool = False,
    nil_read: str | None = None,
    prunings: Iterable[str] | None = None,
    started: float | None = None,
    explain: bool = True,
) -> dict[str, Any]:
    """Decide whether ``history`` is linearizable with respect to ``model``.

    ``model`` is a registered name (``"cas-register"``), a model class or an instance;
    ``init`` the model's initial value (per key for independent histories).
    ``independent`` forces (True) or forbids (False) splitting Jepsen ``[key, value]``
    tuples; None detects them (every invoke's value is a pair). ``decompose=False`` checks
    a key-aware model's history whole instead of per component (same verdict, slower).
    Once a component is found invalid the others stop where they are, unless
    ``all_components`` asks for every one to be decided (and explained).
    ``nil_read`` (``"absent"`` or ``"unknown"``) overrides what a read of nil means to the
    model (default: the model's own, see :mod:`checker.models.base`). ``prunings`` names
    the prunings to use (default: all of :data:`PRUNINGS`; ``()`` is the plain Wing & Gong
    search with Lowe's memoisation). ``time_limit`` counts from ``started`` (a
    ``time.monotonic()`` reading; default: now), so a caller can count its own reading of
    the history in the budget. ``explain=False`` leaves ``failures`` out (the verdict only:
    for callers that check many small histories).
    Raises :class:`~checker.history.HistoryError` for malformed input (two outstanding
    operations on one process, an op the model cannot read); see the module docstring
    for the result.
    """
    if started is None:
        started = time.monotonic()
    deadline = None if time_limit is None else started + time_limit
    enabled = frozenset(PRUNINGS if prunings is None else prunings)
    unknown_prunings = enabled - set(PRUNINGS)
    if unknown_prunings:
        raise ValueError(
            f"unknown prunings {sorted(unknown_prunings)}; expected some of {', '.join(PRUNINGS)}"
        )
    decompose = decompose and "components" in enabled
    the_model = _resolve_model(model, nil_read)
    ops = _as_ops(history)
    paired = pair_operations(ops)
    pairs = paired.operations
    for pair in pairs:
        completion = pair.completion
        if completion is not None and completion.f != pair.invoke.f:
            raise HistoryError(
                f"op index {completion.index}: process {completion.process!r} completes "
                f"{completion.f!r} but invoked {pair.invoke.f!r} (op index {pair.invoke.index}); "
                "expected the same function"
            )
    if independent is None:
        independent = not the_model.key_aware and _looks_independent(pairs)

    operations: list[_Operation] = []
    dropped_fail = 0
    dropped_noop = 0
    drop_noops = "noops" in enabled
    validate, is_noop, read_only = the_model.validate, the_model.is_noop, the_model.read_only
    append = operations.append
    # The clock is looked at every _CLOCK_EVERY pairs (a count-down; never with no limit).
    clock_in = _CLOCK_EVERY + 1 if deadline is not None else -1
    for pair in pairs:
        clock_in -= 1
        if not clock_in:
            clock_in = _CLOCK_EVERY
            if time.monotonic() > deadline:  # type: ignore[operator]
                return _out_of_time(the_model, started, time_limit, len(pairs))
        key = None
        outcome = pair.type
        if independent:
            if not is_pair(pair.invoke.value):
                raise HistoryError(
                    f"op index {pair.invoke.index}: expected an independent [key, value] "
                    f"tuple, got {pair.invoke.value!r}"
                )
            key = freeze(pair.invoke.value[0])
            view = _view(pair, _inner_value(pair))
        else:
            # _view(pair, pair.value), inlined: this loop builds a view for every op of
            # the history, and the call, the property and freeze's own call on an int, a
            # str or a cas pair of them were half its cost.
            invoke = pair.invoke
            completion = pair.completion
            value = invoke.value
            view = None
            if completion is None:
                error = None
            else:
                error = completion.error
                if outcome == "ok" and completion.value is not None:
                    value = completion.value  # OperationPair.value: the completion's for ok
                    if type(value) in _FROZEN_AS_IS:
                        # The completion itself is then the view: the same process, f
                        # (checked above), outcome, error and frozen value; only its index
                        # and time are the completion's, so every op record and message
                        # takes those from the pair's invoke (_op_index, _op_record).
                        view = completion
            if view is None:
                kind = type(value)
                if kind in _FROZEN_AS_IS:
                    pass
                elif kind is list and len(value) == 2 and (
                    type(value[0]) in _FROZEN_AS_IS and type(value[1]) in _FROZEN_AS_IS
                ):
                    value = (value[0], value[1])  # a cas's [expected new]: freeze's own tuple
                else:
                    value = freeze(value)
                view = Op(
                    invoke.index, invoke.time, outcome, invoke.process, invoke.f, value,
                    error, invoke.node, _NO_EXTRA,  # type: ignore[arg-type]
                )
        try:
            validate(view)
        except ModelError as error:
            if view is pair.completion:
                try:  # the message names the invoke's index, as from a view built for it
                    validate(_view(pair, pair.value))
                except ModelError as named:
                    error = named
            raise HistoryError(str(error)) from None
        must = outcome == "ok"
        if outcome == "fail":
            if not the_model.observes_failure(view):
                dropped_fail += 1
                continue
            must = True
        # Pruning "noops": an op that changes nothing and asserts nothing, or that changes
        # nothing and need not happen (an info read-only op), is left out. Soundness: such
        # an op holds in every state (model.is_noop) and leaves it as it is, so it can be
        # put anywhere in its interval, or (info) nowhere: removing it from a
        # linearization of the rest keeps every state, and adding it back to one of the
        # rest (at any point of its interval, or not at all) keeps it valid.
        if drop_noops and (is_noop(view) or (not must and read_only(view))):
            dropped_noop += 1  # changes nothing and asserts nothing (or need not happen)
            continue
        append(
            _Operation(  # view, pair, key, call, ret, must (positional: cheaper)
                view, pair, key, pair.invoke_position, pair.complete_position if must else None,
                must,
            )
        )

    components = _components(the_model, operations, independent, decompose)
    result: dict[str, Any] = {
        "valid": True,
        "model": the_model.name,
        "nil_read": the_model.nil_read,
        "op_count": len(operations),
        "dropped": {"fail": dropped_fail, "noop": dropped_noop},
        "independent": independent,
        "component_count": max(1, len(components)),
    }
    if enabled != frozenset(PRUNINGS):
        result["prunings"] = [name for name in PRUNINGS if name in enabled]
    initial = the_model.init(freeze(init))
    keyed_history = independent or (the_model.key_aware and decompose)
    searched_one = False
    searches: list[tuple[Any, list[_Operation], Generator[int, int, _Outcome]]] = []
    start_states: list[Any] = []
    whole_reads: list[bool] = []
    known_invalid = False  # a component is decided invalid (refuted or searched)
    # Small components first: an invalid one is found sooner.
    for key, members in sorted(components, key=lambda item: len(item[1])):
        start_state = initial
        whole_state_reads = True
        if the_model.key_aware:
            component_keys = {k for op in members for k in the_model.keys(op.view)}
            if decompose:
                start_state = the_model.restrict(initial, component_keys)
            whole_state_reads = decompose and len(component_keys) == 1
        refuted = None
        search = None
        if "impossible-reads" in enabled and the_model.name in _REGISTER_MODELS:
            # The refutation only ever turns a component invalid, so on a component the
            # search finds linearizable it cannot matter: a refuted read is one no
            # linearization places (see _impossible_read), and the search found one that
            # places every read. So the search runs first, for a budget of steps linear
            # in the component (valid histories of a few clients need about one step per
            # op), and the refutation pass is skipped when it ends valid within it.
            # Otherwise (invalid, unknown, or not done) the refutation runs as before and
            # decides a refuted component; an unrefuted one keeps its search (resumed by
            # _run_searches where it paused, or its outcome if it ended). At most
            # 2 n + 1024 steps come before a refutation, where the search would have
            # found no linearization anyway. Once a component is known invalid the
            # others skip this head start (the verdict is known; see _run_searches).
            early: _Outcome | None = None
            if not known_invalid or all_components:
                search = _search(
                    the_model, members, whole_state_reads, start_state, deadline,
                    max_configs, time_limit, enabled,
                )
                next(search)
                try:
                    search.send(2 * len(members) + _FIRST_SLICE)
                except StopIteration as stop:
                    early = stop.value
                    search = None
            if early is None or early.valid is not True:
                refuted = _impossible_read(the_model, key, members, start_state, keyed_history)
            if refuted is None and early is not None:
                known_invalid = known_invalid or early.valid is False
                search = _decided(early)
                next(search)
        if refuted is not None:
            known_invalid = True
            if search is not None:
                search.close()
            # Only the first refuted component is searched for its explanation: with many
            # refuted keys the search would cost up to a second each.
            if explain and not searched_one and len(members) <= _EXPLAIN_BY_SEARCH:
                searched_one = True
                refuted = _explained_by_search(
                    the_model, key, members, whole_state_reads, start_state, refuted,
                    keyed_history, enabled, deadline,
                )
            search = _decided(_Outcome(False, 0, explanation=refuted))
            next(search)  # to its first pause, before any work
        elif search is None:
            search = _search(
                the_model,
                members,
                whole_state_reads,
                start_state,
                deadline,
                max_configs,
                time_limit,
                enabled,
            )
            next(search)  # to its first pause, before any work
        start_states.append(start_state)
        whole_reads.append(whole_state_reads)
        searches.append((key, members, search))
    # The cache holds millions of tuples the cycle collector would scan again and again
    # while never freeing one: collect when the search is over.
    collecting = gc.isenabled()
    gc.disable()
    try:
        outcomes = _run_searches(searches, deadline, max_configs, time_limit, all_components)
    finally:
        if collecting:
            gc.enable()

    configs = 0
    failures: list[dict[str, Any]] = []
    unknown_keys: list[Any] = []
    skipped_keys: list[Any] = []
    errors: list[str] = []
    keyed = independent or (the_model.key_aware and decompose)
    for number, ((key, members, _), outcome) in enumerate(zip(searches, outcomes, strict=True)):
        configs += outcome.configs
        if outcome.valid is False and explain:
            if (
                outcome.explanation is None
                and "unseen-writes" in enabled
                and the_model.name in _REGISTER_MODELS
                and len(members) <= _EXPLAIN_BY_SEARCH
            ):
                outcome = _searched_with_unseen_writes(
                    the_model, members, whole_reads[number], start_states[number], outcome,
                    enabled, deadline,
                )
            failures.append(
                outcome.explanation
                or _explain(the_model, key, members, outcome, keyed, start_states[number])
            )
        elif outcome.valid == UNKNOWN:
            if outcome.error == _SKIPPED:
                skipped_keys.append(key)
                continue
            unknown_keys.append(key)
            if outcome.error and outcome.error not in errors:
                errors.append(outcome.error)
    result["valid"] = worst(outcome.valid for outcome in outcomes) if outcomes else True
    result["configs"] = configs
    result["seconds"] = round(time.monotonic() - started, 6)
    if result["valid"] == UNKNOWN:
        result["error"] = "; ".join(errors)
    if unknown_keys:
        result["unknown_keys"] = [_key_label(k) for k in unknown_keys]
    if skipped_keys:
        result["skipped_keys"] = [_key_label(k) for k in skipped_keys]
    if failures:
        failures.sort(key=lambda failure: repr(failure["key"]))
        result["failures"] = failures
    return result


def _out_of_time(
    model: Model, started: float, time_limit: float | None, op_count: int
) -> dict[str, Any]:
    """The result of a check whose time ran out before any component was decided."""
    return {
        "valid": UNKNOWN,
        "model": model.name,
        "nil_read": model.nil_read,
        "op_count": op_count,
        "configs": 0,
        "seconds": round(time.monotonic() - started, 6),
        "error": f"time limit of {time_limit} s reached",
    }


def _run_searches(
    searches: list[tuple[Any, list[_Operation], Generator[int, int, _Outcome]]],
    deadline: float | None,
    max_configs: int,
    time_limit: float | None,
    all_components: bool,
) -> list[_Outcome]:
    """Advance the component searches in turns, with slices that double each round.

    Found invalid after a round, the remaining searches stop (unless ``all_components``):
    the verdict is known. Time and memory (the caches of all live searches together)
    are looked at between rounds, and by each search between its own steps.
    """
    outcomes: list[_Outcome | None] = [None] * len(searches)
    sizes = [0] * len(searches)
    pending = list(range(len(searches)))
    slice_steps = _FIRST_SLICE
    out_of_time = False
    while pending:
        still: list[int] = []
        for place, number in enumerate(pending):
            # The time limit bounds the whole round too: with many components, a round
            # of small slices can itself take long.
            if deadline is not None and time.monotonic() > deadline:
                still.extend(pending[place:])
                out_of_time = True
                break
            try:
                sizes[number] = searches[number][2].send(slice_steps)
            except StopIteration as stop:
                outcomes[number] = stop.value
            else:
                still.append(number)
        pending = still
        if not pending:
            break
        reason = None
        if not all_components and any(o is not None and o.valid is False for o in outcomes):
            reason = _SKIPPED
        elif sum(sizes[number] for number in pending) > max_configs:
            reason = f"memory limit of {max_configs} configurations reached"
        elif out_of_time or (deadline is not None and time.monotonic() > deadline):
            reason = f"time limit of {time_limit} s reached"
        if reason is not None:
            for number in pending:
                searches[number][2].close()
                outcomes[number] = _Outcome(UNKNOWN, sizes[number], reason)
            break
        slice_steps = min(slice_steps * 2, _MAX_SLICE)
    return [
        outcome if outcome is not None else _Outcome(UNKNOWN, 0, "not run") for outcome in outcomes
    ]


def _components(
    model: Model, operations: list[_Operation], independent: bool, decompose: bool
) -> list[tuple[Any, list[_Operation]]]:
    """The independent sub-histories: by Jepsen key, by key component, or the whole.

    Pruning "components" (P-compositionality, for key-aware models; Jepsen keys are split
    whatever the switch says, since the model sees only the inner values). Soundness:
    linearizability is local (Herlihy & Wing, Theorem 1): a history is linearizable iff
    each object's sub-history is. Here an object is a key component: no op touches two
    components, and a key-aware model's step on an op reads and writes only that op's keys
    (model.keys; restrict gives each component its part of the initial state), so the
    whole model is the product of the components' models. Linearizations of the parts
    merge into one of the whole by ordering all ops by linearization points chosen inside
    their intervals; and a linearization of the whole restricts to each part.
    """
    if not operations:
        return []
    if independent:
        by_key: dict[Any, list[_Operation]] = {}
        for op in operations:
            by_key.setdefault(op.key, []).append(op)
        return list(by_key.items())
    if not (model.key_aware and decompose):
        return [(None, operations)]
    op_keys = [model.keys(op.view) for op in operations]
    if all(len(keys) == 1 for keys in op_keys):
        # One key per op (kv): the components are the keys, in order of first appearance
        # (as networkx would find them), without building the graph.
        single: dict[Any, list[_Operation]] = {}
        for op, (key,) in zip(operations, op_keys, strict=True):
            single.setdefault(key, []).append(op)
        return list(single.items())
    import networkx  # only for multi-key ops: its import costs ~80 ms of every start

    graph = networkx.Graph()
    keyless: list[_Operation] = []
    for op, keys in zip(operations, op_keys, strict=True):
        if not keys:
            keyless.append(op)
            continue
        graph.add_node(keys[0])
        for a, b in zip(keys, keys[1:], strict=False):
            graph.add_edge(a, b)
    component_of: dict[Any, int] = {}
    labels: list[tuple[Any, ...]] = []
    for number, nodes in enumerate(networkx.connected_components(graph)):
        for node in nodes:
            component_of[node] = number
        labels.append(_sorted_keys(nodes))
    grouped: dict[int, list[_Operation]] = {}
    for op, keys in zip(operations, op_keys, strict=True):
        if keys:
            grouped.setdefault(component_of[keys[0]], []).append(op)
    out: list[tuple[Any, list[_Operation]]] = [
        (labels[number][0] if len(labels[number]) == 1 else labels[number], ops)
        for number, ops in grouped.items()
    ]
    if keyless:
        out.append(((), keyless))
    return out


def _sorted_keys(keys: Iterable[Any]) -> tuple[Any, ...]:
    try:
        return tuple(sorted(keys))
    except TypeError:
        return tuple(sorted(keys, key=repr))


def _key_label(key: Any) -> Any:
    return thaw(key)


def _op_index(op: _Operation) -> int:
    """The op's history index: its invoke's (its view may be its completion)."""
    return op.pair.invoke.index


def _op_record(op: _Operation) -> dict[str, Any]:
    completion = op.pair.completion
    return {
        "index": _op_index(op),
        "completion_index": None if completion is None else completion.index,
        "process": op.pair.invoke.process,
        "type": op.view.type,
        "f": op.view.f,
        "value": thaw(op.view.value),
        "error": op.view.error,
        "invoke_time": op.pair.invoke.time,
        "complete_time": None if completion is None else completion.time,
    }


def _replay(
    model: Model, members: list[_Operation], ops: list[int], start_state: Any
) -> list[dict[str, Any]]:
    """The last steps of a partial linearization, each with the model state after it."""
    state = start_state
    steps: list[dict[str, Any]] = []
    for i in ops:
        state = model.step(state, members[i].view)
        if len(ops) - len(steps) <= _MAX_STEPS:
            steps.append({"op": _op_record(members[i]), "state": model.describe(state)})
        else:
            steps.append({})
    return [step for step in steps if step]


def _replay_state(model: Model, members: list[_Operation], ops: list[int], start: Any) -> Any:
    state = start
    for i in ops:
        state = model.step(state, members[i].view)
        if state is None:
            return None
    return state


def _step_reason(model: Model, state: Any, view: Op) -> str | None:
    try:
        return model.step_reason(state, view)
    except Exception as error:  # noqa: BLE001 - an explanation never breaks a verdict
        return f"(the model could not say why: {type(error).__name__}: {error})"


def _explain(
    model: Model,
    key: Any,
    members: list[_Operation],
    outcome: _Outcome,
    keyed: bool,
    start_state: Any,
) -> dict[str, Any]:
    failing = outcome.failing
    longest: list[int] = max((ops for _, ops in outcome.partials), key=len, default=[])
    explanation: dict[str, Any] = {
        "key": _key_label(key) if keyed else None,
        "op": None,
        # The last *ok* op of it: an info op linearized after it (one that may have taken
        # effect) is in "linearized" but is no acknowledged operation to name here.
        "previous_ok": next(
            (_op_record(members[i]) for i in reversed(longest) if members[i].pair.type == "ok"),
            None,
        ),
        "linearized": [_op_index(members[i]) for i in longest],
        "partial_linearizations": [
            {
                "ops": [_op_index(members[i]) for i in ops],
                "state": model.describe(state),
                "steps": _replay(model, members, ops, start_state),
            }
            for state, ops in outcome.partials
        ],
        "states": [model.describe(state) for state in outcome.states],
        "concurrent": [],
        "window": None,
    }
    if failing is None:
        return explanation
    bad = members[failing]
    explanation["op"] = _op_record(bad)
    # Why the culprit cannot be linearized in each state the model could be in (the
    # model's step_reason, Knossos' "inconsistent" message), aligned with "states".
    # The state given to step_reason is the one the path reaches by the model's own steps
    # (before read_horizon's settle forgot what no read sees), so the reason names the
    # value itself: "the key holds "x"", not "a string no get can see".
    reasons = []
    for number, state in enumerate(outcome.states):
        if number < _MAX_PARTIALS and number < len(outcome.paths):
            replayed = _replay_state(model, members, outcome.paths[number], start_state)
            if replayed is not None:
                state = replayed
        reasons.append(_step_reason(model, state, bad.view))
    explanation["reasons"] = reasons
    first = next((reason for reason in reasons if reason), None)
    if first is not None:
        explanation["reason"] = first
    end = bad.ret if bad.ret is not None else bad.call
    concurrent = [
        op
        for op in members
        if op is not bad and op.call < end and (op.ret is None or op.ret > bad.call)
    ]
    concurrent.sort(key=lambda op: op.call)
    explanation["concurrent"] = [_op_record(op) for op in concurrent]
    indices = [_op_index(bad)] + [_op_index(op) for op in concurrent]
    completions = [
        op.pair.completion.index for op in [bad, *concurrent] if op.pair.completion is not None
    ]
    explanation["window"] = [min(indices), max(indices + completions)]
    return explanation
