"""raftlab's pytest plugin (entry point ``pytest11``): a simulation or a campaign as a test.

Two ways to use it::

    def test_survives_partitions(raftlab):
        raftlab.simulate(seeds="1..5", time=20, nemesis="partition,kill")  # fails on an anomaly

    @pytest.mark.raftlab_sim(seeds="1..5", time=20, nemesis="partition")
    def test_marked(raftlab_result):
        assert raftlab_result.valid is True  # the test has already failed otherwise

A run that is not valid fails the test with its summary: the anomalies in words, the
results folder, the report and the replay command. ``expect=False`` asserts the run is
invalid instead (a teaching bug must be caught). Results go to a temporary folder per
test, or under ``--raftlab-results DIR``.

This module is imported by every pytest run once raftlab is installed, so it imports
only pytest and the standard library; raftlab's machinery loads when a run starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from raftlab.api import RunResult

MARKERS = ("raftlab_sim", "raftlab_campaign")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("raftlab")
    group.addoption(
        "--raftlab-results",
        default=None,
        metavar="DIR",
        help="Where raftlab runs made by tests write their results folders "
        "(default: a temporary folder per test).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "raftlab_sim(seeds=1, scenario=None, **settings): run raftlab's deterministic "
        "simulation for this test; it fails with the anomaly unless every seed is valid "
        "(expect=False: unless one is invalid). The `raftlab_result` fixture holds the result.",
    )
    config.addinivalue_line(
        "markers",
        "raftlab_campaign(**config): run a real raftlab campaign (node processes, proxies, "
        "a nemesis) for this test, judged as raftlab_sim.",
    )


class RaftlabRunner:
    """The `raftlab` fixture: run, judge, and fail the test with the summary."""

    def __init__(self, results_dir: Path) -> None:
        self.results_dir = Path(results_dir)

    def simulate(self, seeds: Any = 1, *, expect: bool | None = True, **settings: Any) -> RunResult:
        """`raftlab.run_simulation` for `seeds`; see `judge` for `expect`."""
        from raftlab.api import run_simulation

        settings.setdefault("results_dir", self.results_dir)
        return self.judge(run_simulation(seeds, **settings), expect)

    def campaign(self, *, expect: bool | None = True, **config: Any) -> RunResult:
        """`raftlab.run_campaign` (real processes: mark such tests slow)."""
        from raftlab.api import run_campaign

        config.setdefault("results_dir", str(self.results_dir))
        return self.judge(run_campaign(**config), expect)

    def check(self, history: Any, *, expect: bool | None = True, **options: Any) -> RunResult:
        """`raftlab.check_history` on a file, a run folder or a list of ops."""
        from raftlab.api import check_history

        return self.judge(check_history(history, **options), expect)

    @staticmethod
    def judge(result: RunResult, expect: bool | None) -> RunResult:
        """expect=True: fail unless valid; False: fail unless invalid; None: never fail."""
        if expect is True and result.valid is not True:
            pytest.fail(result.summary(), pytrace=False)
        if expect is False and result.valid is not False:
            pytest.fail(
                "expected raftlab to find an anomaly, but the verdict is "
                f"{result.valid!r}\n{result.summary()}",
                pytrace=False,
            )
        return result


@pytest.fixture
def raftlab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> RaftlabRunner:
    """Run raftlab simulations, campaigns and checks inside a test (see the module doc)."""
    chosen = request.config.getoption("--raftlab-results", default=None)
    if chosen:
        return RaftlabRunner(Path(chosen))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:40] or "test"
    return RaftlabRunner(tmp_path_factory.mktemp(f"raftlab-{name}", numbered=True))


_EXPECT = pytest.StashKey[bool | None]()
_RESULT = pytest.StashKey["RunResult"]()


def _marker(node: Any) -> Any:
    for name in MARKERS:
        found = node.get_closest_marker(name)
        if found is not None:
            return found
    return None


@pytest.fixture
def raftlab_result(request: pytest.FixtureRequest, raftlab: RaftlabRunner) -> RunResult:
    """The result of the run a ``raftlab_sim`` / ``raftlab_campaign`` marker asks for.

    The run happens while the test is set up; it is judged when the test is called, so an
    anomaly is a test failure (an exception of the harness itself is a setup error).
    """
    marker = _marker(request.node)
    if marker is None:
        raise pytest.UsageError("raftlab_result needs a raftlab_sim or raftlab_campaign marker")
    kwargs = dict(marker.kwargs)
    request.node.stash[_EXPECT] = kwargs.pop("expect", True)
    if marker.name == "raftlab_sim":
        result = raftlab.simulate(*marker.args, expect=None, **kwargs)
    else:
        result = raftlab.campaign(expect=None, **kwargs)
    request.node.stash[_RESULT] = result
    return result


@pytest.fixture(autouse=True)
def _raftlab_marked_run(request: pytest.FixtureRequest) -> None:
    """A marked test runs its raftlab run even when it does not ask for the result."""
    node = getattr(request, "node", None)
    if node is not None and _marker(node) is not None:
        request.getfixturevalue("raftlab_result")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Judge a marked test's run before its body: an anomaly fails the test."""
    result = item.stash.get(_RESULT, None)
    if result is not None:
        RaftlabRunner.judge(result, item.stash.get(_EXPECT, True))
