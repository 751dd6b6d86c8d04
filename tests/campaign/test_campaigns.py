"""Real campaigns: node processes, proxies, a workload, a nemesis, a verdict (slow).

Ports 19000-19999 only (each test its own block). Each campaign runs `raftlab test` as a
separate process, exactly as a user would, and checks its exit code and results folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from campaign.results import missing_files

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VOID_ELEMENTS = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "wbr", "source"}

pytestmark = pytest.mark.slow


class TagBalance(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID_ELEMENTS:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> at {self.getpos()} closes {self.stack[-1:]}")
        else:
            self.stack.pop()


def assert_wellformed(path: Path) -> str:
    page = path.read_text(encoding="utf-8")
    parser = TagBalance()
    parser.feed(page)
    parser.close()
    assert parser.problems == [] and parser.stack == []
    return page


def raftlab_test(tmp_path: Path, *args: str, timeout: float = 120) -> tuple[int, str, Path]:
    """Run `raftlab test` in a child process; its exit code, output and run folder."""
    results = tmp_path / "results"
    completed = subprocess.run(
        [sys.executable, "-m", "campaign", "test", "--results-dir", str(results), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = completed.stdout + completed.stderr
    run_dir = (results / "latest").resolve()
    return completed.returncode, output, run_dir


def ports_free(base: int, count: int) -> bool:
    for port in range(base, base + count):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and "pytest" not in cmdline:
            found.append(int(entry))
    return found


def test_ctrl_c_writes_what_was_recorded_and_leaves_nothing(tmp_path):
    """SIGINT mid-run: exit 130, a results folder with the history so far, no orphan, no port."""
    base = 19200
    results = tmp_path / "results"
    harness = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "campaign",
            "test",
            "--results-dir",
            str(results),
            "--nodes",
            "3",
            "--time-limit",
            "60",
            "--nemesis",
            "none",
            "--rate",
            "50",
            "--seed",
            "11",
            "--base-port",
            str(base),
            "--name",
            "interrupted",
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        history = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = list(results.glob("interrupted/*/history.jsonl"))
            if found and sum(1 for _ in found[0].open()) >= 40:
                history = found[0]
                break
            assert harness.poll() is None, harness.stdout.read()
            time.sleep(0.2)
        assert history is not None, "the workload never got going"
        assert processes_mentioning(f"127.0.0.1:{base}")  # the nodes are up
        harness.send_signal(signal.SIGINT)
        output, _ = harness.communicate(timeout=60)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
    assert harness.returncode == 130, output
    run_dir = history.parent
    assert "partial results written" in output
    results_json = json.loads((run_dir / "results.json").read_text())
    assert results_json["valid"] == "unknown"
    assert "interrupted" in results_json["interrupted"]
    assert missing_files(run_dir) == []
    assert len((run_dir / "history.jsonl").read_text().splitlines()) >= 40
    assert_wellformed(run_dir / "report.html")
    # Nothing left behind: no node process of this run, every port free again.
    assert processes_mentioning(f"127.0.0.1:{base}") == []
    assert ports_free(base, 9)
