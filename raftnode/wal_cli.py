"""``raftlab wal``: look into a stopped node's write-ahead log, and cut it when it must be.

- ``raftlab wal inspect DIR`` prints every WAL record and snapshot file of the data
  directory (``python -m raftnode.storage DIR`` prints the same lines) and, on stderr,
  whether the node would start. Exit 0: nothing damaged; 1: damage (a torn tail the node
  truncates on start, or corruption it refuses to start on); 254: bad arguments.
- ``raftlab wal truncate DIR --at OFFSET [--segment NAME] [--yes]`` cuts a segment at a
  record boundary and removes the segments after it. It first says what the cut drops
  (how many records, which entry indexes, which hard states) and what the node restarts
  from, then asks (or takes ``--yes``). Exit 0: cut; 1: not cut (declined, or the node
  is running); 254: bad arguments (not a record boundary, no such segment).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from raftnode.storage import repair
from raftnode.storage.interface import StorageError
from raftnode.storage.wal import (
    format_inspection,
    segment_damage,
    snapshot_inspect,
    wal_inspect,
)

_DATA_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


def startup_verdict(data_dir: Path) -> tuple[bool, str]:
    """Would a node start on this directory's WAL, and what would it do about damage?"""
    damage = segment_damage(data_dir)
    if not damage:
        return False, "no damage: the node starts"
    first = damage[0]
    if first.torn:
        return True, (
            f"{first.file}: a torn tail at byte offset {first.offset} ({first.reason}); "
            "the node truncates it when it starts"
        )
    return True, (
        f"the node refuses to start: {first.file}: corrupt record at byte offset "
        f"{first.offset} ({first.problem}): {first.reason}"
    )


def inspect_dir(data_dir: Path, *, as_json: bool = False) -> int:
    summaries = wal_inspect(data_dir) + snapshot_inspect(data_dir)
    if as_json:
        for summary in summaries:
            click.echo(json.dumps(asdict(summary)))
    elif summaries:
        click.echo(format_inspection(summaries))
    damaged, verdict = startup_verdict(data_dir)
    click.echo(verdict, err=True)
    return 1 if damaged or any(s.kind == "damaged" for s in summaries) else 0


@click.group("wal")
def wal_group() -> None:
    """Inspect or repair a stopped node's write-ahead log (DIR is its --data-dir)."""


@wal_group.command("inspect")
@click.argument("data_dir", type=_DATA_DIR)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record.")
@click.pass_context
def inspect_command(ctx: click.Context, data_dir: Path, as_json: bool) -> None:
    """Print every record (file, byte offset, size, kind, what it holds) and snapshot file;
    on stderr, whether the node would start. Exit 0 intact, 1 damaged."""
    ctx.exit(inspect_dir(data_dir, as_json=as_json))


@wal_group.command("truncate")
@click.argument("data_dir", type=_DATA_DIR)
@click.option(
    "--at",
    "offset",
    type=click.IntRange(min=0),
    required=True,
    help="The byte offset to cut at: the start of a record (`raftlab wal inspect` lists them).",
)
@click.option(
    "--segment",
    default=None,
    help="The segment to cut (00000003.seg or 3); default: the first damaged one, else the newest.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def truncate_command(
    ctx: click.Context, data_dir: Path, offset: int, segment: str | None, yes: bool
) -> None:
    """Drop the record at --at and everything after it (later segments too), after saying
    what that drops and what the node restarts from. The node must be stopped.

    A node that forgets a vote may vote twice in a term, and one that forgets entries it
    acknowledged may lose committed writes: prefer rebuilding the node from an empty data
    directory when the rest of the cluster has a majority."""
    try:
        cut = repair.plan(data_dir, offset, segment)
    except repair.TruncationError as error:
        raise click.BadParameter(str(error), param_hint="--at/--segment") from None
    except StorageError as error:
        raise click.UsageError(str(error)) from None
    click.echo(cut.describe())
    if not cut.changes_anything:
        ctx.exit(0)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("not a terminal to ask on: pass --yes to truncate")
        if not click.confirm("Truncate?", default=False):
            click.echo("nothing changed")
            ctx.exit(1)
    try:
        repair.apply(cut)
    except StorageError as error:
        click.echo(f"nothing changed: {error}", err=True)
        ctx.exit(1)
    click.echo(f"truncated {cut.segment} at byte offset {cut.offset}")
    ctx.exit(0)
