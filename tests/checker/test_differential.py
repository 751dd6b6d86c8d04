"""Differential tests of the linearizability search: every pruning against a brute force.

The oracle is written apart from the checker: its own pairing of invokes and completions,
its own Clojure ``=`` (``clj_eq``), its own step function per model (``REFERENCE``), and a
brute force that tries every order of the operations that real time allows (every
permutation, pruned only by real time), with every subset of the info operations. It
shares nothing with ``Model.step`` or ``checker.values``, so a wrong model (a nil read that
constrains nothing where it should, ``true == 1``) shows up as a disagreement, which a
property test that reuses ``model.step`` could never see.

Each small random history is checked by ``check`` with all prunings, with none, and with
each alone (and read-horizon with unseeable), by the plain search (``checker.plain``), under
both nil meanings; every verdict must be the brute force's. The generators make nil reads,
booleans, integers and floats that Python's ``==`` confuses (``True``, ``1``, ``1.0``), info
ops (timed out, or never completed), failed cas (observed by the etcd model), multi-key
transactions and several keys. Bounded for CI: a few thousand histories in all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.history import op_from_mapping
from checker.linearizable import PRUNINGS, check
from checker.plain import check_plain
from workloads.append import ListAppendModel

EXAMPLES = int(os.environ.get("RAFTLAB_DIFFERENTIAL_EXAMPLES", "100"))
DIFFERENTIAL = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same histories on every run (reproducible CI)
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
NIL_READS = ("absent", "unknown")
CONFIGURATIONS: list[tuple[str, tuple[str, ...] | None]] = [
    ("all prunings", None),
    ("no pruning", ()),
    *((f"only {name}", (name,)) for name in PRUNINGS),
    ("only read-horizon and unseeable", ("read-horizon", "unseeable")),
]

# ----------------------------------------------------------------------------- equality


def clj_eq(a: Any, b: Any) -> bool:
    """Clojure's ``=`` on JSON-like data: a boolean is no number, an integer no float."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, float) and isinstance(b, float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(clj_eq(x, y) for x, y in zip(a, b, strict=True))
    return False


def clj_set_eq(a: list[Any], b: list[Any]) -> bool:
    return all(any(clj_eq(x, y) for y in b) for x in a) and all(
        any(clj_eq(x, y) for y in a) for x in b
    )


def lookup(pairs: tuple[tuple[Any, Any], ...], key: Any) -> Any:
    for k, v in pairs:
        if clj_eq(k, key):
            return v
    return None


def bind(pairs: tuple[tuple[Any, Any], ...], key: Any, value: Any) -> tuple[tuple[Any, Any], ...]:
    kept = tuple((k, v) for k, v in pairs if not clj_eq(k, key))
    return kept if value is None else (*kept, (key, value))


# ----------------------------------------------------------------------------- semantics
# Each reference step: (state, f, value, outcome, error, nil_absent) -> (holds, new state).
# ``value`` is what the operation did or saw (the inner value for keyed histories).
# A failed op reaches a step only where the model observes failures (etcd's cas).

FAIL = (False, None)


def register_step(state: Any, f: str, value: Any, outcome: str, error: Any, absent: bool):
    if f == "write":
        return True, value
    if f == "cas":
        expected, new = value
        return (True, new) if clj_eq(expected, state) else FAIL
    if value is None:
        return (True, state) if state is None or not absent else FAIL
    return (True, state) if clj_eq(value, state) else FAIL


def etcd_step(state: Any, f: str, value: Any, outcome: str, error: Any, absent: bool):
    if f == "cas" and outcome == "fail":
        expected, _ = value
        if error == "not_found":
            return (True, state) if state is None else FAIL
        return (True, state) if not clj_eq(expected, state) else FAIL
    if f == "read" and outcome == "info":
        return True, state
    return register_step(state, f, value, outcome, error, absent)


def kv_step(state: tuple, f: str, value: Any, outcome: str, error: Any, absent: bool):
    key, v = value
    current = lookup(state, key)
    if f == "get":
        if v is None:
            return (True, state) if current is None or not absent else FAIL
        if current is None:
            empty = clj_eq(v, "") or clj_eq(v, [])
            return (True, state) if empty else FAIL
        return (True, state) if clj_eq(current, v) else FAIL
    if f == "put":
        return True, bind(state, key, v)
    if isinstance(v, str) and (current is None or isinstance(current, str)):
        return True, bind(state, key, v if current is None else current + v)
    if current is None:
        return True, bind(state, key, (v,))
    if isinstance(current, tuple):
        return True, bind(state, key, (*current, v))
    return FAIL


def multi_register_step(state: tuple, f: str, value: Any, outcome: str, error: Any, absent: bool):
    for micro_f, key, v in value:
        if micro_f == "read":
            if v is None and not absent:
                continue
            if not clj_eq(lookup(state, key), v):
                return FAIL
        else:
            state = bind(state, key, v)
    return True, state


def set_step(state: tuple, f: str, value: Any, outcome: str, error: Any, absent: bool):
    if f == "add":
        if any(clj_eq(value, x) for x in state):
            return True, state
        return True, (*state, value)
    if value is None:
        return (True, state) if not state or not absent else FAIL
    return (True, state) if clj_set_eq(list(value), list(state)) else FAIL


def counter_step(state: Any, f: str, value: Any, outcome: str, error: Any, absent: bool):
    if f == "add":
        return True, state + value
    if value is None:
        return FAIL if absent else (True, state)
    return (True, state) if clj_eq(value, state) else FAIL


def list_append_step(state: tuple, f: str, value: Any, outcome: str, error: Any, absent: bool):
    if f == "append":
        return True, (*state, value)
    if value is None:
        return (True, state) if not state or not absent else FAIL
    return (True, state) if clj_eq(list(value), list(state)) else FAIL


def fifo_queue_step(state: tuple, f: str, value: Any, outcome: str, error: Any, absent: bool):
    if f == "enqueue":
        return True, (*state, value)
    if not state:
        return FAIL
    if clj_eq(state[0], value) or (value is None and outcome == "info"):
        return True, state[1:]  # a dequeue that timed out took the head, if it happened
    return FAIL


def unordered_queue_step(state: tuple, f: str, value: Any, outcome: str, error: Any, absent: bool):
    if f == "enqueue":
        return True, (*state, value)
    for position, held in enumerate(state):
        if clj_eq(held, value):
            return True, state[:position] + state[position + 1 :]
    return FAIL


def mutex_step(state: bool, f: str, value: Any, outcome: str, error: Any, absent: bool):
    if f == "acquire":
        return FAIL if state else (True, True)
    return (True, False) if state else FAIL


@dataclass(frozen=True, slots=True)
class Reference:
    step: Callable[..., tuple[bool, Any]]
    initial: Any
    observes: Callable[[str, Any], bool] = lambda f, error: False


REFERENCE: dict[str, Reference] = {
    "register": Reference(register_step, None),
    "cas-register": Reference(register_step, None),
    "etcd": Reference(
        etcd_step, None, lambda f, error: f == "cas" and error in ("cas_mismatch", "not_found")
    ),
    "kv": Reference(kv_step, ()),
    "multi-register": Reference(multi_register_step, ()),
    "set": Reference(set_step, ()),
    "counter": Reference(counter_step, 0),
    "list-append": Reference(list_append_step, ()),
    "fifo-queue": Reference(fifo_queue_step, ()),
    "unordered-queue": Reference(unordered_queue_step, ()),
    "mutex": Reference(mutex_step, False),
}


# ----------------------------------------------------------------------------- brute force


@dataclass(slots=True)
class Planned:
    f: str
    value: Any
    outcome: str
    error: Any
    call: int
    ret: int | None  # None: need not happen (info), else must happen before passing it
    key: Any = None


def operations_of(history: list[dict[str, Any]], keyed: bool, ref: Reference) -> list[Planned]:
    """Pair invokes and completions (one process, one op at a time) the plain way."""
    open_: dict[Any, tuple[int, dict[str, Any]]] = {}
    planned: list[Planned] = []
    for position, op in enumerate(history):
        if op["type"] == "invoke":
            open_[op["process"]] = (position, op)
            continue
        call, invoke = open_.pop(op["process"])
        planned.append(_planned(invoke, op, call, position, keyed, ref))
    for call, invoke in open_.values():
        planned.append(_planned(invoke, None, call, None, keyed, ref))
    return [op for op in planned if op is not None]


def _planned(invoke, completion, call, position, keyed, ref) -> Planned | None:
    outcome = "info" if completion is None else completion["type"]
    error = None if completion is None else completion.get("error")
    value = invoke["value"]
    if outcome == "ok" and completion.get("value") is not None:
        value = completion["value"]
    key = None
    if keyed:
        key = invoke["value"][0]
        inner = invoke["value"][1]
        if outcome == "ok" and completion["value"][1] is not None:
            inner = completion["value"][1]
        value = inner
    if outcome == "fail" and not ref.observes(invoke["f"], error):
        return None  # never happened
    must = outcome in ("ok", "fail")
    return Planned(invoke["f"], value, outcome, error, call, position if must else None, key)


def brute_force(model: str, history: list[dict[str, Any]], keyed: bool, absent: bool) -> bool:
    ref = REFERENCE[model]
    ops = operations_of(history, keyed, ref)
    groups: list[list[Planned]] = []
    for op in ops:
        for group in groups:
            if clj_eq(group[0].key, op.key):
                group.append(op)
                break
        else:
            groups.append([op])
    return all(_some_order(ref, group, absent) for group in groups)


def _some_order(ref: Reference, ops: list[Planned], absent: bool) -> bool:
    """Is there an order of the ops (every must op, any info op) that real time allows and
    the reference accepts? Tries every permutation real time allows, depth first."""

    def placeable(j: int, placed: frozenset[int]) -> bool:
        return all(
            i in placed or i == j or ops[i].ret is None or ops[i].ret > ops[j].call
            for i in range(len(ops))
        )

    def extend(placed: frozenset[int], state: Any) -> bool:
        if all(i in placed or ops[i].ret is None for i in range(len(ops))):
            return True
        for j in range(len(ops)):
            if j in placed or not placeable(j, placed):
                continue
            op = ops[j]
            holds, after = ref.step(state, op.f, op.value, op.outcome, op.error, absent)
            if holds and extend(placed | {j}, after):
                return True
        return False

    return extend(frozenset(), ref.initial)


# ----------------------------------------------------------------------------- generators

MIXED = [None, True, False, 0, 1, 1.0, 2]
STRINGS = ["", "x", "y", "xy", "yx", "xx"]


@st.composite
def timelines(draw: Any, ops: list[tuple[str, Any, Any, bool]]) -> list[dict[str, Any]]:
    """Invokes and completions of ``ops`` (f, invoke value, ok value, may fail observably),
    each on its own process, at random overlapping times; some time out (info) or never
    complete, some fail."""
    events: list[tuple[int, int, dict[str, Any]]] = []
    for process, (f, invoke_value, ok_value, cas_like) in enumerate(ops):
        start = draw(st.integers(0, 12))
        end = start + draw(st.integers(1, 8))
        events.append(
            (2 * start, 0, {"process": process, "type": "invoke", "f": f, "value": invoke_value})
        )
        fate = draw(st.sampled_from(["ok"] * 6 + ["info", "never", "fail"]))
        if fate == "never":
            continue
        completion: dict[str, Any] = {"process": process, "type": fate, "f": f}
        if fate == "ok":
            completion["value"] = ok_value
        else:
            completion["value"] = invoke_value
            if fate == "fail":
                choices = ["cas_mismatch", "not_found"] if cas_like else ["failed"]
                completion["error"] = draw(st.sampled_from(choices))
            else:
                completion["error"] = "timeout"
        events.append((2 * end + 1, 1, completion))
    events.sort(key=lambda event: (event[0], event[1]))
    return [{**event, "index": index, "time": index} for index, (_, _, event) in enumerate(events)]


def _register_ops(draw: Any, *, cas: bool, keys: list[Any] | None) -> list[tuple]:
    ops = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["read", "read", "write"] + (["cas"] if cas else [])))
        value = draw(st.sampled_from(MIXED[1:] if kind == "write" else MIXED))
        if kind == "read":
            entry = ("read", None, value, False)
        elif kind == "write":
            entry = ("write", value, value, False)
        else:
            pair = [draw(st.sampled_from(MIXED)), draw(st.sampled_from(MIXED[1:]))]
            entry = ("cas", pair, pair, True)
        if keys is not None:
            key = draw(st.sampled_from(keys))
            f, invoke_value, ok_value, cas_like = entry
            entry = (f, [key, invoke_value], [key, ok_value], cas_like)
        ops.append(entry)
    return ops


@st.composite
def histories(draw: Any, model: str) -> tuple[list[dict[str, Any]], bool]:
    """(history, keyed) for ``model``."""
    keyed = False
    if model in ("register", "cas-register", "etcd"):
        keyed = model != "etcd" and draw(st.booleans())
        keys = [0, 1, True] if keyed else None
        ops = _register_ops(draw, cas=model != "register", keys=keys)
    elif model == "kv":
        ops = []
        for _ in range(draw(st.integers(1, 6))):
            key = draw(st.sampled_from(["a", "b"]))
            kind = draw(st.sampled_from(["get", "get", "put", "append"]))
            if kind == "get":
                seen = draw(st.sampled_from([None, *STRINGS, True, 1, 1.0, []]))
                ops.append(("get", [key, None], [key, seen], False))
            else:
                v = draw(st.sampled_from(["x", "y", "x", True, 1, 1.0]))
                ops.append((kind, [key, v], [key, v], False))
    elif model == "multi-register":
        ops = []
        for _ in range(draw(st.integers(1, 5))):
            txn_in, txn_out = [], []
            for _ in range(draw(st.integers(1, 3))):
                key = draw(st.sampled_from(["x", "y", "z"]))
                if draw(st.booleans()):
                    txn_in.append(["read", key, None])
                    txn_out.append(["read", key, draw(st.sampled_from(MIXED))])
                else:
                    v = draw(st.sampled_from(MIXED[1:]))
                    txn_in.append(["write", key, v])
                    txn_out.append(["write", key, v])
            ops.append(("txn", txn_in, txn_out, False))
    elif model == "set":
        ops = []
        for _ in range(draw(st.integers(1, 6))):
            if draw(st.booleans()):
                seen = draw(
                    st.one_of(st.none(), st.lists(st.sampled_from([True, 1, 1.0, 2]), max_size=3))
                )
                ops.append(("read", None, seen, False))
            else:
                v = draw(st.sampled_from([True, 1, 1.0, 2]))
                ops.append(("add", v, v, False))
    elif model == "counter":
        ops = []
        for _ in range(draw(st.integers(1, 6))):
            if draw(st.booleans()):
                ops.append(
                    ("read", None, draw(st.sampled_from([None, 0, 1, 1.0, 2, 2.0, 3])), False)
                )
            else:
                n = draw(st.sampled_from([1, 1, 1.0, 2, -1]))
                ops.append(("add", n, n, False))
    elif model == "list-append":
        keyed = True
        ops = []
        counter = 0
        for _ in range(draw(st.integers(1, 6))):
            key = draw(st.sampled_from(["k", "j"]))
            if draw(st.booleans()):
                seen = draw(st.one_of(st.none(), st.lists(st.sampled_from([0, 1, 2]), max_size=3)))
                ops.append(("read", [key, None], [key, seen], False))
            else:
                ops.append(("append", [key, counter], [key, counter], False))
                counter += 1
    elif model in ("fifo-queue", "unordered-queue"):
        ops = []
        for _ in range(draw(st.integers(1, 6))):
            if draw(st.booleans()):
                v = draw(st.sampled_from([True, 1, 1.0, 2]))
                ops.append(("enqueue", v, v, False))
            else:
                ops.append(("dequeue", None, draw(st.sampled_from([True, 1, 1.0, 2])), False))
    elif model == "mutex":
        ops = [
            (draw(st.sampled_from(["acquire", "release"])), None, None, False)
            for _ in range(draw(st.integers(1, 6)))
        ]
    else:  # pragma: no cover - every model above
        raise AssertionError(model)
    return draw(timelines(ops)), keyed


# ----------------------------------------------------------------------------- the tests

MODELS = list(REFERENCE)


def _model(name: str, nil_read: str) -> Any:
    return ListAppendModel(nil_read=nil_read) if name == "list-append" else name


@pytest.mark.parametrize("model", MODELS)
@DIFFERENTIAL
@given(data=st.data())
def test_every_pruning_agrees_with_the_brute_force(model: str, data: Any) -> None:
    history, keyed = data.draw(histories(model))
    independent = True if keyed else None
    ops = [op_from_mapping(op, position=position) for position, op in enumerate(history)]
    for nil_read in NIL_READS:
        expected = brute_force(model, history, keyed, nil_read == "absent")
        plain = check_plain(
            ops, _model(model, nil_read), nil_read=nil_read, independent=independent
        )
        assert plain["valid"] is expected, ("plain", nil_read, history)
        for label, prunings in CONFIGURATIONS:
            result = check(
                ops,
                _model(model, nil_read),
                nil_read=nil_read,
                prunings=prunings,
                independent=independent,
                explain=prunings is None,  # explained once: verdicts are what differ
            )
            assert result["valid"] is expected, (label, nil_read, history, result)
            assert result["nil_read"] == nil_read


def test_the_generators_make_both_verdicts_and_every_kind_of_op() -> None:
    """A differential test whose histories are all valid (or all invalid) tests little."""
    seen: dict[str, set[Any]] = {}

    def sample(model: str) -> None:
        tags = seen.setdefault(model, set())

        @settings(max_examples=40, deadline=None, derandomize=True, database=None)
        @given(data=st.data())
        def draw_one(data: Any) -> None:
            history, keyed = data.draw(histories(model))
            tags.add(brute_force(model, history, keyed, True))
            for op in history:
                tags.add(op["type"])
                value = op.get("value")
                keyed_value = keyed or op["f"] == "get"
                inner = value[1] if keyed_value and isinstance(value, list) else value
                if op["type"] == "ok" and inner is None and op["f"] in ("read", "get"):
                    tags.add("nil read")

        draw_one()

    for model in MODELS:
        sample(model)
    for model in ("register", "cas-register", "kv", "counter"):
        assert {True, False, "info", "fail", "nil read"} <= seen[model], (model, seen[model])
    for model in MODELS:
        assert {True, False, "info"} <= seen[model], (model, seen[model])


@pytest.mark.parametrize(
    ("model", "history", "absent", "expected"),
    [
        # Defect 1: a read of nil after a write, strictly later.
        ("cas-register", [("write", 3, 3), ("read", None, None)], True, False),
        ("cas-register", [("write", 3, 3), ("read", None, None)], False, True),
        # Defect 2: Clojure equality.
        ("register", [("write", True, True), ("read", None, 1)], True, False),
        ("register", [("write", 1, 1), ("read", None, 1.0)], True, False),
        ("register", [("write", 1, 1), ("read", None, 1)], True, True),
        ("set", [("add", True, True), ("add", 1, 1), ("read", None, [1, True])], True, True),
        ("set", [("add", True, True), ("read", None, [1])], True, False),
    ],
)
def test_the_oracle_itself_knows_the_defects(
    model: str, history: list[tuple[str, Any, Any]], absent: bool, expected: bool
) -> None:
    """Sequential histories: the brute force says what Knossos/Porcupine would."""
    ops: list[dict[str, Any]] = []
    for process, (f, invoke_value, ok_value) in enumerate(history):
        ops.append({"process": process, "type": "invoke", "f": f, "value": invoke_value})
        ops.append({"process": process, "type": "ok", "f": f, "value": ok_value})
    for index, op in enumerate(ops):
        op["index"] = op["time"] = index
    assert brute_force(model, ops, False, absent) is expected
    nil_read = "absent" if absent else "unknown"
    assert check(ops, model, nil_read=nil_read)["valid"] is expected
    assert check_plain(ops, model, nil_read=nil_read)["valid"] is expected


# ----------------------------------------------------------------------------- unseen writes
# Pruning "unseen-writes" only acts on register histories whose writes leave values no read
# and no cas observes; the generator above makes few of those. This one makes mostly
# writes of distinct values (distinct under Clojure's =: 1, True and 1.0 are three) and
# few reads and cas, each of a written value, nil, or a value equal under Python's == only.

UNSEEN_VALUES = [1, 2, 3, True, 1.0, "a", 0, False]


@st.composite
def unseen_write_histories(draw: Any) -> tuple[str, list[dict[str, Any]], bool]:
    """(model, history, keyed): writes most of which no op observes."""
    model = draw(st.sampled_from(["register", "cas-register"]))
    keyed = draw(st.booleans())
    values = draw(st.permutations(UNSEEN_VALUES))
    written: list[Any] = []
    ops: list[tuple[str, Any, Any, bool]] = []
    kinds = ["write"] * 4 + ["read"] * 2 + (["cas"] * 2 if model == "cas-register" else [])
    for _ in range(draw(st.integers(2, 7))):
        kind = draw(st.sampled_from(kinds))
        if kind == "write" or not written:
            value = values[len(written) % len(values)]
            written.append(value)
            entry: tuple[str, Any, Any, bool] = ("write", value, value, False)
        elif kind == "read":
            seen = draw(st.sampled_from([None, 1, *written]))
            entry = ("read", None, seen, False)
        else:
            value = values[len(written) % len(values)]
            written.append(value)
            pair = [draw(st.sampled_from([None, True, *written[:-1]])), value]
            entry = ("cas", pair, pair, True)
        if keyed:
            key = draw(st.sampled_from([0, 1]))
            f, invoke_value, ok_value, cas_like = entry
            entry = (f, [key, invoke_value], [key, ok_value], cas_like)
        ops.append(entry)
    return model, draw(timelines(ops)), keyed


WITHOUT_UNSEEN = tuple(name for name in PRUNINGS if name != "unseen-writes")


@settings(
    max_examples=3 * EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(drawn=unseen_write_histories())
def test_unseen_writes_agree_with_the_brute_force(drawn: Any) -> None:
    """The pruning alone, with every other one, and every other one without it."""
    model, history, keyed = drawn
    independent = True if keyed else None
    ops = [op_from_mapping(op, position=position) for position, op in enumerate(history)]
    for nil_read in NIL_READS:
        expected = brute_force(model, history, keyed, nil_read == "absent")
        plain = check_plain(ops, model, nil_read=nil_read, independent=independent)
        assert plain["valid"] is expected, ("plain", nil_read, history)
        for prunings in (None, ("unseen-writes",), WITHOUT_UNSEEN):
            result = check(
                ops, model, nil_read=nil_read, prunings=prunings, independent=independent
            )
            assert result["valid"] is expected, (prunings, nil_read, history, result)


def test_the_unseen_write_generator_makes_what_the_pruning_acts_on() -> None:
    """Both verdicts, info and failed ops, and ok writes that no op observes."""
    tags: set[Any] = set()

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(drawn=unseen_write_histories())
    def draw_one(drawn: Any) -> None:
        model, history, keyed = drawn
        tags.add(brute_force(model, history, keyed, True))
        observed = []
        for op in history:
            tags.add(op["type"])
            value = op["value"][1] if keyed else op["value"]
            if op["f"] == "read" and op["type"] == "ok":
                observed.append(value)
            if op["f"] == "cas":
                observed.append(value[0])
        for op in history:
            value = op["value"][1] if keyed else op["value"]
            if op["f"] == "write" and op["type"] == "ok":
                if not any(clj_eq(value, seen) for seen in observed):
                    tags.add("unseen ok write")

    draw_one()
    assert {True, False, "info", "fail", "unseen ok write"} <= tags, tags


def _sequenced(rows: list[tuple[int, str, int, str, Any]]) -> list[dict[str, Any]]:
    """(time, type, process, f, value) rows, in time order, as op maps."""
    rows = sorted(rows, key=lambda row: row[0])
    return [
        {"index": index, "time": at, "type": type_, "process": process, "f": f, "value": value}
        for index, (at, type_, process, f, value) in enumerate(rows)
    ]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # The unseen write 5 can only go just before write 2 (taken along by it): after
        # its own return a read of 2 follows that no write precedes.
        (
            [
                (0, "invoke", 0, "write", 5), (100, "ok", 0, "write", 5),
                (10, "invoke", 1, "write", 2), (20, "ok", 1, "write", 2),
                (30, "invoke", 2, "read", None), (40, "ok", 2, "read", 2),
                (150, "invoke", 2, "read", None), (160, "ok", 2, "read", 2),
            ],
            True,
        ),
        # Nothing can take the unseen write 5 along before the read of 1 that follows it.
        (
            [
                (0, "invoke", 0, "write", 1), (10, "ok", 0, "write", 1),
                (20, "invoke", 1, "write", 5), (30, "ok", 1, "write", 5),
                (40, "invoke", 2, "read", None), (50, "ok", 2, "read", 1),
            ],
            False,
        ),
        # The same, but an info write of 1 may come after it.
        (
            [
                (0, "invoke", 0, "write", 1), (10, "ok", 0, "write", 1),
                (20, "invoke", 1, "write", 5), (30, "ok", 1, "write", 5),
                (25, "invoke", 3, "write", 1), (26, "info", 3, "write", 1),
                (40, "invoke", 2, "read", None), (50, "ok", 2, "read", 1),
            ],
            True,
        ),
        # An info write of an unseen value (never tried) cannot hide a stale read.
        (
            [
                (0, "invoke", 0, "write", 1), (10, "ok", 0, "write", 1),
                (5, "invoke", 3, "write", 7), (6, "info", 3, "write", 7),
                (20, "invoke", 1, "write", 5), (30, "ok", 1, "write", 5),
                (40, "invoke", 2, "read", None), (50, "ok", 2, "read", 1),
            ],
            False,
        ),
    ],
)
def test_unseen_writes_pinned(rows: list[tuple[int, str, int, str, Any]], expected: bool) -> None:
    history = _sequenced(rows)
    ops = [op_from_mapping(op, position=position) for position, op in enumerate(history)]
    assert brute_force("cas-register", history, False, True) is expected
    for prunings in (None, ("unseen-writes",), ()):
        assert check(ops, "cas-register", prunings=prunings)["valid"] is expected, prunings


def test_concurrent_unseen_writes_are_not_ordered_every_way() -> None:
    """30 concurrent writes no read sees, then a write and a read it cannot explain: a
    handful of configurations with the pruning, beyond 20,000 (subsets of the 30, in
    search of one that helps) without it. The refutation of impossible reads is left
    off, so that the search has to find the violation."""
    rows: list[tuple[int, str, int, str, Any]] = []
    for process in range(30):
        rows.append((process, "invoke", process, "write", process + 1))
        rows.append((100 + process, "ok", process, "write", process + 1))
    rows += [(200, "invoke", 30, "write", 100), (201, "ok", 30, "write", 100)]
    rows += [(202, "invoke", 31, "read", None), (203, "ok", 31, "read", 99)]
    ops = [op_from_mapping(op, position=p) for p, op in enumerate(_sequenced(rows))]
    searching = tuple(name for name in PRUNINGS if name != "impossible-reads")
    pruned = check(ops, "cas-register", prunings=searching)
    assert pruned["valid"] is False
    assert pruned["configs"] < 100
    without = tuple(name for name in searching if name != "unseen-writes")
    assert check(ops, "cas-register", prunings=without, max_configs=20_000)["valid"] == "unknown"
