"""RaftConfig validation, the bug-switch names, and the core staying sans-I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import raftnode.core
from raftnode.core import CORE_BUGS, KNOWN_BUGS, ConfigError, RaftConfig

ARCHITECTURE_BUGS = {
    "stale-local-reads",
    "readindex-before-noop",
    "commit-old-term",
    "forget-vote",
    "vote-twice",
    "truncate-always",
    "commit-regress",
    "no-fsync",
    "no-dedup",
    "no-prevote-checkquorum",
    "learner-quorum",
}


def test_known_bugs_include_the_architectures_and_are_documented() -> None:
    assert ARCHITECTURE_BUGS <= KNOWN_BUGS
    assert CORE_BUGS < KNOWN_BUGS
    # Every switch the core acts on is documented (other parts add their own switches).
    architecture = (Path(__file__).parents[2] / "ARCHITECTURE.md").read_text()
    undocumented = sorted(b for b in CORE_BUGS if f"`{b}`" not in architecture)
    assert not undocumented, f"bug switches missing from ARCHITECTURE.md: {undocumented}"


def test_unknown_bug_is_refused_with_the_known_names() -> None:
    with pytest.raises(ConfigError) as caught:
        RaftConfig("a", ("a", "b", "c"), bugs=frozenset({"commit-old-trem"}))
    message = str(caught.value)
    assert "commit-old-trem" in message
    assert all(name in message for name in ARCHITECTURE_BUGS)


def test_every_known_bug_is_accepted() -> None:
    config = RaftConfig("a", ("a",), bugs=KNOWN_BUGS)
    assert config.bugs == KNOWN_BUGS
    assert not config.effective_pre_vote and not config.effective_check_quorum


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"node_id": "z"}, "own id"),
        ({"peers": ("a", "a")}, "distinct"),
        ({"peers": "abc"}, "peers"),
        ({"election_ticks": 0}, "election_ticks"),
        ({"heartbeat_ticks": 10}, "heartbeat_ticks"),
        ({"max_inflight_appends": 0}, "max_inflight_appends"),
        ({"read_mode": "fast"}, "read_mode"),
        ({"snapshot_threshold": -1}, "snapshot_threshold"),
    ],
)
def test_bad_config_names_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"node_id": "a", "peers": ("a", "b", "c")}
    base.update(kwargs)
    with pytest.raises(ConfigError, match=field):
        RaftConfig(**base)  # type: ignore[arg-type]


def test_defaults_match_the_architecture() -> None:
    config = RaftConfig("a", ["a", "b", "c"])  # type: ignore[arg-type]
    assert config.peers == ("a", "b", "c")
    assert (config.election_ticks, config.heartbeat_ticks) == (10, 1)
    assert config.pre_vote and config.check_quorum
    assert (config.max_entries_per_append, config.max_inflight_appends) == (512, 64)
    assert config.snapshot_threshold == 4096 and config.read_mode == "read_index"
    assert config.quorum == 2


FORBIDDEN = {
    "trio",
    "socket",
    "asyncio",
    "threading",
    "time",
    "random",
    "os",
    "subprocess",
    "select",
}


def test_core_imports_no_io_time_or_randomness() -> None:
    core_dir = Path(raftnode.core.__file__).parent
    files = sorted(core_dir.glob("*.py"))
    assert len(files) >= 6
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                assert root not in FORBIDDEN, f"{path.name} imports {name}"
                if root == "raftnode":
                    assert name.startswith(("raftnode.core", "raftnode.messages")), (
                        f"{path.name} imports {name}"
                    )
