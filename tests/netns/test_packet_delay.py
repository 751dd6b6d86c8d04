"""Delay and reorder in hosts mode: the NFQUEUE packet delayer (`nemesis.packet_delay`)
and `NetnsMesh.set_delay`. The protocol and the schedule are checked byte by byte and
draw by draw anywhere; real packets between real namespaces need root, ip, nft and
iptables (skipped with the reason otherwise)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nemesis import netns
from nemesis import packet_delay as pd

REASON = netns.unavailable_reason() if sys.platform == "linux" else "Linux only"
if REASON is None and shutil.which("iptables") is None:
    REASON = "iptables is not installed (Debian package iptables)"
needs_netns = pytest.mark.skipif(REASON is not None, reason=f"hosts mode unavailable: {REASON}")
TOOL = str(Path(__file__).with_name("udp_tool.py"))
PORT = 9000


def host16(value: int) -> bytes:
    return value.to_bytes(2, sys.byteorder)  # netlink headers are in host order


def host32(value: int) -> bytes:
    return value.to_bytes(4, sys.byteorder)


# --- the protocol, against hand-built bytes -------------------------------------------------


def test_verdict_is_the_documented_layout() -> None:
    expected = (
        host32(32) + host16(0x0301) + host16(0x0001) + host32(0) + host32(0)  # nlmsghdr:
        # length, NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_VERDICT, NLM_F_REQUEST, seq, port
        + bytes([0, 0, 0x01, 0x02])  # nfgenmsg: AF_UNSPEC, v0, res_id 258 big-endian
        + host16(12) + host16(2)  # NFQA_VERDICT_HDR, 8 bytes
        + bytes([0, 0, 0, 1]) + bytes([0xDE, 0xAD, 0xBE, 0xEF])  # NF_ACCEPT, packet id
    )  # fmt: skip
    assert pd.encode_verdict(258, 0xDEADBEEF) == expected


def test_bind_is_the_documented_layout() -> None:
    expected = (
        host32(64) + host16(0x0302) + host16(0x0005) + host32(7) + host32(0)
        + bytes([0, 0, 0, 3])  # queue 3
        + host16(8) + host16(1) + bytes([1, 0, 0, 0])  # NFQA_CFG_CMD: BIND, pad, pf 0
        + host16(9) + host16(2) + bytes([0, 0, 0, 20, 2]) + bytes(3)  # PARAMS: 20 B, COPY_PACKET
        + host16(8) + host16(3) + (16384).to_bytes(4, "big")  # QUEUE_MAXLEN
        + host16(8) + host16(4) + bytes([0, 0, 0, 5])  # MASK: FAIL_OPEN | GSO
        + host16(8) + host16(5) + bytes([0, 0, 0, 5])  # FLAGS: the same
    )  # fmt: skip
    assert pd.encode_bind(3, seq=7) == expected


def _kernel_packet(packet_id: int, ip_header: bytes) -> bytes:
    attributes = (
        host16(11) + host16(1) + packet_id.to_bytes(4, "big") + bytes([0x08, 0x00, 1]) + bytes(1)
        + host16(8) + host16(5) + host32(2)  # NFQA_IFINDEX_INDEV: skipped
        + host16(4 + len(ip_header)) + host16(10) + ip_header  # NFQA_PAYLOAD
    )  # fmt: skip
    body = bytes([2, 0, 0, 3]) + attributes
    return host32(16 + len(body)) + host16(0x0300) + host16(0) + host32(0) + host32(0) + body


def test_packet_and_error_messages_decode() -> None:
    ip_header = (
        bytes([0x45, 0, 0, 40]) + bytes(8) + bytes([10, 213, 1, 11]) + bytes([10, 213, 1, 12])
    )
    error = host32(36) + host16(2) + host16(0) + host32(9) + host32(0) + (-16).to_bytes(4, sys.byteorder, signed=True) + bytes(16)  # fmt: skip
    ack = host32(36) + host16(2) + host16(0) + host32(1) + host32(0) + bytes(4) + bytes(16)
    datagram = _kernel_packet(0x01020304, ip_header) + error + ack
    assert list(pd.decode(datagram)) == [
        pd.Packet(0x01020304, "10.213.1.11"),
        pd.Answer(9, 16),  # EBUSY: the queue has another listener
        pd.Answer(1, 0),  # an acknowledgement
    ]
    ipv6 = bytes([0x60]) + bytes(19)
    assert list(pd.decode(_kernel_packet(5, ipv6))) == [pd.Packet(5, None)]  # passed at once
    with pytest.raises(ValueError, match="overruns"):
        list(pd.decode(datagram[:30]))


def test_config_lines_are_checked_whole() -> None:
    table = pd.parse_config('{"10.213.1.11": [0.1, 0.05, false], "10.213.1.12": [0, 1, true]}')
    assert table == {
        "10.213.1.11": pd.LinkDelay(0.1, 0.05, False),
        "10.213.1.12": pd.LinkDelay(0.0, 1.0, True),
    }
    assert pd.parse_config("{}") == {}
    for line, complaint in [
        ("nonsense", "not JSON"),
        ("[1, 2]", "expected an object"),
        ('{"node1": [0.1, 0, false]}', "not an IPv4 address"),
        ('{"10.0.0.1": [0.1, 0]}', "expected \\[delay_s"),
        ('{"10.0.0.1": [-0.1, 0, false]}', "delay must be"),
        ('{"10.0.0.1": [0.1, NaN, false]}', "jitter must be"),
        ('{"10.0.0.1": [true, 0, false]}', "delay must be"),
        ('{"10.0.0.1": [0.1, 0, "yes"]}', "reorder must be"),
    ]:
        with pytest.raises(ValueError, match=complaint):
            pd.parse_config(line)


def _releases(reorder: bool) -> list[int]:
    schedule = pd.Schedule(seed=1)
    schedule.table = {"10.0.0.1": pd.LinkDelay(0.05, 0.05, reorder)}
    for number in range(200):
        schedule.hold(pd.Packet(number, "10.0.0.1"), now=number * 0.001)
    return schedule.pop_due(10.0)


def test_schedule_keeps_a_link_s_order_unless_reordering() -> None:
    assert _releases(reorder=False) == list(range(200))
    shuffled = _releases(reorder=True)
    assert sorted(shuffled) == list(range(200)) and shuffled != list(range(200))
    assert _releases(reorder=True) == shuffled  # the same seed, the same draws


def test_schedule_delays_only_configured_sources_and_heals_in_order() -> None:
    schedule = pd.Schedule(seed=1)
    schedule.table = {"10.0.0.1": pd.LinkDelay(0.1, 0.0, False)}
    assert schedule.hold(pd.Packet(1, "10.0.0.1"), now=0.0) == pytest.approx(0.1)
    assert schedule.hold(pd.Packet(2, "10.0.0.2"), now=0.0) == 0.0  # another link: at once
    assert schedule.hold(pd.Packet(3, None), now=0.0) == 0.0
    assert schedule.pop_due(0.05) == [2, 3] and schedule.next_release() == pytest.approx(0.1)
    schedule.table = {}  # healed: a later packet of the link still waits for the held one
    assert schedule.hold(pd.Packet(4, "10.0.0.1"), now=0.06) == pytest.approx(0.1)
    assert schedule.pop_all() == [1, 4] and len(schedule) == 0


# --- the mesh's side, without root -------------------------------------------------------


def test_set_delay_writes_queue_rules_and_tables_per_receiver() -> None:
    mesh = netns.NetnsMesh(["n1", "n2", "n3"], port=7000, token="abcdef")
    ip = {node: address[0] for node, address in mesh.nodes.items()}
    mesh.set_delay(0.1, 0.02, links=[("n1", "n2"), ("n3", "n2")])
    mesh.set_delay(0.2, reorder=True, links=[("n2", "n1")])
    queue = f"-j NFQUEUE --queue-num {mesh.node_ids.index('n2') + 1} --queue-bypass"
    assert f"-A INPUT -s {ip['n1']} {queue}" in mesh.delay_rules("n2")
    assert f"-A INPUT -s {ip['n3']} {queue}" in mesh.delay_rules("n2")
    assert "-A INPUT" not in mesh.delay_rules("n3")
    assert mesh.delay_table("n2") == {ip["n1"]: [0.1, 0.02, False], ip["n3"]: [0.1, 0.02, False]}
    assert pd.parse_config(json.dumps(mesh.delay_table("n1"))) == {
        ip["n2"]: pd.LinkDelay(0.2, 0.0, True)
    }
    assert mesh.describe()["n2->n1"] == {"delay": 0.2, "jitter": 0.0, "reorder": True}
    mesh.set_delay(0.0, 0.0, links=[("n1", "n2")])
    assert "n1->n2" not in mesh.describe() and ip["n1"] not in mesh.delay_rules("n2")
    with pytest.raises(ValueError):
        mesh.set_delay(-1.0)
    mesh.heal()
    assert mesh.describe() == {} and all(not mesh.delay_table(n) for n in mesh.node_ids)


def test_missing_iptables_is_refused_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "_delay_probe", [])
    monkeypatch.setattr(netns, "unavailable_reason", lambda: None)
    real_which = shutil.which
    monkeypatch.setattr(
        netns.shutil, "which", lambda tool: None if tool == "iptables" else real_which(tool)
    )
    reason = netns.unsupported_reason(["partition", "delay"])
    assert reason is not None and "iptables" in reason and "--net proxy" in reason
    assert netns.unsupported_reason(["partition", "loss"]) is None


# --- real packets --------------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[netns.NetnsMesh]:
    mesh = netns.NetnsMesh(["a", "b"], port=PORT, seed=11)
    mesh.setup()
    try:
        yield mesh
    finally:
        mesh.teardown()


def _in(mesh: netns.NetnsMesh, node: str, *args: str) -> list[str]:
    return [*mesh.exec_prefix(node), sys.executable, TOOL, *args]


def _ping(mesh: netns.NetnsMesh, count: int) -> list[float]:
    done = subprocess.run(
        _in(mesh, "a", "ping", mesh.nodes["b"][0], str(PORT), str(count)),
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    times = json.loads(done.stdout)
    assert None not in times, times  # nothing is lost: delay is not loss
    return times


def _delayer_pids(mesh: netns.NetnsMesh) -> set[int]:
    pids: set[int] = set()
    for space in mesh.namespaces.values():
        for pid in subprocess.run(
            ["ip", "netns", "pids", space], capture_output=True, text=True
        ).stdout.split():
            try:
                if b"nemesis.packet_delay" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.add(int(pid))
            except OSError:
                pass
    return pids


@needs_netns
def test_delay_on_one_link_slows_its_round_trips_until_heal(pair: netns.NetnsMesh) -> None:
    assert netns.delay_unavailable_reason() is None  # iptables is here: the probe must pass
    echo = subprocess.Popen(
        _in(pair, "b", "echo", pair.nodes["b"][0], str(PORT)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        before = statistics.median(_ping(pair, 5))
        pair.set_delay(0.1, links=[("a", "b")])  # a->b only: each round trip crosses it once
        delayed = _ping(pair, 5)
        pids = _delayer_pids(pair)
        assert len(pids) == 2  # one per namespace
        pair.heal()
        healed = statistics.median(_ping(pair, 5))
        print(f"median RTT before {before * 1e3:.2f} ms, with 100 ms on a->b "
              f"{statistics.median(delayed) * 1e3:.2f} ms, after heal {healed * 1e3:.2f} ms")  # fmt: skip
        assert min(delayed) >= 0.1  # every request waited its 100 ms in b's delayer
        assert healed < 0.02 and healed < min(delayed) - 0.08
    finally:
        assert echo.stdin is not None
        echo.stdin.close()
        echo.wait(timeout=10)
    pair.teardown()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # the delayers are gone


def _arrivals(mesh: netns.NetnsMesh, count: int) -> list[int]:
    sink = subprocess.Popen(
        _in(mesh, "b", "sink", mesh.nodes["b"][0], str(PORT), "1.0"),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    subprocess.run(
        _in(mesh, "a", "send", mesh.nodes["b"][0], str(PORT), str(count)), check=True, timeout=30
    )
    out, _ = sink.communicate(timeout=30)
    return json.loads(out)


@needs_netns
def test_jitter_reorders_packets_only_when_asked(pair: netns.NetnsMesh) -> None:
    pair.set_delay(0.02, 0.02, links=[("a", "b")])  # 0-40 ms, datagrams 1 ms apart
    kept = _arrivals(pair, 100)
    pair.set_delay(0.02, 0.02, reorder=True, links=[("a", "b")])
    shuffled = _arrivals(pair, 100)
    inversions = sum(1 for x, y in zip(shuffled, shuffled[1:], strict=False) if y < x)
    print(f"reorder: {inversions} of 99 neighbours out of order")
    assert kept == list(range(100))
    assert sorted(shuffled) == list(range(100)) and inversions >= 1


@needs_netns
def test_heal_lets_held_packets_through_instead_of_dropping_them(pair: netns.NetnsMesh) -> None:
    # heal() rewrites the nft chain and the NFQUEUE rules of b while its delayer holds
    # every datagram: a rewrite that deleted a base chain would make the kernel drop them.
    pair.set_delay(1.0, links=[("a", "b")])
    sink = subprocess.Popen(
        _in(pair, "b", "sink", pair.nodes["b"][0], str(PORT), "2.0"),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    subprocess.run(_in(pair, "a", "send", pair.nodes["b"][0], str(PORT), "20"), check=True)
    pair.heal()
    out, _ = sink.communicate(timeout=30)
    assert json.loads(out) == list(range(20))


@needs_netns
@pytest.mark.parametrize("ending", ["eof", "sigterm"])
def test_delayer_survives_bad_lines_and_lets_go_of_everything_when_told(
    pair: netns.NetnsMesh, ending: str
) -> None:
    # The delayer run by hand on a queue of its own, as the harness runs it.
    a, b = pair.nodes["a"][0], pair.nodes["b"][0]
    subprocess.run(
        [*pair.exec_prefix("b"), "iptables", "-w", "5", "-A", "INPUT", "-s", a, "-j", "NFQUEUE",
         "--queue-num", "7", "--queue-bypass"], check=True,
    )  # fmt: skip
    delayer = subprocess.Popen(
        [*pair.exec_prefix("b"), sys.executable, "-m", "nemesis.packet_delay", "--queue", "7"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert delayer.stdin is not None and delayer.stdout is not None
    assert delayer.stdout.readline().strip() == "ready"
    delayer.stdin.write('not json\n{"10.0.0.1": [1, 2]}\n\xff\n')
    delayer.stdin.write(json.dumps({a: [30.0, 0.0, False]}) + "\n")  # longer than the test
    delayer.stdin.flush()
    sink = subprocess.Popen(
        _in(pair, "b", "sink", b, str(PORT), "1.0"), stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    subprocess.run(_in(pair, "a", "send", b, str(PORT), "20"), check=True)
    assert delayer.poll() is None  # alive after the bad lines, holding the datagrams
    if ending == "eof":
        delayer.stdin.close()
    else:
        delayer.terminate()
    delayer.wait(timeout=10)
    assert delayer.stderr is not None
    errors = delayer.stderr.read()
    out, _ = sink.communicate(timeout=30)
    assert delayer.returncode == 0, errors
    assert json.loads(out) == list(range(20))  # released at once, in order, none dropped
    assert errors.count("configuration line ignored") == 3, errors
    assert "not JSON" in errors and "expected [delay_s, jitter_s, reorder]" in errors


@needs_netns
def test_delay_is_refused_up_front_without_iptables(tmp_path: Path) -> None:
    # A PATH with ip and nft but no iptables: the run must stop before making anything.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ip", "nft"):
        os.symlink(shutil.which(tool) or tool, bin_dir / tool)
    before = {line.split()[0] for line in _netns_list()}
    done = subprocess.run(
        [*CAMPAIGN, "--nemesis", "delay", "--results-dir", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": str(bin_dir)},
    )  # fmt: skip
    assert done.returncode == 254, done.stderr
    assert "iptables" in done.stderr
    assert {line.split()[0] for line in _netns_list()} == before


def _netns_list() -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if line.startswith(netns.PREFIX)]


CAMPAIGN = [
    sys.executable, "-m", "campaign", "test", "--net", "netns", "--nodes", "3",
    "--nemesis-interval", "2", "--time-limit", "8", "--recovery-time", "1",
]  # fmt: skip


def _all_delayers() -> set[int]:
    """Every packet delayer on the machine (not the harness's short `--check` probe)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if b"nemesis.packet_delay" in argv and b"--check" not in argv:
            found.add(int(entry.name))
    return found


@pytest.mark.slow
@needs_netns
@pytest.mark.parametrize("reorder", [False, True], ids=["in-order", "reorder"])
def test_hosts_campaign_with_packet_delay_is_valid(tmp_path: Path, reorder: bool) -> None:
    before = (set(_netns_list()), _all_delayers())
    options = ["--nemesis-option", "delay.reorder=true"] if reorder else []
    done = subprocess.run(
        [*CAMPAIGN, "--nemesis", "delay", *options, "--seed", "6", "--results-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run = next((tmp_path / "register").iterdir())
    records = [json.loads(line) for line in (run / "nemesis.jsonl").read_text().splitlines()]
    starts = [record for record in records if record.get("f") == "start-delay"]
    assert starts, records
    # The delayers were told to reorder exactly when the run asked for it.
    assert all((record.get("value") or {}).get("reorder", False) is reorder for record in starts)
    assert "the kernel refused" not in done.stderr and "undelayed" not in done.stderr
    assert (set(_netns_list()), _all_delayers()) == before  # nothing left behind


@pytest.mark.slow
@needs_netns
@pytest.mark.parametrize("how", ["ctrl-c", "sigkill"])
def test_no_delayer_outlives_its_run(tmp_path: Path, how: str) -> None:
    before = (set(_netns_list()), _all_delayers())
    process = subprocess.Popen(
        [*CAMPAIGN, "--nemesis", "delay", "--time-limit", "60", "--results-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _all_delayers() - before[1]:  # the first delay started them
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no delayer started"
            time.sleep(0.2)
        delayers = _all_delayers() - before[1]
        if how == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)
            _, err = process.communicate(timeout=60)
            assert process.returncode == 130, err
        else:  # the harness dies without any teardown: the delayers see EOF and go
            os.kill(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)
            deadline = time.monotonic() + 10
            while _all_delayers() & delayers and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _all_delayers() & delayers  # gone by themselves, not killed below
            netns.remove_leftovers()  # what the next run does first
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert (set(_netns_list()), _all_delayers()) == before
