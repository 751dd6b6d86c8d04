"""`raftlab serve`: the listing coloured by verdict and static files, on a real socket."""

from __future__ import annotations

import json
import urllib.request

import trio

from campaign.serve import find_runs, listing_html, make_server, serve_forever


def make_run(root, name, stamp, valid):
    run = root / name / stamp
    (run / "nodes").mkdir(parents=True)
    (run / "campaign.json").write_text(
        json.dumps(
            {
                "seed": 3,
                "started": f"2026-11-26T{stamp[-6:-4]}:00:00+00:00",
                "config": {"name": name, "workload": "register"},
            }
        )
    )
    if valid is not None:
        (run / "results.json").write_text(json.dumps({"valid": valid}))
    (run / "report.html").write_text(f"<html><body>report of {name}</body></html>")
    return run


def test_listing_coloured_by_verdict(tmp_path):
    make_run(tmp_path, "good", "20261126T080000", True)
    make_run(tmp_path, "bad", "20261126T090000", False)
    make_run(tmp_path, "odd", "20261126T100000", "unknown")
    make_run(tmp_path, "crashed", "20261126T110000", None)
    (tmp_path / "good" / "latest").symlink_to("20261126T080000")
    (tmp_path / "latest").symlink_to("good/20261126T080000")
    runs = find_runs(tmp_path)
    assert [run.name for run in runs] == [
        "crashed",
        "odd",
        "bad",
        "good",
    ]  # newest first, no links twice
    page = listing_html(tmp_path)
    assert 'class="valid" style="background:#c8e6c9"' in page
    assert 'class="invalid" style="background:#ffcdd2"' in page
    assert 'class="unknown"' in page and 'class="no-result"' in page
    assert 'href="bad/20261126T090000/report.html"' in page


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


async def test_serves_listing_and_reports_then_releases_the_port(tmp_path):
    make_run(tmp_path, "good", "20261126T080000", True)
    port = 0  # a free port first, then the same one again
    for _attempt in range(2):  # a second server on the same port proves the first let go
        server = make_server(tmp_path, "127.0.0.1", port)
        port = server.server_address[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_forever, server)
            status, body = await trio.to_thread.run_sync(_get, f"http://127.0.0.1:{port}/")
            assert status == 200 and "good" in body and "valid" in body
            status, body = await trio.to_thread.run_sync(
                _get, f"http://127.0.0.1:{port}/good/20261126T080000/report.html"
            )
            assert status == 200 and "report of good" in body
            nursery.cancel_scope.cancel()


def _head(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers["Content-Type"], response.read()


async def test_text_files_are_served_as_utf8_text(tmp_path):
    run = make_run(tmp_path, "good", "20261126T080000", True)
    text = "héllo ✓\n"
    for name in ("history.jsonl", "history.edn", "nodes/n1.log", "history.txt"):
        (run / name).write_text(text, encoding="utf-8")
    server = make_server(tmp_path, "127.0.0.1", 0)
    port = server.server_address[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_forever, server)
        for name in ("history.jsonl", "history.edn", "nodes/n1.log", "history.txt"):
            url = f"http://127.0.0.1:{port}/good/20261126T080000/{name}"
            content_type, body = await trio.to_thread.run_sync(_head, url)
            assert content_type == "text/plain; charset=utf-8", name
            assert body.decode("utf-8") == text
        url = f"http://127.0.0.1:{port}/good/20261126T080000/report.html"
        content_type, _ = await trio.to_thread.run_sync(_head, url)
        assert content_type == "text/html; charset=utf-8"
        nursery.cancel_scope.cancel()


def test_listing_shows_workload_nemesis_duration_ops_and_the_anomaly(tmp_path):
    run = make_run(tmp_path, "bad", "20261126T090000", False)
    campaign = json.loads((run / "campaign.json").read_text())
    campaign["config"]["nemesis"] = "partition,kill"
    (run / "campaign.json").write_text(json.dumps(campaign))
    (run / "results.json").write_text(
        json.dumps(
            {
                "valid": False,
                "counts": {"read": {"ok": 10, "fail": 1, "info": 2}, "write": {"ok": 7}},
                "phase_seconds": {"running": 60.0, "final reads": 1.5},
                "checkers": {"bank": {"valid": False, "explanation": "2 of 9 reads broke"}},
            }
        )
    )
    sim = make_run(tmp_path, "sim", "20261126T100000", True)
    campaign = json.loads((sim / "campaign.json").read_text())
    campaign["simulated_seconds"] = 26.6
    (sim / "campaign.json").write_text(json.dumps(campaign))
    [sim_run, bad_run] = find_runs(tmp_path)
    assert (bad_run.workload, bad_run.nemesis) == ("register", "partition,kill")
    assert (bad_run.duration, bad_run.op_count) == ("61.5 s", 20)
    assert bad_run.anomaly == "invalid: 2 of 9 reads broke [bank]"
    assert sim_run.duration == "26.6 s simulated" and sim_run.anomaly == ""
    page = listing_html(tmp_path)
    for cell in ("partition,kill", "61.5 s", ">20<", "invalid: 2 of 9 reads broke [bank]"):
        assert cell in page
