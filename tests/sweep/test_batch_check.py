"""Batch checks on every executor (``raftlab check FILE... --executor ... --jobs N``): the
same lines and exit code as ``raftlab check FILE...`` in one process, bad arguments
refused with exit 254, a plain ``raftlab check`` untouched; and a LocalCluster that
starts while another holds Dask's dashboard port prints nothing."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from campaign.batch_check import BadBatch, file_views, make_tasks, refuse_unseen_files
from checker.batch import check_file, worst_code
from checker.generate import cas_register_history
from checker.history import write_edn, write_jsonl

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TIMING = re.compile(r", \d+\.\d{3} s")  # the one field that depends on when a file ran


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from campaign.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["check", *args])
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), captured.out, captured.err


def histories(folder: Path) -> list[str]:
    """Generated histories of every verdict and kind of input, as a user would list them
    (relative names; the test runs in `folder`)."""
    for seed in range(4):
        ops = cas_register_history(3, 40, seed=seed, stale_reads=seed % 2)
        if seed % 2:
            write_edn(folder / f"h{seed}.edn", ops)
        else:
            write_jsonl(folder / f"h{seed}.jsonl", ops)
    (folder / "run").mkdir()
    write_jsonl(folder / "run" / "history.jsonl", cas_register_history(2, 20, seed=9))
    (folder / "broken.jsonl").write_text('{"type": "invoke"\n', encoding="utf-8")
    return ["h0.jsonl", "h1.edn", "broken.jsonl", "h2.jsonl", "run", "absent.jsonl", "h3.edn"]


def masked(out: str) -> list[str]:
    return [TIMING.sub(", T s", line) for line in out.splitlines()]


def test_check_file_gives_the_batch_line_and_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    files = histories(tmp_path)
    code, out, _ = run_cli(files, capsys)  # today's in-process batch: the reference
    summaries = [check_task_of(task) for task in make_tasks(files)]
    assert [TIMING.sub(", T s", s["line"]) for s in summaries] == masked(out)
    assert [s["code"] for s in summaries] == [0, 1, 254, 0, 0, 254, 1]
    assert worst_code(s["code"] for s in summaries) == code == 254
    assert [s["valid"] for s in summaries] == [True, False, None, True, True, None, False]
    # A bad-input line names the file as given, not the absolute path the worker read.
    assert summaries[2]["line"].startswith("broken.jsonl: BAD INPUT: broken.jsonl, line 1")
    assert str(tmp_path) not in "\n".join(s["line"] for s in summaries)
    assert worst_code([0, 2, 0]) == 2 and worst_code([2, 1]) == 1 and worst_code([]) == 0


def check_task_of(task: dict) -> dict:
    from checker.batch import check_task

    return check_task(task)


def test_check_file_passes_the_checker_options(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    write_jsonl(path, cas_register_history(2, 10, seed=1))
    assert check_file(path, model="register")["code"] == 254  # cas ops: register refuses
    assert check_file(path, format="edn")["code"] == 254
    empty_read = tmp_path / "read-nil.jsonl"
    write_jsonl(empty_read, [
        {"index": 0, "time": 1, "type": "invoke", "process": 0, "f": "read", "value": None},
        {"index": 1, "time": 2, "type": "ok", "process": 0, "f": "read", "value": None},
    ])
    assert check_file(empty_read)["code"] == 0  # the register starts empty
    assert check_file(empty_read, init="0")["code"] == 1  # --init 0: a read of nil is wrong
    assert check_file(empty_read, init="0", nil_read="unknown")["code"] == 0  # Knossos' nil


@pytest.mark.slow
@pytest.mark.parametrize(
    "executor",
    [["--jobs", "2"], ["--executor", "local", "--jobs", "1"], ["--executor", "dask", "--jobs", "2"]],
    ids=["local-pool", "local-in-process", "dask-localcluster"],
)
def test_every_executor_prints_the_same_lines_and_exit_code(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    executor: list[str],
) -> None:
    pytest.importorskip("distributed", reason="Dask's distributed is not installed")
    monkeypatch.chdir(tmp_path)
    files = histories(tmp_path)
    plain_code, plain_out, _ = run_cli(files, capsys)
    code, out, err = run_cli([*files, *executor], capsys)
    assert (code, masked(out)) == (plain_code, masked(plain_out)), err
    assert len(out.splitlines()) == len(files) and code == 254
    assert err == ""  # nothing noisy: no Dask warning, no log line
    valid_only = ["h0.jsonl", "h2.jsonl", "run"]
    assert run_cli([*valid_only, *executor], capsys)[0] == 0
    assert run_cli(["h0.jsonl", "h1.edn", *executor], capsys)[0] == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--executor", "mpi"], "dask://HOST:PORT"),
        (["--executor", "dask://nohost"], "--executor"),
        (["--jobs", "0"], "--jobs"),
        (["--jobs", "two"], "--jobs"),
        (["--jobs", "2", "--out", "o"], "--out takes one FILE"),
        (["--executor", "local", "--checker", "elle-list-append"], "--checker takes one FILE"),
        (["--jobs", "2", "--consistency-model", "serializable"], "--consistency-model"),
        (["--jobs", "2", "--init", "{:"], "--init"),
        (["--jobs", "2", "--nil-read", "maybe"], "--nil-read"),
    ],
)
def test_bad_arguments_exit_254_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    path = tmp_path / "h.jsonl"
    write_jsonl(path, cas_register_history(2, 10, seed=1))
    code, out, err = run_cli([str(path), *args], capsys)
    assert code == 254, (out, err)
    assert says in err and "Traceback" not in err
    assert out == ""  # refused before any file was checked


def test_a_worker_that_does_not_see_the_files_is_refused(tmp_path: Path) -> None:
    """Files are read where the workers run: a worker that sees another file (or none) at
    a path would judge the wrong history, so the batch is refused before it starts."""
    path = tmp_path / "h.jsonl"
    write_jsonl(path, cas_register_history(2, 10, seed=1))
    (tmp_path / "run").mkdir()
    write_jsonl(tmp_path / "run" / "history.jsonl", cas_register_history(2, 4, seed=2))
    paths = [str(path), str(tmp_path / "run"), str(tmp_path / "absent.jsonl")]
    views = file_views(paths)
    assert views[0] == path.stat().st_size and views[2] is None
    assert views[1] == (tmp_path / "run" / "history.jsonl").stat().st_size

    class Workers:  # the one method of a Dask client used: run(fn, *args) on each worker
        def __init__(self, elsewhere: Path | None) -> None:
            self.elsewhere = elsewhere

        def run(self, fn, paths):  # noqa: ANN001, ANN202
            here = {"tcp://127.0.0.1:1": fn(paths)}
            if self.elsewhere is not None:  # a worker on another machine: other files
                here["tcp://10.0.0.2:1"] = fn([str(self.elsewhere / Path(p).name) for p in paths])
            return here

    refuse_unseen_files(Workers(None), paths)  # every worker sees the same: accepted
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(BadBatch, match="10.0.0.2.*does not see .*h.jsonl.*no such file there"):
        refuse_unseen_files(Workers(other), paths)
    write_jsonl(other / "h.jsonl", cas_register_history(2, 12, seed=1))  # same name, other file
    with pytest.raises(BadBatch, match="bytes there"):
        refuse_unseen_files(Workers(other), paths)


def test_a_plain_check_imports_no_executor_machinery(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    write_jsonl(path, cas_register_history(2, 10, seed=1))
    probe = (
        "import sys; from campaign.cli import main\n"
        "try:\n    main(['check', sys.argv[1], sys.argv[1]])\nexcept SystemExit:\n    pass\n"
        "loaded = [m for m in ('campaign.batch_check', 'campaign.sweep', 'distributed', 'dask')"
        " if m in sys.modules]\n"
        "print('LOADED', loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(path)],
        capture_output=True, text=True, cwd=PROJECT_ROOT, check=False,
    )
    assert "LOADED []" in done.stdout, done.stdout + done.stderr
    assert done.stdout.count("VALID") == 2


def test_help_lists_the_executor_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    assert "--executor" in out and "--jobs" in out and "--model" in out and "--out" in out


@pytest.mark.slow
def test_a_localcluster_starting_beside_another_prints_no_port_warning(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """dashboard_address=None alone still binds Dask's HTTP server on 8787 and warns when it
    is taken (dask/distributed#8136); the sweep's clusters bind an ephemeral port."""
    pytest.importorskip("distributed", reason="Dask's distributed is not installed")
    from campaign.sweep import DASK, ExecutorSpec, open_executor

    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:  # 8787 held: by us, or already by someone else (then it is held all the same)
        holder.bind(("0.0.0.0", 8787))
        holder.listen()
    except OSError:
        pass
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with open_executor(ExecutorSpec(DASK), 1) as one, open_executor(ExecutorSpec(DASK), 1):
                http = one._cluster.scheduler.http_server
                assert http.address == "127.0.0.1" and http.port != 8787
    finally:
        holder.close()
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "already in use" in m], messages
    out, err = capfd.readouterr()
    assert "already in use" not in out + err and "Traceback" not in err, err


@pytest.mark.slow
@pytest.mark.parametrize("executor", [["--jobs", "2"], ["--executor", "dask", "--jobs", "2"]],
                         ids=["local", "dask"])
def test_ctrl_c_cancels_a_batch_check_cleanly(tmp_path: Path, executor: list[str]) -> None:
    """A real SIGINT to the whole process group: exit 130, the files done so far printed
    and counted, no worker process left behind, no traceback."""
    import os
    import signal
    import time

    if executor[1] == "dask":
        pytest.importorskip("distributed", reason="Dask's distributed is not installed")
    path = tmp_path / "h.jsonl"
    write_jsonl(path, cas_register_history(4, 5000, seed=1))  # ~0.2 s of checking each
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "check", *[str(path)] * 60, *executor],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, start_new_session=True,
        cwd=PROJECT_ROOT,
    )
    try:
        # Unbuffered: readline takes the first line only, communicate() gets the rest.
        first = process.stdout.readline().decode()
        assert "VALID" in first, first
        os.killpg(process.pid, signal.SIGINT)
        out_bytes, err_bytes = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    out, err = out_bytes.decode(), err_bytes.decode()
    assert process.returncode == 130, err
    done = 1 + len(out.splitlines())  # every file counted was printed, once
    assert done < 60 and f"interrupted: {done} of 60 files: {done} valid" in err, err
    assert "Traceback" not in err, err
    deadline = time.monotonic() + 10
    while True:  # every worker of the group is gone
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "worker processes outlived the batch"
        time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_a_batch_on_an_existing_scheduler_prints_the_same_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--executor dask://HOST:PORT``: a real ``dask scheduler`` and ``dask worker`` (as a
    user starts them), the workers reading the files at the same paths."""
    import time

    pytest.importorskip("distributed", reason="Dask's distributed is not installed")
    monkeypatch.chdir(tmp_path)
    files = histories(tmp_path)
    plain_code, plain_out, _ = run_cli(files, capsys)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    started: list[subprocess.Popen] = []
    try:
        started.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--dashboard-address", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=PROJECT_ROOT,
        ))
        started.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://{address}",
             "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=PROJECT_ROOT,
        ))
        from distributed import Client

        deadline = time.monotonic() + 60
        with Client(f"tcp://{address}", timeout="30s") as client:
            while not client.scheduler_info().get("workers"):
                assert time.monotonic() < deadline, "the Dask worker never joined"
                time.sleep(0.2)
        code, out, err = run_cli([*files, "--executor", f"dask://{address}"], capsys)
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    assert (code, masked(out)) == (plain_code, masked(plain_out)), err
    assert err == ""
