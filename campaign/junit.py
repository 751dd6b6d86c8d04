"""junit.xml for CI: one test case per checker, so a CI page shows which property broke.

A checker that says `false` is a ``<failure>``; one that says "unknown" is an ``<error>``
(the run proved nothing, and a gate must not pass on it); `true` is a pass.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from campaign.verdict import normalize_valid

MAX_MESSAGE_CHARS = 20_000


def _details(result: Mapping[str, Any]) -> str:
    text = json.dumps(result, default=repr, indent=2, ensure_ascii=False)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "\n…"


def junit_tree(results: Mapping[str, Any], *, name: str) -> ElementTree.ElementTree:
    checkers: Mapping[str, Mapping[str, Any]] = results.get("checkers", {}) or {}
    cases = dict(checkers) or {
        "verdict": {"valid": results.get("valid"), "error": "no checker ran"}
    }
    failures = sum(1 for result in cases.values() if normalize_valid(result.get("valid")) is False)
    errors = sum(
        1 for result in cases.values() if normalize_valid(result.get("valid")) == "unknown"
    )
    seconds = sum(float(result.get("seconds", 0) or 0) for result in cases.values())
    suites = ElementTree.Element("testsuites", name="raftlab")
    suite = ElementTree.SubElement(
        suites,
        "testsuite",
        name=f"raftlab.{name}",
        tests=str(len(cases)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{seconds:.3f}",
    )
    for checker_name, result in cases.items():
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=f"raftlab.{name}",
            name=str(checker_name),
            time=f"{float(result.get('seconds', 0) or 0):.3f}",
        )
        valid = normalize_valid(result.get("valid"))
        if valid is False:
            failure = ElementTree.SubElement(
                case, "failure", message=f"{checker_name}: invalid", type="invalid"
            )
            failure.text = _details(result)
        elif valid == "unknown":
            error = ElementTree.SubElement(
                case,
                "error",
                message=f"{checker_name}: unknown ({str(result.get('error', 'undecided'))[:200]})",
                type="unknown",
            )
            error.text = _details(result)
    ElementTree.indent(suites)
    return ElementTree.ElementTree(suites)


def write_junit(path: Path, results: Mapping[str, Any], *, name: str) -> None:
    junit_tree(results, name=name).write(Path(path), encoding="utf-8", xml_declaration=True)
