"""UDP endpoints the delay tests run inside namespaces (``ip netns exec NS python3 THIS``).

- ``echo HOST PORT``: answer every datagram with itself; prints ``ready`` once bound, stops
  at end of stdin.
- ``ping HOST PORT COUNT``: COUNT round trips one after another; prints their times (s) as
  a JSON list (a lost answer after 2 s is ``null``).
- ``sink HOST PORT IDLE``: prints ``ready``, then collects numbered datagrams until none
  came for IDLE seconds; prints the numbers in arrival order as a JSON list.
- ``send HOST PORT COUNT``: sends datagrams numbered 0..COUNT-1, 1 ms apart.

Standard library only; a script, not imported by the tests.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import time


def echo(host: str, port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select([sock, sys.stdin], [], [])
        if sys.stdin in readable and not sys.stdin.readline():
            return
        if sock in readable:
            data, peer = sock.recvfrom(2048)
            sock.sendto(data, peer)


def ping(host: str, port: int, count: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2.0)
    times: list[float | None] = []
    for number in range(count):
        started = time.monotonic()
        sock.sendto(struct.pack("!I", number), (host, port))
        try:
            while struct.unpack("!I", sock.recv(2048)[:4])[0] != number:
                pass  # a late answer to an earlier, timed-out ping
            times.append(time.monotonic() - started)
        except TimeoutError:
            times.append(None)
    print(json.dumps(times), flush=True)


def sink(host: str, port: int, idle: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((host, port))
    print("ready", flush=True)
    sock.settimeout(10.0)  # the first datagram may take a while: the sender starts later
    arrivals: list[int] = []
    try:
        while True:
            arrivals.append(struct.unpack("!I", sock.recv(2048)[:4])[0])
            sock.settimeout(idle)
    except TimeoutError:
        pass
    print(json.dumps(arrivals), flush=True)


def send(host: str, port: int, count: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for number in range(count):
        sock.sendto(struct.pack("!I", number), (host, port))
        time.sleep(0.001)


if __name__ == "__main__":
    command, host, port, *rest = sys.argv[1:]
    if command == "echo":
        echo(host, int(port))
    elif command == "ping":
        ping(host, int(port), int(rest[0]))
    elif command == "sink":
        sink(host, int(port), float(rest[0]))
    elif command == "send":
        send(host, int(port), int(rest[0]))
    else:
        sys.exit(f"unknown command {command!r}")
