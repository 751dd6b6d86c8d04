"""``raftlab wal inspect`` and ``raftlab wal truncate`` on real WAL files, through the
``raftlab`` entry point (so that its exit codes are the ones a shell sees)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from campaign.cli import main as raftlab
from raftnode.messages import Entry, EntryKind, HardState
from raftnode.storage import FileStorage, StorageError, newest_segment, segment_paths, wal_inspect


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        raftlab(argv)
    captured = capsys.readouterr()
    code = exited.value.code
    return (0 if code is None else int(code)), captured.out, captured.err


def build_wal(path: Path, *, segment_bytes: int = 64 * 1024 * 1024, last: int = 6) -> None:
    """Entries 1..last, one per persist, each with a hard state; then a vote for n3."""
    storage = FileStorage(path, segment_bytes=segment_bytes, log=lambda line: None)
    storage.load()
    for index in range(1, last + 1):
        entry = Entry(2, index, EntryKind.COMMAND, b"v%d" % index)
        storage.persist(HardState(2, "n1", index - 1), [entry])
    storage.persist(HardState(3, "n3", last - 1), [])
    storage.close()


def flip_in_last_record(path: Path) -> tuple[Path, int]:
    last = wal_inspect(path)[-1]
    segment = Path(last.file)
    data = bytearray(segment.read_bytes())
    data[last.offset + last.size - 3] ^= 0xFF
    segment.write_bytes(bytes(data))
    return segment, last.offset


def load(path: Path) -> tuple[HardState, list[int]]:
    storage = FileStorage(path, log=lambda line: None)
    try:
        restored = storage.load()
    finally:
        storage.close()
    return restored.hard_state, [e.index for e in restored.entries]


def test_inspect_lists_records_and_says_whether_the_node_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_wal(tmp_path)
    code, out, err = run(["wal", "inspect", str(tmp_path)], capsys)
    assert code == 0 and "node starts" in err
    lines = out.splitlines()
    assert len(lines) == 8 and lines[0].startswith("00000001.seg\t0\t")
    assert lines[-1].endswith("persist\tterm 3 vote 'n3' commit 5")

    segment, offset = flip_in_last_record(tmp_path)
    code, out, err = run(["wal", "inspect", str(tmp_path)], capsys)
    assert code == 1
    assert out.splitlines()[-1].startswith(f"00000001.seg\t{offset}\t")
    assert "\tdamaged\t" in out.splitlines()[-1] and "corrupt" in out.splitlines()[-1]
    assert f"refuses to start: {segment}: corrupt record at byte offset {offset}" in err

    code, out, _ = run(["wal", "inspect", "--json", str(tmp_path)], capsys)
    assert code == 1 and '"kind": "damaged"' in out.splitlines()[-1]


def test_inspect_lists_the_records_after_damage_in_the_middle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_wal(tmp_path)
    records = wal_inspect(tmp_path)
    victim = records[3]
    segment = Path(victim.file)
    data = bytearray(segment.read_bytes())
    data[victim.offset + 2] ^= 0xFF  # its magic: the record cannot even be framed
    segment.write_bytes(bytes(data))
    code, out, err = run(["wal", "inspect", str(tmp_path)], capsys)
    assert code == 1
    lines = [line.split("\t") for line in out.splitlines()]
    assert [line[3] for line in lines] == [r.kind for r in records[:3]] + ["damaged"] + [
        r.kind for r in records[4:]
    ]
    assert lines[3][1:3] == [str(victim.offset), str(victim.size)]
    assert f"followed by a valid record at byte offset {records[4].offset}" in lines[3][4]
    assert [line[1] for line in lines[4:]] == [str(r.offset) for r in records[4:]]
    assert f"refuses to start: {segment}: corrupt record at byte offset {victim.offset}" in err
    # The cut can be made at the damage: it drops it and the readable records after it.
    code, out, _ = run(
        ["wal", "truncate", str(tmp_path), "--at", str(victim.offset), "--yes"], capsys
    )
    assert code == 0 and f"drops {len(records) - 4} readable record(s) and " in out
    assert load(tmp_path) == (HardState(2, "n1", 1), [1, 2])  # records[0] is the header


def test_inspect_of_a_torn_tail_says_the_node_truncates_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_wal(tmp_path)
    segment = newest_segment(tmp_path)
    assert segment is not None
    segment.write_bytes(segment.read_bytes()[:-5])
    code, _, err = run(["wal", "inspect", str(tmp_path)], capsys)
    assert code == 1 and "torn tail" in err and "truncates it when it starts" in err
    assert segment.stat().st_size > 0  # inspecting changes nothing


def test_truncate_drops_a_corrupt_record_and_says_what_it_drops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_wal(tmp_path)
    segment, offset = flip_in_last_record(tmp_path)
    with pytest.raises(StorageError, match=f"byte offset {offset}"):
        load(tmp_path)
    # One record earlier: the corrupt vote and entry 6 go; term 2's state stays.
    records = wal_inspect(tmp_path)
    earlier = records[-2].offset
    code, out, _ = run(["wal", "truncate", str(tmp_path), "--at", str(earlier), "--yes"], capsys)
    assert code == 0, out
    assert f"truncate {segment} at byte offset {earlier}" in out
    assert "drops 1 readable record(s) and " in out and "unreadable byte(s)" in out
    assert "entries: indexes 6..6" in out
    assert "hard states: 1, the newest term 2 vote 'n1' commit 5" in out
    assert "keeps: term 2 vote 'n1' commit 4; log up to index 5" in out
    assert f"truncated {segment} at byte offset {earlier}" in out
    assert segment.stat().st_size == earlier
    assert load(tmp_path) == (HardState(2, "n1", 4), [1, 2, 3, 4, 5])


def test_truncate_across_segments_removes_the_later_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_wal(tmp_path, segment_bytes=150, last=12)
    paths = segment_paths(tmp_path)
    assert len(paths) >= 4
    second = [s for s in wal_inspect(tmp_path) if s.file == str(paths[1])]
    cut = second[1]  # the first record after segment 2's header
    code, out, _ = run(
        ["wal", "truncate", str(tmp_path), "--segment", "2", "--at", str(cut.offset), "--yes"],
        capsys,
    )
    assert code == 0, out
    first_dropped = int(cut.detail.split()[1].split("..")[0])
    assert f"entries: indexes {first_dropped}..12" in out
    assert "removes the later segment(s) " + ", ".join(p.name for p in paths[2:]) in out
    assert segment_paths(tmp_path) == paths[:2]
    hard_state, indexes = load(tmp_path)
    assert indexes == list(range(1, first_dropped))
    assert hard_state == HardState(2, "n1", first_dropped - 2)


def test_truncate_refuses_bad_offsets_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_wal(tmp_path)
    segment, offset = flip_in_last_record(tmp_path)
    before = segment.read_bytes()
    code, _, err = run(["wal", "truncate", str(tmp_path), "--at", str(offset + 1)], capsys)
    assert code == 254
    assert f"byte offset {offset + 1} is not a record boundary of {segment}" in err
    assert f"the nearest: {offset}" in err
    code, _, err = run(["wal", "truncate", str(tmp_path), "--at", "-1"], capsys)
    assert code == 254
    code, _, err = run(["wal", "truncate", str(tmp_path), "--at", "0", "--segment", "9"], capsys)
    assert code == 254 and "no segment '9'" in err
    code, _, err = run(["wal", "truncate", str(tmp_path / "absent"), "--at", "0"], capsys)
    assert code == 254
    code, _, err = run(["wal", "inspect"], capsys)
    assert code == 254
    assert segment.read_bytes() == before


def test_truncate_asks_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    build_wal(tmp_path)
    segment, offset = flip_in_last_record(tmp_path)
    before = segment.read_bytes()
    # No terminal and no --yes: refused as a usage error.
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, out, err = run(["wal", "truncate", str(tmp_path), "--at", str(offset)], capsys)
    assert code == 254 and "pass --yes" in err and "drops 0 readable record(s)" in out

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    code, out, _ = run(["wal", "truncate", str(tmp_path), "--at", str(offset)], capsys)
    assert code == 1 and "nothing changed" in out
    assert segment.read_bytes() == before
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    code, out, _ = run(["wal", "truncate", str(tmp_path), "--at", str(offset)], capsys)
    assert code == 0 and segment.stat().st_size == offset
    assert load(tmp_path) == (HardState(2, "n1", 5), [1, 2, 3, 4, 5, 6])


def test_truncate_refuses_while_a_node_holds_the_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_wal(tmp_path)
    segment = newest_segment(tmp_path)
    assert segment is not None
    before = segment.read_bytes()
    offset = wal_inspect(tmp_path)[-1].offset
    holder = FileStorage(tmp_path, log=lambda line: None)
    holder.load()
    try:
        code, _, err = run(["wal", "truncate", str(tmp_path), "--at", str(offset), "--yes"], capsys)
    finally:
        holder.close()
    assert code == 1 and "in use" in err and "nothing changed" in err
    assert segment.read_bytes() == before
