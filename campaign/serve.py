"""`raftlab serve [results/]`: browse the results folder on localhost (as Jepsen's `serve`).

``/`` is a listing of every run, newest first, coloured by verdict, with its workload,
nemesis, duration, operation count and the anomaly in one line, linking to each run's
report and files; everything else is served as static files from the folder, the text
formats (``.jsonl``, ``.edn``, ``.log``, ``.txt``) as UTF-8 ``text/plain`` so a browser
shows them instead of downloading them. The stdlib HTTP server runs in one Trio worker
thread (the loop blocks), owned by the command's nursery; Ctrl-C shuts it down, releases
the port and exits 0 with "stopped".
"""

from __future__ import annotations

import errno
import functools
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import trio

from campaign.results import CAMPAIGN_FILE, JUNIT_FILE, LATEST, REPORT_FILE, RESULTS_FILE
from campaign.verdict import normalize_valid

VERDICT_STYLE = {
    True: ("valid", "#c8e6c9"),
    False: ("invalid", "#ffcdd2"),
    "unknown": ("unknown", "#ffe0b2"),
}
NO_RESULT_STYLE = ("no result", "#eeeeee")


TEXT_TYPES = {
    ".jsonl": "text/plain; charset=utf-8",
    ".edn": "text/plain; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
}


@dataclass(slots=True)
class RunSummary:
    path: str  # relative to the served root, with '/' separators
    name: str
    started: str
    valid: Any  # True / False / "unknown", or None when results.json is missing
    workload: str
    nemesis: str
    seed: Any
    duration: str = ""  # "60.2 s", or "26.6 s simulated"
    op_count: int | None = None  # client operations completed (ok + fail + info)
    anomaly: str = ""  # the first anomaly in words (junit.xml's first failure message)


def _duration(campaign: dict[str, Any], results: dict[str, Any]) -> str:
    simulated = campaign.get("simulated_seconds")
    if isinstance(simulated, int | float):
        return f"{simulated:.1f} s simulated"
    phases = results.get("phase_seconds")
    if isinstance(phases, dict):
        total = sum(v for v in phases.values() if isinstance(v, int | float))
        return f"{total:.1f} s"
    return ""


def _op_count(results: dict[str, Any]) -> int | None:
    counts = results.get("counts")
    if not isinstance(counts, dict):
        return None
    return sum(
        n
        for row in counts.values()
        if isinstance(row, dict)
        for n in row.values()
        if isinstance(n, int)
    )


def _anomaly(run_dir: Path, results: dict[str, Any]) -> str:
    """The run's first anomaly: junit.xml's failure message (written with the history at
    hand, so it names a stale read precisely), else the checkers' own words."""
    from campaign.junit import first_message

    message = first_message(run_dir / JUNIT_FILE)
    if message:
        return message
    if results.get("valid") is True or not results:
        return ""
    from checker.summary import headline

    return headline(results) or ""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _summary(root: Path, run_dir: Path) -> RunSummary:
    campaign = _read_json(run_dir / CAMPAIGN_FILE)
    campaign = campaign if isinstance(campaign, dict) else {}
    config = campaign.get("config") if isinstance(campaign.get("config"), dict) else {}
    results = _read_json(run_dir / RESULTS_FILE)
    valid = normalize_valid(results.get("valid")) if isinstance(results, dict) else None
    results = results if isinstance(results, dict) else {}
    relative = run_dir.relative_to(root).as_posix()
    return RunSummary(
        path="" if relative == "." else relative,
        name=str(config.get("name", run_dir.parent.name)),
        started=str(campaign.get("started", run_dir.name)),
        valid=valid,
        workload=str(config.get("workload", "")),
        nemesis=str(config.get("nemesis", "")),
        seed=campaign.get("seed", config.get("seed", "")),
        duration=_duration(campaign, results),
        op_count=_op_count(results),
        anomaly=_anomaly(run_dir, results) if valid is not True else "",
    )


def _is_run(path: Path) -> bool:
    return (path / CAMPAIGN_FILE).is_file() or (path / RESULTS_FILE).is_file()


def find_runs(root: Path) -> list[RunSummary]:
    """Every run under `root` (a run folder, a ``<name>/`` folder or ``results/``), newest first."""
    root = Path(root)
    runs: list[RunSummary] = []
    if _is_run(root):
        return [_summary(root, root)]
    for first in sorted(root.iterdir()) if root.is_dir() else []:
        if first.name == LATEST or first.is_symlink() or not first.is_dir():
            continue
        if _is_run(first):
            runs.append(_summary(root, first))
            continue
        for second in sorted(first.iterdir()):
            if second.name == LATEST or second.is_symlink() or not second.is_dir():
                continue
            if _is_run(second):
                runs.append(_summary(root, second))
    runs.sort(key=lambda run: run.started, reverse=True)
    return runs


LISTING_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1300px;padding:0 1em}"
    "table{border-collapse:collapse;width:100%}"
    "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
    "td.num{text-align:right;white-space:nowrap}td.anomaly{font-size:.9em;max-width:38em}"
    "th{background:#f5f5f5}"
)


def listing_html(root: Path) -> str:
    runs = find_runs(root)
    rows: list[str] = []
    for run in runs:
        label, colour = (
            VERDICT_STYLE.get(run.valid, NO_RESULT_STYLE)
            if run.valid is not None
            else NO_RESULT_STYLE
        )
        link = quote(run.path + "/" if run.path else "")
        report = f"{link}{REPORT_FILE}"
        ops = "" if run.op_count is None else f"{run.op_count:,}"
        rows.append(
            f'<tr class="{html.escape(label.replace(" ", "-"))}" style="background:{colour}">'
            f'<td><a href="{html.escape(report)}">{html.escape(run.name)}</a></td>'
            f"<td>{html.escape(run.started)}</td>"
            f"<td><b>{html.escape(label)}</b></td>"
            f"<td>{html.escape(run.workload)}</td><td>{html.escape(run.nemesis)}</td>"
            f'<td class="num">{html.escape(run.duration)}</td><td class="num">{ops}</td>'
            f"<td>{html.escape(str(run.seed))}</td>"
            f'<td class="anomaly">{html.escape(run.anomaly)}</td>'
            f'<td><a href="{html.escape(link) or "./"}">files</a></td></tr>'
        )
    body = "".join(rows) if rows else '<tr><td colspan="10">no runs yet</td></tr>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>raftlab results</title><style>{LISTING_STYLE}</style></head><body>"
        f"<h1>raftlab results</h1><p>{len(runs)} runs in {html.escape(str(root))}</p>"
        "<table><thead><tr><th>run</th><th>started</th><th>verdict</th><th>workload</th>"
        "<th>nemesis</th><th>duration</th><th>ops</th><th>seed</th><th>anomaly</th><th></th>"
        f"</tr></thead><tbody>{body}</tbody></table></body></html>"
    )


class ResultsRequestHandler(SimpleHTTPRequestHandler):
    """Static files from the results folder, plus the generated listing at ``/``."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TEXT_TYPES}

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.path.split("?", 1)[0] in ("/", "/index.html"):
            body = listing_html(Path(self.directory)).encode("utf-8")
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        pass  # quiet: the command prints its URL; browsing should not flood the terminal


def make_server(root: Path, host: str, port: int) -> HTTPServer:
    handler = functools.partial(ResultsRequestHandler, directory=str(root))
    return HTTPServer((host, port), handler)


async def serve_forever(
    server: HTTPServer,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run `server` in a worker thread until cancelled; then shut it down and close the socket."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            functools.partial(
                trio.to_thread.run_sync, functools.partial(server.serve_forever, poll_interval=0.1)
            )
        )
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            # Blocks for at most one poll interval; the worker thread then returns.
            server.shutdown()
            server.server_close()


@click.command("serve")
@click.argument("root", type=click.Path(path_type=Path, file_okay=False), default=Path("results"))
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port on 127.0.0.1.",
)
def serve_command(root: Path, port: int) -> None:
    """Serve the results folder on 127.0.0.1 for browsing (Ctrl-C stops)."""
    if not root.is_dir():
        raise click.UsageError(f"{root}: no such directory")
    try:
        server = make_server(root.resolve(), "127.0.0.1", port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise click.UsageError(f"port {port} is in use; choose another with --port") from None
        raise click.UsageError(f"cannot listen on 127.0.0.1:{port}: {error.strerror}") from None
    bound_port = server.server_address[1]
    click.echo(f"serving {root} at http://127.0.0.1:{bound_port}/ (Ctrl-C stops)")
    run: Callable[[], Any] = functools.partial(serve_forever, server)
    try:
        trio.run(run)
    except* KeyboardInterrupt:  # Ctrl-C is how this command ends: quietly, exit 0
        click.echo("stopped")
