"""Fixtures for raftnode's node/driver/client tests.

``node_procs`` (the real-process helpers) is made importable here because pytest runs
in importlib mode; ``process_cluster`` builds clusters of real node processes and kills
every one of them when the test ends, pass or fail.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from node_procs import ProcessCluster  # noqa: E402


@pytest.fixture
def process_cluster(tmp_path: Path) -> Iterator[Callable[..., ProcessCluster]]:
    made: list[ProcessCluster] = []

    def make(size: int, extra: list[str] | None = None) -> ProcessCluster:
        cluster = ProcessCluster(tmp_path / f"cluster{len(made)}", size, extra)
        cluster.root.mkdir(parents=True)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()
