"""A node's lifeline: kills the node when the harness dies, even by SIGKILL.

``NodeProcess`` starts ``python3 lifeline.py FD -- ARGV...`` as the leader of a new process
group. This program forks ARGV in the same group and waits for whichever comes first:

- the node exits: the lifeline exits the same way (same code, or the same signal), so the
  harness sees the node's own status;
- end of file on descriptor FD: the read end of a pipe whose only write end lives in the
  harness. The kernel closes it however the harness dies (exception, Ctrl-C, SIGTERM,
  SIGKILL, OOM), so the lifeline then SIGKILLs its whole process group: no orphans.

Linux's PR_SET_PDEATHSIG cannot do this job for us: Trio spawns children from a worker
thread, and the signal fires when that *thread* exits, which Trio's thread cache does on
its own after a few idle seconds.

The harness signals the whole group (SIGKILL, SIGSTOP, SIGCONT, SIGTERM), so the node gets
every signal directly; the lifeline ignores SIGTERM/SIGINT/SIGHUP and waits for the node.
Standard library only, and not imported by the harness: it runs as a script.
"""

from __future__ import annotations

import os
import select
import signal
import sys


def _wait_for_child_or_lifeline(child_pid: int, lifeline_fd: int) -> int:
    """Return the child's wait status, or kill the group when the lifeline breaks."""
    child_fd = os.pidfd_open(child_pid) if hasattr(os, "pidfd_open") else None
    while True:
        watched = [lifeline_fd] + ([child_fd] if child_fd is not None else [])
        try:
            readable, _, _ = select.select(watched, [], [], 0.2 if child_fd is None else None)
        except InterruptedError:
            readable = []
        if lifeline_fd in readable:
            try:
                data = os.read(lifeline_fd, 1)
            except OSError:
                data = b""
            if not data:  # the harness is gone
                os.killpg(os.getpgrp(), signal.SIGKILL)
        pid, status = os.waitpid(child_pid, os.WNOHANG)
        if pid == child_pid:
            return status


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: lifeline.py FD -- PROGRAM [ARGS...]\n")
        return 254
    lifeline_fd = int(argv[0])
    command = argv[2:]
    child_pid = os.fork()
    if child_pid == 0:
        os.close(lifeline_fd)
        try:
            os.execvp(command[0], command)
        except OSError as error:
            sys.stderr.write(f"lifeline: cannot run {command[0]!r}: {error}\n")
            os._exit(127)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    status = _wait_for_child_or_lifeline(child_pid, lifeline_fd)
    if os.WIFSIGNALED(status):
        # Die of the same signal so the harness sees a negative return code, as if it had
        # started the node directly.
        signum = os.WTERMSIG(status)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    return os.waitstatus_to_exitcode(status) if not os.WIFSIGNALED(status) else 255


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
