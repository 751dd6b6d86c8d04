"""NodeProcess and ProcessGroup with dummy children: kill, pause, restart, no orphans."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import trio
from nemesis_helpers import free_port

from nemesis.process import NodeProcess, ProcessGroup, ProcessStateError

pytestmark = pytest.mark.slow

SLEEPER = [sys.executable, "-c", "import time; print('child up', flush=True); time.sleep(120)"]
# A child that starts a grandchild in its group, like a node that spawns a helper.
SPAWNER = [
    sys.executable,
    "-c",
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
    "print('spawned', flush=True); time.sleep(120)",
]


def process_state(pid: int) -> str | None:
    """The /proc state letter, or None when the process is gone (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    state = stat[stat.rfind(b")") + 2 :].split()[0].decode()
    return None if state in ("Z", "X") else state


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if process_state(pid) is not None]


async def wait_for_log(path: Path, text: str, count: int = 1) -> str:
    with trio.fail_after(20):
        while True:
            content = path.read_text() if path.exists() else ""
            if content.count(text) >= count:
                return content
            await trio.sleep(0.02)


async def wait_for_group_size(node: NodeProcess, size: int) -> list[int]:
    with trio.fail_after(20):
        while len(node.group_pids()) < size:
            await trio.sleep(0.02)
    return node.group_pids()


def make_node(
    tmp_path: Path, argv: list[str], node_id: str = "n1", **options: object
) -> NodeProcess:
    return NodeProcess(
        node_id,
        argv,
        data_dir=tmp_path / "data" / node_id,
        log_path=tmp_path / "nodes" / f"{node_id}.log",
        **options,
    )


async def test_start_writes_the_log_and_kill_reaps_the_group(tmp_path: Path) -> None:
    async with ProcessGroup() as group:
        node = group.add(make_node(tmp_path, SLEEPER))
        await node.start()
        assert node.running
        content = await wait_for_log(node.log_path, "child up")
        assert "=== raftlab n1: start #1" in content
        assert node.data_dir.is_dir()
        pids = await wait_for_group_size(node, 2)  # the lifeline and the child
        assert await node.kill() == -signal.SIGKILL
        assert not node.running
        assert alive(pids) == []
        assert "killed (SIGKILL)" in node.log_path.read_text()


async def test_pause_stops_every_process_of_the_node_and_resume_continues(tmp_path: Path) -> None:
    async with ProcessGroup() as group:
        node = group.add(make_node(tmp_path, SLEEPER))
        await node.start()
        pids = await wait_for_group_size(node, 2)
        node.pause()
        with trio.fail_after(20):
            while {process_state(pid) for pid in pids} != {"T"}:
                await trio.sleep(0.02)
        assert node.paused and node.running
        node.resume()
        with trio.fail_after(20):
            while "T" in {process_state(pid) for pid in pids}:
                await trio.sleep(0.02)
        assert not node.paused
        # A paused node can still be killed.
        node.pause()
        assert await node.kill() == -signal.SIGKILL
        with pytest.raises(ProcessStateError):
            node.pause()


async def test_restart_keeps_the_data_dir_and_appends_to_the_log(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-c",
        "import os, sys, time; "
        "path = os.path.join(sys.argv[1], 'boots'); "
        "open(path, 'a').write('boot\\n'); "
        "print('boots', open(path).read().count('boot'), flush=True); time.sleep(120)",
    ]
    async with ProcessGroup() as group:
        node = group.add(make_node(tmp_path, argv))
        node.argv = [*argv, str(node.data_dir)]
        await node.start()
        await wait_for_log(node.log_path, "boots 1")
        first_pid = node.pid
        with pytest.raises(ProcessStateError, match="already running"):
            await node.start()
        await node.restart()
        content = await wait_for_log(node.log_path, "boots 2")
        assert node.pid != first_pid
        assert content.count("=== raftlab n1: start #") == 2
        assert content.index("boots 1") < content.index("start #2") < content.index("boots 2")


async def test_exit_status_passes_through_the_lifeline(tmp_path: Path) -> None:
    async with ProcessGroup() as group:
        exits = group.add(make_node(tmp_path, [sys.executable, "-c", "raise SystemExit(3)"]))
        await exits.start()
        assert await exits.wait() == 3
        direct = group.add(
            make_node(tmp_path, [sys.executable, "-c", "raise SystemExit(4)"], "n2", lifeline=False)
        )
        await direct.start()
        assert await direct.wait() == 4
        terminated = group.add(make_node(tmp_path, SLEEPER, "n3"))
        await terminated.start()
        await wait_for_log(terminated.log_path, "child up")
        assert await terminated.stop(grace_seconds=10) == -signal.SIGTERM
        missing = group.add(make_node(tmp_path, ["/nonexistent/raftlab-node"], "n4"))
        await missing.start()
        assert await missing.wait() == 127
        assert "cannot run" in missing.log_path.read_text()


async def test_group_exit_leaves_no_orphans_and_no_bound_ports(tmp_path: Path) -> None:
    port = free_port()
    listener_argv = [
        sys.executable,
        "-c",
        "import socket, time; s = socket.socket(); "
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('127.0.0.1', {port})); s.listen(); print('listening', flush=True); time.sleep(120)",
    ]
    all_pids: list[int] = []
    async with ProcessGroup() as group:
        for index in range(3):
            node = group.add(make_node(tmp_path, SPAWNER, f"s{index}"))
            await node.start()
        listener = group.add(make_node(tmp_path, listener_argv, "listener"))
        await listener.start()
        await wait_for_log(listener.log_path, "listening")
        for index in range(3):
            all_pids += await wait_for_group_size(group[f"s{index}"], 3)
        all_pids += listener.group_pids()
        assert len(alive(all_pids)) == len(all_pids) == 11
    assert alive(all_pids) == []
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


async def test_an_exception_in_the_harness_still_kills_every_node(tmp_path: Path) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="harness bug"):
        async with ProcessGroup() as group:
            node = group.add(make_node(tmp_path, SPAWNER))
            await node.start()
            pids = await wait_for_group_size(node, 3)
            raise RuntimeError("harness bug")
    assert pids and alive(pids) == []


async def test_cancellation_still_kills_every_node(tmp_path: Path) -> None:
    pids: list[int] = []
    with trio.move_on_after(30) as scope:
        async with ProcessGroup() as group:
            node = group.add(make_node(tmp_path, SPAWNER))
            await node.start()
            pids = await wait_for_group_size(node, 3)
            scope.cancel()
            await trio.sleep(60)
    assert pids and alive(pids) == []


HARNESS = textwrap.dedent(
    """
    import sys, trio
    from pathlib import Path
    from nemesis.process import NodeProcess, ProcessGroup

    async def main(tmp, lifeline):
        async with ProcessGroup() as group:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(group.watch_signals)
                node = group.add(NodeProcess("n1", [sys.executable, "-c",
                    "import subprocess, sys, time; "
                    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
                    "time.sleep(120)"], Path(tmp) / "d", Path(tmp) / "n1.log", lifeline=lifeline))
                await node.start()
                with trio.fail_after(20):  # the lifeline, the node and its helper
                    while len(node.group_pids()) < (3 if lifeline else 2):
                        await trio.sleep(0.02)
                print(" ".join(map(str, node.group_pids())), flush=True)
                await trio.sleep(120)

    trio.run(main, sys.argv[1], sys.argv[2] == "lifeline")
    """
)


def run_harness(tmp_path: Path, lifeline: bool = True) -> tuple[subprocess.Popen[str], list[int]]:
    root = Path(__file__).resolve().parents[2]
    harness = subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(tmp_path), "lifeline" if lifeline else "direct"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert harness.stdout is not None
    line = harness.stdout.readline()
    if not line:
        harness.kill()
        pytest.fail(f"harness failed: {harness.communicate()[1]}")
    return harness, [int(pid) for pid in line.split()]


def wait_until_gone(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + 20
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive(pids)


@pytest.mark.parametrize(
    ("harness_signal", "lifeline"),
    [
        (signal.SIGKILL, True),
        (signal.SIGTERM, True),
        (signal.SIGINT, True),
        (signal.SIGTERM, False),
    ],
)
def test_a_dying_harness_leaves_no_orphans(
    tmp_path: Path, harness_signal: int, lifeline: bool
) -> None:
    harness, pids = run_harness(tmp_path, lifeline)
    try:
        assert len(alive(pids)) == (3 if lifeline else 2)
        harness.send_signal(harness_signal)
        harness.wait(timeout=20)
        assert wait_until_gone(pids) == []
    finally:
        if harness.poll() is None:
            harness.kill()
        harness.communicate()
        for pid in alive(pids):  # never leave our own mess behind, even when failing
            os.kill(pid, signal.SIGKILL)
