"""Process control for node processes: start, SIGKILL, SIGSTOP/SIGCONT, restart, wait.

Every node runs in its own process group (a new session), so a signal reaches the node and
anything it started. stdout and stderr go to ``nodes/<id>.log``, appended across restarts,
each start (and each kill, pause, resume) marked by a line beginning with ``=== raftlab``.

No orphans, however the harness ends:
- ``ProcessGroup.__aexit__`` SIGKILLs every group and reaps it (normal exit, exception,
  Ctrl-C's KeyboardInterrupt, cancellation);
- ``ProcessGroup.watch_signals`` turns SIGTERM/SIGHUP into the same clean-up;
- an ``atexit`` hook SIGKILLs every group still registered (a crash that escapes Trio);
- the lifeline (``nemesis/lifeline.py``) kills a node whose harness died by SIGKILL.
Once a node is reaped its sockets are closed, so no port stays bound.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import trio

logger = logging.getLogger(__name__)

LIFELINE_SCRIPT = Path(__file__).resolve().with_name("lifeline.py")
REAP_TIMEOUT_SECONDS = 10.0

# Process groups started and not yet known to be gone: the atexit hook's work list.
_live_process_groups: set[int] = set()
# The write end of the lifeline pipe lives only here; every node holds the read end.
_lifeline: tuple[int, int] | None = None


def _kill_process_group(pgid: int, signum: int = signal.SIGKILL) -> bool:
    """Signal a whole process group; False when it no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # the id was reused by someone else's group: not ours
        return False
    return True


def kill_all_registered() -> None:
    """SIGKILL every process group this harness started and did not reap (atexit hook)."""
    for pgid in list(_live_process_groups):
        _kill_process_group(pgid, signal.SIGCONT)
        _kill_process_group(pgid, signal.SIGKILL)
        _live_process_groups.discard(pgid)


atexit.register(kill_all_registered)


def _lifeline_read_end() -> int:
    global _lifeline
    if _lifeline is None:
        read_end, write_end = os.pipe()  # both close-on-exec: no child inherits the write end
        _lifeline = (read_end, write_end)
    return _lifeline[0]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ProcessStateError(Exception):
    """An operation that makes no sense in the process's current state."""


@dataclass(slots=True, eq=False)
class NodeProcess:
    """One node: its command line, data directory and log file. Restartable."""

    node_id: str
    argv: Sequence[str]
    data_dir: Path
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    lifeline: bool = True  # wrap in nemesis/lifeline.py so a SIGKILLed harness leaves no orphan
    starts: int = 0
    paused: bool = False
    _process: trio.Process | None = field(default=None, repr=False)
    _pgid: int | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        """The process group leader: the lifeline (whose child is the node) when
        ``lifeline`` is on, else the node itself. ``group_pids()`` lists them all."""
        return None if self._process is None else self._process.pid

    @property
    def pgid(self) -> int | None:
        return self._pgid

    @property
    def running(self) -> bool:
        """Started and not yet exited (a paused process is running)."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The last exit status: negative for a signal, None while running or never run."""
        return None if self._process is None else self._process.poll()

    def _mark(self, text: str) -> None:
        """Append a marker line to the node's log (O_APPEND: safe beside the child's writes)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"=== raftlab {self.node_id}: {text} at {_now()} ===\n".encode())

    async def start(self) -> None:
        if self.running:
            raise ProcessStateError(f"{self.node_id} is already running (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        command = [str(part) for part in self.argv]
        self._mark(f"start #{self.starts}: {subprocess.list2cmdline(command)}")
        pass_fds: tuple[int, ...] = ()
        if self.lifeline:
            read_end = _lifeline_read_end()
            command = [sys.executable, str(LIFELINE_SCRIPT), str(read_end), "--", *command]
            pass_fds = (read_end,)
        log = open(self.log_path, "ab")  # handed to the child; closed below
        try:
            self._process = await trio.lowlevel.open_process(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and process group: pgid == pid
                pass_fds=pass_fds,
                env=None if self.env is None else dict(self.env),
                cwd=None if self.cwd is None else str(self.cwd),
            )
        finally:
            log.close()  # the child has its own copy
        self._pgid = self._process.pid
        _live_process_groups.add(self._pgid)
        self.paused = False
        logger.info("started %s (pid %d)", self.node_id, self._process.pid)

    def _signal_group(self, signum: int) -> bool:
        if self._pgid is None:
            return False
        return _kill_process_group(self._pgid, signum)

    async def kill(self) -> int | None:
        """SIGKILL the node's process group and reap it; returns its exit status."""
        if self._process is None:
            return None
        was_running = self.running
        self._signal_group(signal.SIGKILL)
        returncode = await self.wait()
        self.paused = False
        if was_running:
            self._mark(f"killed (SIGKILL), exit status {returncode}")
        return returncode

    def pause(self) -> None:
        """SIGSTOP the node's process group (it keeps its sockets; peers see silence)."""
        if not self.running:
            raise ProcessStateError(f"{self.node_id} is not running; cannot pause it")
        self._signal_group(signal.SIGSTOP)
        self.paused = True
        self._mark("paused (SIGSTOP)")

    def resume(self) -> None:
        """SIGCONT the node's process group."""
        if not self.running:
            self.paused = False
            raise ProcessStateError(f"{self.node_id} is not running; cannot resume it")
        self._signal_group(signal.SIGCONT)
        self.paused = False
        self._mark("resumed (SIGCONT)")

    async def restart(self) -> None:
        """Kill if running, then start again with the same argv and data directory."""
        if self.running:
            await self.kill()
        await self.start()

    async def wait(self) -> int:
        """Wait for the node to exit; reaps it and forgets its process group."""
        if self._process is None:
            raise ProcessStateError(f"{self.node_id} was never started")
        returncode = await self._process.wait()
        # The group may outlive its leader (a grandchild): make sure nothing is left.
        # Only once, right after reaping: later the id could be reused by another group.
        if self._pgid is not None and self._pgid in _live_process_groups:
            await _finish_group(self._pgid)
        return returncode

    async def stop(self, grace_seconds: float = 5.0) -> int | None:
        """SIGTERM (and SIGCONT, so a paused node can act on it), SIGKILL after the grace."""
        if not self.running:
            return self.returncode
        self._signal_group(signal.SIGTERM)
        self._signal_group(signal.SIGCONT)
        with trio.move_on_after(grace_seconds):
            returncode = await self.wait()
            self._mark(f"stopped (SIGTERM), exit status {returncode}")
            return returncode
        return await self.kill()

    def group_pids(self) -> list[int]:
        """Every live process in the node's process group (from /proc; for checks)."""
        if self._pgid is None:
            return []
        return list(_pids_in_group(self._pgid))


async def _finish_group(pgid: int) -> None:
    """Kill what is left of a group whose leader was reaped and wait until it is gone.

    SIGKILL is asynchronous: members (e.g. the node under its lifeline) may still be
    exiting when the leader is reaped. Zombies count as gone: they hold no sockets.
    """
    _kill_process_group(pgid, signal.SIGKILL)
    with trio.move_on_after(REAP_TIMEOUT_SECONDS):
        while any(True for _ in _pids_in_group(pgid)):
            _kill_process_group(pgid, signal.SIGKILL)
            await trio.sleep(0.005)
    _live_process_groups.discard(pgid)


def _pids_in_group(pgid: int) -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid pgrp ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            yield int(entry)


class HarnessTerminated(KeyboardInterrupt):
    """The harness got SIGTERM or SIGHUP; like Ctrl-C, it unwinds and cleans up."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


class ProcessGroup:
    """The supervisor of a cluster's node processes: nothing outlives it.

    ``async with ProcessGroup() as group:`` add nodes with ``group.add(...)``; leaving the
    block by any path SIGKILLs and reaps every node. Run ``group.watch_signals`` in the
    campaign's nursery to treat SIGTERM/SIGHUP like Ctrl-C.
    """

    def __init__(self) -> None:
        self.processes: dict[str, NodeProcess] = {}
        self.closed = False

    def add(self, process: NodeProcess) -> NodeProcess:
        if self.closed:
            raise ProcessStateError("the process group is closed")
        if process.node_id in self.processes:
            raise ValueError(f"duplicate node id {process.node_id!r}")
        self.processes[process.node_id] = process
        return process

    def __getitem__(self, node_id: str) -> NodeProcess:
        return self.processes[node_id]

    def __iter__(self) -> Iterator[NodeProcess]:
        return iter(self.processes.values())

    async def start_all(self) -> None:
        for process in self.processes.values():
            if not process.running:
                await process.start()

    def kill_all_now(self) -> None:
        """Synchronous SIGKILL of every node (safe from any context, even a signal)."""
        for process in self.processes.values():
            if process.pgid is not None:
                _kill_process_group(process.pgid, signal.SIGCONT)
                _kill_process_group(process.pgid, signal.SIGKILL)

    async def aclose(self) -> None:
        """Kill and reap every node. Shielded: runs to completion even when cancelled."""
        self.closed = True
        self.kill_all_now()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(REAP_TIMEOUT_SECONDS) as reap_scope:
                for process in self.processes.values():
                    if process._process is not None:
                        await process.wait()
            if reap_scope.cancelled_caught:
                logger.error("some node processes could not be reaped in time")

    async def __aenter__(self) -> ProcessGroup:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def watch_signals(self) -> None:
        """Run in the campaign's nursery: SIGTERM/SIGHUP kill every node at once and raise
        HarnessTerminated, which unwinds the campaign like Ctrl-C."""
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
            async for signum in signals:
                logger.warning("got %s: killing every node", signal.Signals(signum).name)
                self.kill_all_now()
                raise HarnessTerminated(signum)
