"""The Python API behind `raftlab`: the same runs as the CLI, a result object back.

Each function writes the same results folder as its command (`raftlab sim`, `raftlab
test`, `raftlab check --out`) and returns a `RunResult`: the tri-state verdict, the
anomalies in one line each (`checker.summary`, the words the terminal and junit.xml use),
the run folder and the exit code the command would give. Nothing here prints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN = 0, 1, 2


class VerdictError(AssertionError):
    """A run that was not valid; the message is its summary (anomalies, folder, replay)."""


@dataclass(slots=True)
class RunResult:
    """What a run decided, and where to look."""

    valid: bool | str  # True, False or "unknown"
    anomalies: list[str]  # one line each, worst first; empty when valid
    run_dir: Path | None  # the results folder (None: nothing written)
    exit_code: int  # 0 valid, 1 invalid, 2 unknown (conventions §2)
    results: dict[str, Any] = field(default_factory=dict)  # results.json
    replay: str | None = None  # the command that reproduces the run (simulations)
    seed: int | None = None
    runs: list[RunResult] = field(default_factory=list)  # per seed, for several seeds

    @property
    def ok(self) -> bool:
        return self.valid is True

    def summary(self) -> str:
        """A few lines for a failed test or a CI log."""
        verdict = {True: "valid", False: "INVALID"}.get(self.valid, "UNKNOWN")  # type: ignore[arg-type]
        lines = [f"raftlab: {verdict}" + (f" (seed {self.seed})" if self.seed is not None else "")]
        lines += [f"  {line}" for line in self.anomalies]
        if self.run_dir is not None:
            lines.append(f"  results: {self.run_dir}")
            report = Path(self.run_dir) / "report.html"
            if report.exists():
                lines.append(f"  report: {report}")
        if self.replay:
            lines.append(f"  replay: {self.replay}")
        return "\n".join(lines)

    def raise_for_verdict(self) -> RunResult:
        """Raise `VerdictError` (an AssertionError) unless the verdict is `True`."""
        if self.valid is not True:
            raise VerdictError(self.summary())
        return self

    def __str__(self) -> str:
        return self.summary()


def _exit_code(valid: Any) -> int:
    return EXIT_VALID if valid is True else EXIT_INVALID if valid is False else EXIT_UNKNOWN


def _anomaly_lines(results: Mapping[str, Any], ops: Iterable[Any] | None) -> list[str]:
    from checker.summary import describe

    return [anomaly.line() for anomaly in describe(results, ops)]


def _seeds(seeds: int | str | Iterable[int]) -> list[int]:
    if isinstance(seeds, int):
        return [seeds]
    if isinstance(seeds, str):
        from campaign.sim.cli import parse_seeds

        try:
            return parse_seeds(seeds)
        except Exception as error:  # click.BadParameter: say it as a ValueError
            raise ValueError(str(getattr(error, "message", error))) from None
    return [int(seed) for seed in seeds]


def run_simulation(
    seeds: int | str | Iterable[int] = 1,
    *,
    scenario: str | None = None,
    with_bug: bool = True,
    results_dir: str | Path = "results",
    keep_all: bool = False,
    **settings: Any,
) -> RunResult:
    """Run the deterministic simulation for each seed (``7``, ``"1..20"``, ``[1, 5]``).

    `settings` are `campaign.sim.run.SimConfig` fields (``time``, ``workload``,
    ``nemesis``, ``nodes``, ``bugs``, ``workload_options``, ``heartbeat_ms``, ...);
    `scenario` starts from a teaching bug's recipe as ``raftlab sim --scenario`` does.
    A results folder is written for every run that is not valid (every run with
    `keep_all`). The verdict is the worst over the seeds; `run_dir` is the first
    non-valid run's folder (else the last folder written).
    """
    from campaign.sim.cli import replay_command, write_sim_results
    from campaign.sim.run import SimConfig
    from campaign.sim.run import run_simulation as simulate
    from campaign.verdict import merge_valid

    known = {item.name for item in dataclasses.fields(SimConfig)} - {"seed"}
    unknown = sorted(name for name in settings if name not in known)
    if unknown:
        raise TypeError(f"unknown simulation settings {unknown}; known: {sorted(known)}")
    recipe = None
    if scenario is not None:
        from campaign.sim.scenarios import SCENARIOS

        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        recipe = SCENARIOS[scenario]
    if "workload_options" in settings or "workload" in settings:
        from workloads import make_workload

        workload = settings.get("workload", "register")
        make_workload(workload, **dict(settings.get("workload_options") or {}))
    runs: list[RunResult] = []
    for seed in _seeds(seeds):
        if recipe is None:
            config = SimConfig(seed=seed, **settings)
        else:
            config = dataclasses.replace(recipe.config(seed, with_bug=with_bug), **settings)
        outcome = simulate(config)
        run_dir = None
        if outcome.valid is not True or keep_all:
            run_dir = write_sim_results(outcome, Path(results_dir))
        runs.append(
            RunResult(
                valid=outcome.valid,
                anomalies=_anomaly_lines(outcome.results, outcome.ops),
                run_dir=run_dir,
                exit_code=_exit_code(outcome.valid),
                results=dict(outcome.results),
                replay=replay_command(outcome.config),
                seed=seed,
            )
        )
    if not runs:
        raise ValueError("no seeds to run")
    if len(runs) == 1:
        return runs[0]
    valid = merge_valid([run.valid for run in runs])
    failing = [run for run in runs if run.valid is not True]
    written = [run for run in runs if run.run_dir is not None]
    first = failing[0] if failing else None
    return RunResult(
        valid=valid,
        anomalies=[f"seed {run.seed}: {line}" for run in failing for line in run.anomalies],
        run_dir=first.run_dir if first else (written[-1].run_dir if written else None),
        exit_code=_exit_code(valid),
        results=first.results if first else runs[-1].results,
        replay=first.replay if first else None,
        seed=first.seed if first else None,
        runs=runs,
    )


def run_campaign(*, argv: Sequence[str] | None = None, **config: Any) -> RunResult:
    """Run one real campaign (`raftlab test`): node processes behind proxies, a workload
    under a nemesis, a verdict and a results folder.

    `config` holds `campaign.run.CampaignConfig` fields (``workload``, ``nemesis``,
    ``nodes``, ``time_limit``, ``seed``, ``results_dir``, ``workload_options``,
    ``target`` where the campaign supports one, ...); a seed is drawn when not given.
    Ctrl-C raises KeyboardInterrupt after the partial results are written.
    """
    import trio

    from campaign.results import read_history_file, read_json
    from campaign.run import CampaignConfig, draw_seed
    from campaign.run import run_campaign as run

    known = {item.name for item in dataclasses.fields(CampaignConfig)}
    unknown = sorted(name for name in config if name not in known)
    if unknown:
        raise TypeError(f"unknown campaign settings {unknown}; known: {sorted(known)}")
    if config.get("seed") is None:
        config["seed"] = draw_seed()
    if "workload_options" in config or "workload" in config:
        from workloads import make_workload

        make_workload(
            config.get("workload", "register"), **dict(config.get("workload_options") or {})
        )
    settings = CampaignConfig(**config)
    outcome = trio.run(
        lambda: run(settings, argv=list(argv) if argv is not None else ["raftlab-api"])
    )
    results = read_json(outcome.run_dir / "results.json")
    try:
        ops = read_history_file(outcome.run_dir)
    except Exception:  # noqa: BLE001 - the anomaly is still named in the checker's words
        ops = None
    return RunResult(
        valid=outcome.valid,
        anomalies=_anomaly_lines(results, ops),
        run_dir=outcome.run_dir,
        exit_code=outcome.exit_code,
        results=dict(results),
        seed=settings.seed,
    )


def check_history(
    history: str | Path | Sequence[Any],
    *,
    model: str | None = None,
    init: Any = None,
    time_limit: float | None = None,
    out: str | Path | None = None,
    format: str | None = None,  # noqa: A002 - the CLI's name
    nil_read: str | None = None,
) -> RunResult:
    """Check a history for linearizability, as ``raftlab check`` does.

    `history` is a file (any format `raftlab check` reads, or a run folder) or a list of
    ops (`checker.op.Op` or conventions §1 maps). `model` defaults to the guess from the
    ops. `nil_read` ("absent" or "unknown") says what a read of nil means, defaulting as
    `raftlab check` does by format ("absent" for raftlab's own ops). With `out`,
    results.json and explanation.html are written there.
    """
    from checker.cli import guess_model
    from checker.history import detect_format, read_history
    from checker.linearizable import check
    from checker.models import MODELS

    if isinstance(history, str | Path):
        path = Path(history)
        if path.is_dir():
            path = path / "history.jsonl"
        fmt = format or detect_format(path)
        ops = read_history(path, fmt)
        default_models = {"jepsen-log": "etcd", "porcupine-kv": "kv"}
        model = model or default_models.get(fmt)
    else:
        from campaign.results import as_ops

        ops = as_ops(history)
        fmt = "jsonl"  # raftlab's own ops
    try:
        from checker.cli import DEFAULT_NIL_READ_BY_FORMAT
    except ImportError:  # an older checker without the setting
        DEFAULT_NIL_READ_BY_FORMAT = {}  # noqa: N806
    nil_read = nil_read or DEFAULT_NIL_READ_BY_FORMAT.get(fmt)
    if model is None:
        model, why = guess_model(ops)
        if model is None:
            raise ValueError(f"cannot tell which model to check against ({why}); give model=")
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(sorted(MODELS))}")
    kwargs: dict[str, Any] = {"time_limit": time_limit}
    if nil_read is not None:
        kwargs["nil_read"] = nil_read
    if init is not None:
        kwargs["init"] = init
    result = check(ops, MODELS[model](), **kwargs)
    results = {"valid": result.get("valid"), "checkers": {"linearizable": result}}
    run_dir = None
    if out is not None:
        import json

        from checker import explain
        from checker.history import to_jsonable

        run_dir = Path(out)
        run_dir.mkdir(parents=True, exist_ok=True)
        document = {"valid": result.get("valid"), "model": model, "result": result}
        text = json.dumps(to_jsonable(document), indent=2, ensure_ascii=False, default=str)
        (run_dir / "results.json").write_text(text + "\n", encoding="utf-8")
        page = explain.render_html(ops, document, title="raftlab check")
        (run_dir / "explanation.html").write_text(page, encoding="utf-8")
    valid = result.get("valid")
    valid = valid if valid in (True, False) else "unknown"
    return RunResult(
        valid=valid,
        anomalies=_anomaly_lines(results, ops),
        run_dir=run_dir,
        exit_code=_exit_code(valid),
        results=results,
    )
