"""Helpers for tests with real node processes on loopback: free ports in 17000-17999,
start / kill / restart with the same data directory, and no orphan ever (``close`` kills
whatever is still running; fixtures call it in ``finally``)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from raftnode.cli import node_argv
from raftnode.client import ClientError, RaftClient

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PORT_RANGE = (17000, 17999)


def free_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """Ports in our range that are bindable right now (probed, then released)."""
    rng = rng or random.Random(os.getpid())
    candidates = list(range(*PORT_RANGE))
    rng.shuffle(candidates)
    ports: list[int] = []
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError("no free ports in 17000-17999")


class ProcessCluster:
    def __init__(self, root: Path, size: int, extra: list[str] | None = None) -> None:
        self.root = root
        self.ids = [f"n{i}" for i in range(1, size + 1)]
        ports = free_ports(size)
        self.cluster = {
            node: ("127.0.0.1", port) for node, port in zip(self.ids, ports, strict=True)
        }
        self.extra = list(extra or [])
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def cluster_text(self) -> str:
        return ",".join(f"{n}={h}:{p}" for n, (h, p) in self.cluster.items())

    def log_path(self, node: str) -> Path:
        return self.root / f"{node}.log"

    def log_text(self, node: str) -> str:
        return self.log_path(node).read_text(errors="replace")

    def start(self, node: str, *more: str) -> None:
        argv = node_argv(
            node, self.cluster[node][1], self.cluster, self.root / node, extra=self.extra
        )
        with open(self.log_path(node), "ab") as log:
            self.processes[node] = subprocess.Popen(
                [*argv, *more],
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def start_all(self) -> None:
        for node in self.ids:
            self.start(node)

    def kill(self, node: str) -> None:
        process = self.processes.pop(node)
        process.kill()
        process.wait()

    def signal(self, node: str, signum: signal.Signals) -> None:
        self.processes[node].send_signal(signum)

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait()
        self.processes.clear()

    def client(self, client_id: str | None = None, **options: Any) -> RaftClient:
        return RaftClient(self.cluster, client_id, **options)

    async def statuses(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        async with self.client(timeout=0.5) as client:
            for node in self.ids:
                try:
                    out[node] = await client.status(node)
                except ClientError:
                    pass
        return out

    async def wait_for_leader(self, timeout: float = 15.0, exclude: str | None = None) -> str:
        with trio.fail_after(timeout):
            while True:
                statuses = await self.statuses()
                leaders = {
                    n
                    for n, s in statuses.items()
                    if s["role"] == "leader" and n != exclude and s["commit_index"] > 0
                }
                if len(leaders) == 1:
                    return leaders.pop()
                await trio.sleep(0.05)

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "campaign", *args],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
