"""The anomaly in words: checker results turned into a few lines a person reads first.

``raftlab test``, ``raftlab sim`` and ``raftlab check`` end an invalid run with these
lines, the JUnit failure message is the first of them, and the report opens on them.
Every sentence states only what the result (and, when given, the history) proves:

- A linearizability failure whose culprit is a read is called a **stale read** only when
  the history holds a proof that needs no search: every write that could have produced
  the value read (a ``write`` of it, or a ``cas`` to it, acknowledged or not) completed
  before some acknowledged *witness* began that saw or left another value (a write or cas
  of another value, or a read of another value), and that witness completed before the
  read began. Real-time order (Herlihy & Wing §3) puts the witness after that writer and
  before the read in every linearization; so if the read saw the value, some writer of it
  would have to come after its own witness and before the read — but each writer's
  witness follows it, a contradiction for the last one. The read is stale. A read of a value no operation ever wrote is a **read of a value never
  written**; one whose every possible writer began after the read returned is a **read
  from the future**. For a list-append register (state: the appended elements in order;
  a read must return exactly that list), a read is a **lost append** when it misses an
  element whose append was acknowledged before the read began (lists only grow), and a
  **duplicated append** when it holds an element more often than any operation tried to
  append it. Anything else is named as the checker found it: no order of the
  concurrent operations explains the culprit, with the states the model could be in.
- The set, bank and simulation checkers' results are read field by field (lost,
  unexpected, duplicated elements; a wrong total; two leaders in one term; no write
  committed under a partition that left a majority).

This module reads plain result maps (results.json, or one checker's result) and ops as
`checker.op.Op` or conventions §1 maps; like all of ``checker/`` it imports nothing else
of raftlab's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NEMESIS = "nemesis"
MAX_ANOMALIES = 3


@dataclass(slots=True, frozen=True)
class Anomaly:
    """One anomaly: which checker, Jepsen-style kind, one line in words, and where."""

    checker: str
    kind: str  # "stale-read", "lost-write", "wrong-total", "unknown", ...
    text: str  # one line, starting with the kind in words
    key: Any = None
    ops: tuple[int, ...] = ()  # history indexes of the ops involved (culprit first)

    def line(self) -> str:
        return f"{self.text} [{self.checker}]"


# --------------------------------------------------------------------------- helpers


def _field(op: Any, name: str, default: Any = None) -> Any:
    if isinstance(op, Mapping):
        return op.get(name, default)
    return getattr(op, name, default)


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=repr, separators=(", ", ": "))
    except (TypeError, ValueError):
        return repr(value)


def _short(value: Any, limit: int = 60) -> str:
    text = _json(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def seconds(time_ns: Any) -> str:
    """History time (ns since the run started) as '12.314 s'."""
    if not isinstance(time_ns, int | float) or isinstance(time_ns, bool):
        return "?"
    return f"{time_ns / 1e9:.3f} s"


def _same(a: Any, b: Any) -> bool:
    """Equality across a JSON round trip (tuples became lists)."""
    return _canonical(a) == _canonical(b)


def _canonical(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_canonical(item) for item in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _canonical(v)) for k, v in value.items()))
    return value


@dataclass(slots=True)
class _Pair:
    """An invocation and its completion on one process (Knossos' pairing, lenient)."""

    index: int
    process: Any
    f: str
    type: str  # ok, fail or info (info also for an invoke that never completed)
    value: Any  # the completion's value for ok, else the invocation's
    invoke_time: int
    complete_time: float  # math.inf when the outcome is unknown (info)


def _pairs(ops: Iterable[Any]) -> list[_Pair]:
    pairs: list[_Pair] = []
    open_: dict[Any, tuple[Any, int]] = {}
    for op in ops:
        process = _field(op, "process")
        if process == NEMESIS:
            continue
        kind = _field(op, "type")
        if kind == "invoke":
            open_[process] = (op, len(pairs))
            pairs.append(
                _Pair(
                    index=int(_field(op, "index", 0)),
                    process=process,
                    f=str(_field(op, "f")),
                    type="info",
                    value=_field(op, "value"),
                    invoke_time=int(_field(op, "time", 0) or 0),
                    complete_time=math.inf,
                )
            )
            continue
        found = open_.pop(process, None)
        if found is None:
            continue
        pair = pairs[found[1]]
        pair.type = str(kind)
        if kind == "ok":
            completed = _field(op, "value")
            if completed is not None:
                pair.value = completed
            pair.complete_time = int(_field(op, "time", 0) or 0)
        elif kind == "fail":
            pair.complete_time = int(_field(op, "time", 0) or 0)
    return pairs


def _split_key(value: Any, keyed: bool) -> tuple[Any, Any]:
    if keyed and isinstance(value, list | tuple) and len(value) == 2:
        return value[0], value[1]
    return None, value


# ------------------------------------------------------------------ linearizability


def _failures(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The violations of a linearizability result (checker.linearizable's shapes)."""
    failures = result.get("failures")
    if isinstance(failures, list) and failures:
        return [f for f in failures if isinstance(f, Mapping)]
    if isinstance(result.get("op"), Mapping):
        return [result]
    inner = result.get("result")  # `raftlab check --out`'s document
    if isinstance(inner, Mapping) and inner is not result:
        return _failures(inner)
    return []


def _writers_of(value: Any, pairs: Sequence[_Pair]) -> list[_Pair]:
    """Ops that may have put `value` in the register: a write of it, a cas to it (ok or info)."""
    found = []
    for pair in pairs:
        if pair.type == "fail":
            continue
        if pair.f == "write" and _same(pair.value, value):
            found.append(pair)
        elif (
            pair.f == "cas"
            and isinstance(pair.value, list | tuple)
            and len(pair.value) == 2
            and _same(pair.value[1], value)
        ):
            found.append(pair)
    return found


def _witness(pair: _Pair, value: Any) -> bool:
    """An acknowledged op that certainly saw or left the register holding another value.

    A read of nil is not one: in the cas-register model it constrains nothing.
    """
    if pair.type != "ok":
        return False
    if pair.f == "write":
        return not _same(pair.value, value)
    if pair.f == "read":
        return pair.value is not None and not _same(pair.value, value)
    if pair.f == "cas" and isinstance(pair.value, list | tuple) and len(pair.value) == 2:
        return not _same(pair.value[1], value)
    return False


def _what(pair: _Pair) -> str:
    if pair.f == "cas" and isinstance(pair.value, list | tuple) and len(pair.value) == 2:
        return f"cas from {_short(pair.value[0])} to {_short(pair.value[1])}"
    return f"{pair.f} of {_short(pair.value)}"


def _on_key(pairs: Sequence[_Pair], key: Any, keyed: bool) -> list[_Pair]:
    """The ops of one key, their values without the key."""
    on_key: list[_Pair] = []
    for pair in pairs:
        pair_key, inner = _split_key(pair.value, keyed)
        if keyed and not _same(pair_key, key):
            continue
        on_key.append(
            _Pair(
                pair.index,
                pair.process,
                pair.f,
                pair.type,
                inner,
                pair.invoke_time,
                pair.complete_time,
            )
        )
    return on_key


def _list_read(
    culprit: Mapping[str, Any], key: Any, keyed: bool, pairs: Sequence[_Pair]
) -> tuple[str, str, tuple[int, ...]] | None:
    """Name a list-append read culprit: a lost, duplicated or never-appended element."""
    value = culprit.get("value")
    read_start = culprit.get("invoke_time")
    if not isinstance(value, list | tuple) or not isinstance(read_start, int):
        return None
    on_key = _on_key(pairs, key, keyed)
    appends: dict[Any, list[_Pair]] = {}
    for pair in on_key:
        if pair.f == "append" and pair.type != "fail":
            appends.setdefault(_canonical(pair.value), []).append(pair)
    where = f" from key {_short(key)}" if keyed else ""
    index = int(culprit.get("index", -1))
    who = (
        f"process {culprit.get('process')} read a list of {len(value)} elements{where} "
        f"at {seconds(read_start)}"
    )
    counts: dict[Any, int] = {}
    for element in value:
        counts[_canonical(element)] = counts.get(_canonical(element), 0) + 1
    for element in value:
        tries = appends.get(_canonical(element), [])
        if not tries:
            return (
                "read of a value never written",
                f"{who} holding {_short(element)}, which no operation appended",
                (index,),
            )
        times = counts[_canonical(element)]
        if times > len(tries):
            return (
                "duplicated append",
                f"{who} in which {_short(element)} appears {times} times, but it was appended "
                f"once (by process {tries[0].process}, {tries[0].type})"
                if len(tries) == 1
                else f"{who} in which {_short(element)} appears {times} times, but only "
                f"{len(tries)} appends of it were tried",
                (index, *(t.index for t in tries)),
            )
    present = set(counts)
    lost = [
        pair
        for pair in on_key
        if pair.f == "append"
        and pair.type == "ok"
        and pair.complete_time < read_start
        and _canonical(pair.value) not in present
    ]
    if lost:
        first = min(lost, key=lambda pair: pair.complete_time)
        more = f" (and {len(lost) - 1} more acknowledged appends)" if len(lost) > 1 else ""
        return (
            "lost append",
            f"{who} without {_short(first.value)}, whose append by process {first.process} "
            f"was acknowledged at {seconds(first.complete_time)}{more}",
            (index, first.index),
        )
    return None


def _register_read(
    culprit: Mapping[str, Any], key: Any, keyed: bool, pairs: Sequence[_Pair]
) -> tuple[str, str, tuple[int, ...]] | None:
    """Name a read culprit from the history of its key (see the module's proof rule)."""
    on_key = _on_key(pairs, key, keyed)
    value = culprit.get("value")
    read_start = culprit.get("invoke_time")
    read_end = culprit.get("complete_time")
    if not isinstance(read_start, int) or value is None:
        return None
    where = f" from key {_short(key)}" if keyed else ""
    who = f"process {culprit.get('process')} read {_short(value)}{where} at {seconds(read_start)}"
    writers = _writers_of(value, on_key)
    if not writers:
        return (
            "read of a value never written",
            f"{who}, but no operation ever wrote {_short(value)}{where}",
            (int(culprit.get("index", -1)),),
        )
    if isinstance(read_end, int) and all(w.invoke_time > read_end for w in writers):
        first = min(writers, key=lambda w: w.invoke_time)
        return (
            "read from the future",
            f"{who}, but {_short(value)} was first written by process {first.process} "
            f"at {seconds(first.invoke_time)}, after the read returned",
            (int(culprit.get("index", -1)), first.index),
        )
    # The proof of staleness: each possible writer is followed, in real time, by an
    # acknowledged witness of another value that finished before the read began.
    witnesses: list[tuple[_Pair, _Pair]] = []
    for writer in writers:
        later = [
            other
            for other in on_key
            if _witness(other, value)
            and other.invoke_time > writer.complete_time
            and other.complete_time < read_start
        ]
        if not later:
            return None
        # A write says it most plainly; else the latest read of another value.
        writes = [other for other in later if other.f != "read"]
        witnesses.append((writer, max(writes or later, key=lambda other: other.complete_time)))
    writer, witness = max(witnesses, key=lambda item: item[0].complete_time)
    written = (
        f"after {_short(value)} was written (by process {writer.process}, acknowledged "
        f"at {seconds(writer.complete_time)})"
    )
    if witness.f == "read":
        but = (
            f"but process {witness.process} had already read {_short(witness.value)} "
            f"at {seconds(witness.invoke_time)[:-2]}–{seconds(witness.complete_time)}, {written}"
        )
    else:
        but = (
            f"but the {_what(witness)} by process {witness.process} was acknowledged "
            f"at {seconds(witness.complete_time)}, {written}"
        )
    return (
        "stale read",
        f"{who}, {but}",
        (int(culprit.get("index", -1)), witness.index, writer.index),
    )


def _states_text(failure: Mapping[str, Any]) -> str:
    states = failure.get("states")
    if not isinstance(states, list) or not states:
        return ""
    shown = ", ".join(_short(state, 30) for state in states[:5])
    more = f" and {len(states) - 5} more" if len(states) > 5 else ""
    return f"; the model could only be in state {shown}{more} there"


def _linearizability_anomaly(
    checker: str, result: Mapping[str, Any], failure: Mapping[str, Any], pairs: Sequence[_Pair]
) -> Anomaly:
    culprit = failure.get("op") if isinstance(failure.get("op"), Mapping) else None
    key = failure.get("key")
    keyed = key is not None
    if culprit is None:
        where = f" on key {_short(key)}" if keyed else ""
        return Anomaly(
            checker,
            "not-linearizable",
            f"not linearizable{where}: no order of the operations fits the model"
            + _states_text(failure),
            key=key,
        )
    index = int(culprit.get("index", -1))
    f = culprit.get("f")
    model = str(result.get("model", ""))
    named = None
    if f == "read" and pairs and model in ("cas-register", "register", ""):
        named = _register_read(culprit, key, keyed, pairs)
    elif f == "read" and pairs and model == "list-append":
        named = _list_read(culprit, key, keyed, pairs)
    if named is not None:
        kind, text, involved = named
        return Anomaly(checker, kind.replace(" ", "-"), f"{kind}: {text}", key, involved)
    where = f" on key {_short(key)}" if keyed else ""
    start, end = culprit.get("invoke_time"), culprit.get("complete_time")
    span = seconds(start) if end is None else f"{seconds(start)[:-2]}–{seconds(end)}"
    outcome = culprit.get("type")
    if f == "read":
        act = f"read {_short(culprit.get('value'))}"
    elif f == "cas" and isinstance(culprit.get("value"), list | tuple):
        expected, new = (list(culprit["value"]) + [None, None])[:2]
        act = f"cas from {_short(expected)} to {_short(new)}"
    else:
        act = f"{f} {_short(culprit.get('value'))}"
    status = "" if outcome in (None, "ok") else f" ({outcome})"
    return Anomaly(
        checker,
        "not-linearizable",
        f"not linearizable: process {culprit.get('process')}'s {act}{where}{status} "
        f"({span}) fits no order of the operations concurrent with it" + _states_text(failure),
        key=key,
        ops=(index,),
    )


# ----------------------------------------------------------------------- other checkers


def _examples(result: Mapping[str, Any], name: str) -> str:
    examples = result.get(name)
    if isinstance(examples, list) and examples:
        shown = ", ".join(_short(item, 20) for item in examples[:5])
        return f" (e.g. {shown})"
    return ""


def _set_anomalies(checker: str, result: Mapping[str, Any]) -> list[Anomaly]:
    found: list[Anomaly] = []
    for name, kind, words in (
        ("lost", "lost-write", "acknowledged adds missing from the final reads"),
        ("unexpected", "unexpected-element", "elements read that no add attempted"),
        ("failed_present", "failed-add-present", "adds that failed definitely yet are present"),
        ("duplicated", "duplicated-element", "elements present more than once"),
    ):
        count = result.get(f"{name}_count")
        if isinstance(count, int) and count > 0:
            text = f"{kind.replace('-', ' ')}: {count} {words}{_examples(result, name)}"
            found.append(Anomaly(checker, kind, text))
    return found


def _time_of(index: Any, pairs: Sequence[_Pair]) -> str:
    for pair in pairs:
        if pair.index == index:
            return f" at {seconds(pair.invoke_time)}"
    return ""


def _bank_anomalies(
    checker: str, result: Mapping[str, Any], pairs: Sequence[_Pair]
) -> list[Anomaly]:
    bad = result.get("first_bad_reads")
    if not isinstance(bad, list) or not bad or not isinstance(bad[0], Mapping):
        return []
    first = bad[0]
    problems = "; ".join(str(p) for p in first.get("problems") or []) or "invariant broken"
    count = result.get("bad_read_count", len(bad))
    more = f" ({count} bad reads in all)" if isinstance(count, int) and count > 1 else ""
    kind = "wrong-total" if "total" in problems else "bad-read"
    text = (
        f"{kind.replace('-', ' ')}: process {first.get('process')}'s read of all balances"
        f"{_time_of(first.get('index'), pairs)} saw {problems}{more}"
    )
    index = first.get("index")
    return [Anomaly(checker, kind, text, ops=(index,) if isinstance(index, int) else ())]


def _election_anomalies(checker: str, result: Mapping[str, Any]) -> list[Anomaly]:
    terms = result.get("terms")
    if not isinstance(terms, Mapping) or not terms:
        return []
    term, nodes = next(iter(terms.items()))
    names = " and ".join(str(n) for n in nodes) if isinstance(nodes, list) else str(nodes)
    more = f" ({len(terms)} terms in all)" if len(terms) > 1 else ""
    return [
        Anomaly(
            checker,
            "two-leaders",
            f"two leaders in one term: term {term} had leaders {names}{more} "
            "(Election Safety, Raft Figure 3)",
        )
    ]


def _elle_anomalies(checker: str, result: Mapping[str, Any], limit: int) -> list[Anomaly]:
    """Elle's anomalies (checker.elle): the first case of each kind, its cycle and every
    edge in words (``G-single: T3 → T4 → T3: T3 read x = [] without ...; ...``)."""
    found: list[Anomaly] = []
    for kind in result.get("anomaly-types") or []:
        cases = result["anomalies"].get(kind)
        case = cases[0] if isinstance(cases, list) and cases else None
        if not isinstance(case, Mapping):
            continue
        steps = [step for step in case.get("steps") or [] if isinstance(step, Mapping)]
        if steps:
            cycle = " → ".join(str(name) for name in case.get("cycle") or [])
            words = "; ".join(str(step.get("text", "")) for step in steps)
            text = f"{kind}: {cycle}: {words}" if cycle else f"{kind}: {words}"
        else:
            text = f"{kind}: {case.get('text') or _short_json(case)}"
        found.append(Anomaly(checker, str(kind), text))
    return found[:limit]


def _short_json(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _availability_anomalies(checker: str, result: Mapping[str, Any]) -> list[Anomaly]:
    windows = result.get("windows")
    if not isinstance(windows, list) or not windows or not isinstance(windows[0], Mapping):
        return []
    first = windows[0]
    start, stop = first.get("fault_start_s"), first.get("fault_stop_s")
    span = (
        f"{start:.3f}–{stop:.3f} s"
        if isinstance(start, int | float) and isinstance(stop, int | float)
        else "?"
    )
    return [
        Anomaly(
            checker,
            "unavailable",
            f"unavailable: {result.get('error', 'no write committed')} ({span}, "
            f"grudges {_short(first.get('grudges'), 80)})",
        )
    ]


def _generic_text(result: Mapping[str, Any]) -> str | None:
    for name in ("explanation", "error", "reason", "message"):
        text = result.get(name)
        if isinstance(text, str) and text.strip():
            return " ".join(text.split())
    return None


# --------------------------------------------------------------------------- public API


def checker_results(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """{checker name: result} from a results.json document or one checker's result."""
    checkers = results.get("checkers")
    if isinstance(checkers, Mapping) and checkers:
        return {str(name): part for name, part in checkers.items() if isinstance(part, Mapping)}
    inner = results.get("result")
    if isinstance(inner, Mapping) and "valid" in inner:  # `raftlab check --out`'s document
        return {"linearizable": inner}
    return {"linearizable" if _failures(results) else "checker": results}


def describe(
    results: Mapping[str, Any],
    ops: Iterable[Any] | None = None,
    *,
    limit: int = MAX_ANOMALIES,
) -> list[Anomaly]:
    """The anomalies of every checker that did not say `true`, worst first (false, then
    unknown), at most `limit` per checker. `ops` (the history) lets a linearizability
    failure be named precisely (a stale read and the write it missed)."""
    pairs = _pairs(ops) if ops is not None else []
    invalid: list[Anomaly] = []
    unknown: list[Anomaly] = []
    for name, result in checker_results(results).items():
        valid = result.get("valid")
        if valid is True:
            continue
        if valid is not False:
            reason = _generic_text(result) or "the checker could not decide"
            unknown.append(Anomaly(name, "unknown", f"undecided: {reason}"))
            continue
        found: list[Anomaly] = []
        failures = _failures(result)
        if failures:
            found = [_linearizability_anomaly(name, result, f, pairs) for f in failures[:limit]]
            if len(failures) > limit:
                found.append(
                    Anomaly(name, "more", f"and {len(failures) - limit} more keys not linearizable")
                )
        elif any(f"{n}_count" in result for n in ("lost", "unexpected", "duplicated")):
            found = _set_anomalies(name, result)
        elif "first_bad_reads" in result:
            found = _bank_anomalies(name, result, pairs)
        elif isinstance(result.get("terms"), Mapping):
            found = _election_anomalies(name, result)
        elif "windows" in result:
            found = _availability_anomalies(name, result)
        elif isinstance(result.get("anomalies"), Mapping) and result.get("anomaly-types"):
            found = _elle_anomalies(name, result, limit)
        if not found:
            text = _generic_text(result) or "the checker found the history invalid"
            found = [Anomaly(name, "invalid", f"invalid: {text}")]
        invalid.extend(found[: limit + 1])
    return invalid + unknown


def headline(results: Mapping[str, Any], ops: Iterable[Any] | None = None) -> str | None:
    """The one line that names the worst anomaly, or None when everything is valid."""
    found = describe(results, ops, limit=1)
    return found[0].line() if found else None


def summary_lines(
    results: Mapping[str, Any],
    ops: Iterable[Any] | None = None,
    *,
    report: str | None = None,
    limit: int = MAX_ANOMALIES,
) -> list[str]:
    """A few lines for the end of an invalid or unknown run: the anomalies in words, the
    checkers that found them and where the report is. Empty when the run is valid."""
    found = describe(results, ops, limit=limit)
    if not found:
        return []
    lines = [anomaly.text for anomaly in found[: limit + 1]]
    if len(found) > limit + 1:
        lines.append(f"... and {len(found) - limit - 1} more")
    by_checker: dict[str, Mapping[str, Any]] = checker_results(results)
    names = []
    for anomaly in found:
        if anomaly.checker in names:
            continue
        names.append(anomaly.checker)
    described = []
    for name in names:
        result = by_checker.get(name, {})
        model = result.get("model") if isinstance(result, Mapping) else None
        verdict = "invalid" if result.get("valid") is False else "unknown"
        described.append(f"{name} ({verdict}{f', model {model}' if model else ''})")
    lines.append("checker: " + ", ".join(described))
    if report:
        lines.append(f"report: {report}")
    return lines
