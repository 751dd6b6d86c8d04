"""Porcupine's test corpus: every verdict must equal ``expected.tsv``, none undecided.

The corpus lives in ``../shared/corpus/porcupine`` (Jepsen etcd logs checked with the
etcd model, kv logs checked per key with the kv model); these tests skip when it is absent.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from checker.importers import read_jepsen_log, read_porcupine_kv
from checker.linearizable import check

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "porcupine"
EXPECTED = CORPUS / "expected.tsv"
# Generous: the whole corpus takes about two seconds; a budget is no way to pass here.
TIME_LIMIT = 120.0

pytestmark = pytest.mark.skipif(
    not EXPECTED.is_file(), reason=f"Porcupine corpus not found at {CORPUS.resolve()}"
)

VERDICTS = {"linearizable": True, "not": False}


def corpus_rows() -> list[tuple[str, str, str]]:
    if not EXPECTED.is_file():
        return []
    with EXPECTED.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    return [(row["file"], row["format"], row["expected_verdict"]) for row in rows]


def load(file: str, format_name: str) -> tuple[list, str]:
    if format_name.startswith("jepsen-etcd-log"):
        return read_jepsen_log(CORPUS / file), "etcd"
    if format_name == "edn-kv-log":
        return read_porcupine_kv(CORPUS / file), "kv"
    raise AssertionError(f"unknown corpus format {format_name!r}")


def test_the_corpus_is_complete() -> None:
    rows = corpus_rows()
    judged = [row for row in rows if row[2] in VERDICTS]
    assert len(judged) == 108
    for file, _, _ in rows:
        assert (CORPUS / file).is_file(), file


@pytest.mark.parametrize(
    ("file", "format_name", "expected"),
    [row for row in corpus_rows() if row[2] in VERDICTS],
    ids=lambda value: str(value),
)
def test_verdict_matches_expected(file: str, format_name: str, expected: str) -> None:
    ops, model = load(file, format_name)
    result = check(ops, model, time_limit=TIME_LIMIT)
    assert result["valid"] != "unknown", result.get("error")
    assert result["valid"] is VERDICTS[expected]
    if result["valid"] is False:
        failure = result["failures"][0]
        assert failure["op"] is not None
        assert failure["states"], "an explanation names the states the model could be in"


def test_empty_log_has_no_operations() -> None:
    empty = [row for row in corpus_rows() if row[2] not in VERDICTS]
    assert empty, "expected the corpus' empty log"
    for file, format_name, _ in empty:
        ops, model = load(file, format_name)
        assert ops == []
        assert check(ops, model)["valid"] is True


@pytest.mark.parametrize("name", ["c01-ok", "c01-bad", "c10-ok", "c10-bad"])
def test_kv_whole_map_agrees_with_per_key(name: str) -> None:
    """Porcupine also checks these with an unpartitioned map model (kvNoPartitionModel)."""
    ops = read_porcupine_kv(CORPUS / "kv" / f"{name}.txt")
    per_key = check(ops, "kv", time_limit=TIME_LIMIT)
    whole = check(ops, "kv", decompose=False, time_limit=TIME_LIMIT)
    assert per_key["component_count"] == len({op.value[0] for op in ops})
    assert whole["component_count"] == 1
    assert whole["valid"] is per_key["valid"] is name.endswith("-ok")
