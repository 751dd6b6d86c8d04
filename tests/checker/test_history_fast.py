"""The fast EDN reader against the general one (edn_format): the same Ops, or a fall-back;
and the general reader's own fast forms (maps over several lines) against edn_format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from checker.history import (
    HistoryError,
    _fast_edn_map,
    _iter_edn_fast,
    _iter_edn_general,
    _scan_forms,
    read_edn,
)

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# EDN text of values, both the kinds the fast reader takes and the ones it must leave to
# the general reader (sets, chars, symbols, tags, escapes, ratios, big numbers, comments).
ATOMS = [
    "nil", "true", "false", "0", "-0", "1", "-17", "1.0", "-2.5", "1e3", "1.5E-2", "12345678901234567890",
    ":a", ":read", ":x-y.z", ":a/b", '"s"', '""', '"a b, c"', '"q\\"q"', '"tab\\t"', "\\c",
    "sym", "1/2", "1N", "1.5M", "#{1 2}", "#inst \"2020-01-01T00:00:00Z\"", "#_ 5 6", "+3",
    "007", "1.", ".5", "nil?", ":a#b", "#uuid \"f81d4fae-7dec-11d0-a765-00a0c91e6bf6\"",
]


@st.composite
def edn_values(draw: Any, depth: int = 0) -> str:
    if depth >= 2 or draw(st.integers(0, 3)) > 0:
        return draw(st.sampled_from(ATOMS))
    kind = draw(st.sampled_from(["[", "(", "{"]))
    count = draw(st.integers(0, 3))
    if kind == "{":
        parts = [
            f"{draw(edn_values(depth + 1))} {draw(edn_values(depth + 1))}" for _ in range(count)
        ]
        return "{" + ", ".join(parts) + "}"
    closer = "]" if kind == "[" else ")"
    return kind + " ".join(draw(edn_values(depth + 1)) for _ in range(count)) + closer


@st.composite
def op_lines(draw: Any) -> str:
    fields = [
        f":type {draw(st.sampled_from([':invoke', ':ok', ':fail', ':info']))}",
        f":f {draw(st.sampled_from([':read', ':write', ':cas', ':txn']))}",
        f":process {draw(st.sampled_from(['0', '3', ':nemesis']))}",
        f":value {draw(edn_values())}",
    ]
    if draw(st.booleans()):
        fields.append(f":time {draw(st.integers(0, 10**12))}")
    if draw(st.booleans()):
        fields.append(f":error {draw(edn_values())}")
    if draw(st.booleans()):
        fields.append(f":extra {draw(edn_values())}")
    order = draw(st.permutations(fields))
    return "{" + draw(st.sampled_from([", ", " "])).join(order) + "}"


def _write_history(folder: Path, lines: list[str], vector: bool) -> tuple[Path, str]:
    """``lines`` as an EDN history file (one vector of them when ``vector``)."""
    text = "\n".join(lines) + "\n"
    if vector:
        text = "[" + text.rstrip("\n") + "]\n"
    path = folder / "h.edn"
    path.write_text(text, encoding="utf-8")
    return path, text


def _read_by_edn_format(path: Path) -> list[dict[str, Any]] | Exception:
    """The reference: every form through edn_format; its error when it refuses the file
    (then every reader must refuse it too)."""
    try:
        return [op.to_dict() for op in _iter_edn_general(path, fast_forms=False)]
    except Exception as error:  # noqa: BLE001 - the refusal is the reference
        return error


@SETTINGS
@given(lines=st.lists(op_lines(), min_size=1, max_size=4), vector=st.booleans())
def test_the_fast_reader_gives_the_general_readers_ops_or_falls_back(
    tmp_path: Path, lines: list[str], vector: bool
) -> None:
    path, text = _write_history(tmp_path, lines, vector)
    general = _read_by_edn_format(path)
    fast = _iter_edn_fast(path)
    if isinstance(general, Exception):
        assert fast is None, text
        return
    if fast is not None:
        assert [op.to_dict() for op in fast] == general, text
        for op, plain in zip(fast, general, strict=True):  # typing too: 1, 1.0, true differ
            assert type(op.value) is type(plain["value"]), text
    assert [op.to_dict() for op in read_edn(path)] == general


@SETTINGS
@given(
    lines=st.lists(op_lines(), min_size=1, max_size=4),
    vector=st.booleans(),
    breaks=st.lists(st.sampled_from([", ", " ", "\n ", ",\n", " ; note\n"]), min_size=1),
    comments=st.lists(st.booleans(), min_size=1),
)
def test_maps_over_several_lines_and_comments_read_as_edn_format_reads_them(
    tmp_path: Path, lines: list[str], vector: bool, breaks: list[str], comments: list[bool]
) -> None:
    """Knossos' corpus writes maps over several lines and comments between them: the
    general reader builds such maps itself (a form with a comment inside goes to
    edn_format) and the fast reader skips comment lines; both give edn_format's ops."""
    written = []
    for number, line in enumerate(lines):
        if comments[number % len(comments)]:
            written.append("; a comment, as Knossos' files have")
        # the separators inside the map: some become line breaks (or a comment and one)
        parts = line.split(", ") if ", " in line else [line]
        text = parts[0]
        for count, part in enumerate(parts[1:]):
            text += breaks[count % len(breaks)] + part
        written.append(text)
    path, text = _write_history(tmp_path, written, vector)
    reference = _read_by_edn_format(path)
    if isinstance(reference, Exception):
        assert _iter_edn_fast(path) is None, text
        try:
            list(_iter_edn_general(path))
        except Exception as error:  # noqa: BLE001
            assert type(error) is type(reference) and str(error) == str(reference), text
        else:  # pragma: no cover
            raise AssertionError(f"read what edn_format refuses: {text}")
        return
    general = list(_iter_edn_general(path))
    assert [op.to_dict() for op in general] == reference, text
    for op, plain in zip(general, reference, strict=True):  # typing too: 1, 1.0, true differ
        assert type(op.value) is type(plain["value"]), text
    assert [op.to_dict() for op in read_edn(path)] == reference, text


def test_a_knossos_style_file_is_read_without_edn_format(tmp_path: Path, monkeypatch) -> None:
    """A leading comment and maps over several lines: no form needs edn_format."""
    import checker.history as history

    path = tmp_path / "multi.edn"
    path.write_text(
        "; A multi-register with x=0 and y=0\n"
        "[{:type :invoke,\n :f :txn,\n :value [[:read :x nil]],\n :process 3}\n"
        " {:type :ok,\n :f :txn,\n :value [[:read :x 0]],\n :process 3}]\n",
        "utf-8",
    )
    reference = [op.to_dict() for op in _iter_edn_general(path, fast_forms=False)]

    def refuse(*args: Any) -> Any:
        raise AssertionError("edn_format was asked")

    monkeypatch.setattr(history, "_edn_loads_all", refuse)
    assert [op.to_dict() for op in read_edn(path)] == reference
    assert read_edn(path)[1].value == [["read", "x", 0]]


# Pieces of EDN text, well-formed or not: brackets alone, atoms with "#" and "\\" inside,
# chars that look like brackets, strings holding brackets, comments, tags, discards.
SCAN_PIECES = [
    "{", "}", "[", "]", "(", ")", "#{", " ", ", ", "\n", "\t", ":a", ":a#b", "a\\(", "a\\b",
    "\\(", "\\)", "\\newline", '"x]y"', '"q\\"q"', '"open', "; c ] }\n", "#_", "#inst",
    "#", "1", "-2.5", "nil", "sym", "{:a 1}", "[1 [2 (3)]]",
]


@settings(SETTINGS, max_examples=600)
@given(pieces=st.lists(st.sampled_from(SCAN_PIECES), min_size=1, max_size=30))
@example(pieces=["[", "\\(", "]"])  # a char that looks like a bracket, right after one
@example(pieces=["(", "a\\(", ")"])  # a backslash inside an atom: the atom goes on
@example(pieces=["{", ":a#b", " ", "#_", "1", "}"])  # "#" inside an atom, then a discard
@example(pieces=["[", '"x]y"', "; c ] }\n", "]"])  # brackets in a string and a comment
def test_skipping_runs_inside_brackets_finds_the_forms_token_by_token_finds(
    pieces: list[str],
) -> None:
    """The general reader skips runs of atoms and spaces inside brackets in one match: the
    forms it finds (bounds and lines) and the errors it raises are those of reading every
    token (skip_runs=False)."""
    text = "".join(pieces)

    def scan(skip_runs: bool) -> object:
        try:
            forms = _scan_forms(text, 0, len(text), 1, None, skip_runs=skip_runs)
        except HistoryError as error:
            return ("error", str(error))
        return [(form.start, form.end, form.line) for form in forms]

    assert scan(True) == scan(False), text


def test_typing_survives_the_fast_reader() -> None:
    data = _fast_edn_map('{:type :ok, :f :write, :process 0, :value [1 1.0 true "1" :one nil]}')
    assert data is not None
    assert [type(item) for item in data["value"]] == [int, float, bool, str, str, type(None)]
    assert data["value"][:3] == [1, 1.0, True]


def test_the_fast_reader_declines_what_it_does_not_know() -> None:
    for line in (
        '{:type :ok, :value #{1}}',
        '{:type :ok, :value \\c}',
        '{:type :ok, :value "a\\"b"}',
        "{:type :ok, :value 1/2}",
        "{:type :ok, :value sym}",
        "{:type :ok :type :ok}",
        "{:type :ok} {:type :ok}",
        "{:type :ok",
        "{:a 1 :b}",
    ):
        assert _fast_edn_map(line) is None, line


def test_a_malformed_history_still_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.edn"
    path.write_text('{:type :invoke, :f :read, :process 0}\n{:type :ok, :f :read\n', "utf-8")
    try:
        read_edn(path)
    except Exception as error:  # noqa: BLE001
        assert "line 2" in str(error) or ":2" in str(error), str(error)
    else:  # pragma: no cover
        raise AssertionError("a malformed history was read")


def test_a_jepsen_history_takes_the_fast_path(tmp_path: Path) -> None:
    path = tmp_path / "h.edn"
    path.write_text(
        "[{:type :invoke, :f :cas, :process 0, :value [1 2], :time 5, :index 0}\n"
        " {:type :fail, :f :cas, :process 0, :value [1 2], :error :mismatch, :index 1}]\n",
        "utf-8",
    )
    fast = _iter_edn_fast(path)
    assert fast is not None
    assert [op.to_dict() for op in fast] == [
        op.to_dict() for op in _iter_edn_general(path, fast_forms=False)
    ]
    assert fast[1].error == "mismatch" and fast[0].value == [1, 2]


@SETTINGS
@given(
    data=st.dictionaries(
        st.sampled_from(["type", "process", "f", "index", "time", "value", "error", "node", "x"]),
        st.one_of(
            st.sampled_from(["invoke", "ok", "read", "nemesis", "", "info"]),
            st.integers(-2, 3), st.booleans(), st.none(), st.floats(allow_nan=False),
            st.lists(st.integers(), max_size=2),
        ),
    )
)
def test_op_from_mapping_fast_path_agrees_with_the_checks(data: dict[str, Any]) -> None:
    """The usual-op shortcut of op_from_mapping builds what the full checks build."""
    from checker.history import HistoryError, op_from_mapping

    def full(mapping: Any) -> Any:
        try:  # a Mapping that is not a dict takes the full path
            return op_from_mapping(_Mapping(mapping), position=4).to_dict()
        except HistoryError as error:
            return str(error)

    try:
        got: Any = op_from_mapping(data, position=4).to_dict()
    except HistoryError as error:
        got = str(error)
    assert got == full(data)


class _Mapping(dict):  # type(...) is not dict: op_from_mapping's full checks
    pass
