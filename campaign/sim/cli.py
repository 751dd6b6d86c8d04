"""``raftlab sim``: the deterministic simulation from the command line.

One seed: a results folder like ``raftlab test`` writes (conventions §2), with the seed
and a one-line replay command in campaign.json and the report. Many seeds
(``--seeds 1..200``): one line per seed and a summary; results folders only for runs that
are not valid (``--keep-all`` keeps every one).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from campaign.anomaly import echo_anomalies, run_anomaly_lines
from campaign.results import campaign_document, new_run_dir, write_run_folder
from campaign.sim.nemesis import NemesisSpecError, parse_faults, validate_schedule
from campaign.sim.run import SimConfig, SimOutcome, run_simulation
from campaign.verdict import exit_code, merge_valid
from raftnode.core import KNOWN_BUGS

EXIT_INTERRUPTED = 130  # as campaign.cli: Ctrl-C
MINIMAL_SCHEDULE_FILE = "minimal-schedule.json"


def parse_seeds(text: str) -> list[int]:
    """``7`` | ``1..200`` | ``1,5,9`` | ``1..10,20`` → seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if ".." in part:
                low, high = part.split("..", 1)
                first, last = int(low), int(high)
                if last < first:
                    raise ValueError
                seeds.extend(range(first, last + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise click.BadParameter(
                f"{part!r} is not a seed, a range like 1..200, or a list of them",
                param_hint="--seeds",
            ) from None
    if any(seed < 0 for seed in seeds):
        raise click.BadParameter("seeds are non-negative integers", param_hint="--seeds")
    return seeds


def _scenario_names() -> list[str]:
    from campaign.sim.scenarios import SCENARIOS

    return list(SCENARIOS)


# SimConfig fields that have a flag of their own; every other field travels as --set.
FLAGGED_FIELDS = frozenset(
    {
        "seed",
        "time",
        "workload",
        "nemesis",
        "nemesis_interval",
        "nodes",
        "concurrency",
        "rate",
        "name",
        "bugs",
        "schedule",
    }
)


def settable_fields() -> dict[str, Any]:
    """Field name -> default, for the fields ``--set`` may change."""
    defaults = SimConfig()
    return {
        field.name: getattr(defaults, field.name)
        for field in dataclasses.fields(SimConfig)
        if field.name not in FLAGGED_FIELDS
    }


def parse_settings(items: tuple[str, ...]) -> dict[str, Any]:
    """``FIELD=JSON`` pairs for ``--set``, checked against SimConfig's fields and types."""
    known = settable_fields()
    settings: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            raise click.BadParameter(
                f"{item!r}: expected FIELD=VALUE with FIELD one of {', '.join(sorted(known))}",
                param_hint="--set",
            )
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        default = known[name]
        if isinstance(default, bool) or default is None:
            ok = True
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        else:
            ok = isinstance(value, type(default)) and not isinstance(value, bool)
        if not ok:
            raise click.BadParameter(
                f"{name} takes a {type(default).__name__}, got {text!r}", param_hint="--set"
            )
        settings[name] = value
    return settings


def _default_workload_options(workload: str) -> dict[str, Any]:
    from campaign.checking import build_workload

    return dict(build_workload({"workload": workload}).config())


def replay_command(config: SimConfig) -> str:
    """The one line that reproduces a run exactly: every field that differs from its
    default is on it, numbers in their exact (round-trip) form."""
    words = [
        "raftlab",
        "sim",
        "--seed",
        str(config.seed),
        "--time",
        repr(config.time),
        "--workload",
        config.workload,
        "--nemesis",
        config.nemesis or "none",
        "--nemesis-interval",
        repr(config.nemesis_interval),
        "--nodes",
        str(config.nodes),
        "--concurrency",
        str(config.concurrency),
        "--rate",
        repr(config.rate),
        "--name",
        config.name,
    ]
    for bug in config.bugs:
        words += ["--bug", bug]
    if config.schedule is not None:
        words += ["--schedule", json.dumps(config.schedule, separators=(",", ":"))]
    defaults = settable_fields()
    # The workload fills in its own defaults; only options that differ need saying.
    defaults["workload_options"] = _default_workload_options(config.workload)
    for name, default in defaults.items():
        value = getattr(config, name)
        if value != default and not (name == "workload_options" and not value):
            words += ["--set", f"{name}={json.dumps(value, separators=(',', ':'))}"]
    return shlex.join(words)


def write_sim_results(outcome: SimOutcome, results_dir: Path) -> Path:
    config = outcome.config
    started = datetime.now(UTC)
    run_dir = new_run_dir(results_dir, config.name, started)
    document = campaign_document(config.to_dict(), kind="sim", started=started)
    document["replay"] = replay_command(config)
    document["schedule"] = [step.to_dict() for step in outcome.schedule]
    document["simulated_seconds"] = outcome.simulated_seconds
    document["wall_seconds"] = round(outcome.wall_seconds, 3)
    # The history's clock is the simulated one, which starts at 0: node-log times are
    # simulated seconds too, so the report must not place them on the wall clock.
    document["started_wall"] = 0.0
    results = dict(outcome.results)
    results["replay"] = document["replay"]
    write_run_folder(
        run_dir,
        campaign=document,
        ops=outcome.ops,
        results=results,
        nemesis_records=outcome.nemesis_records,
        node_logs=outcome.node_logs,
    )
    return run_dir


def _summary_line(outcome: SimOutcome) -> str:
    failing = [name for name, result in outcome.checkers.items() if result.get("valid") is not True]
    speed = outcome.simulated_seconds / max(outcome.wall_seconds, 1e-9)
    return (
        f"seed {outcome.config.seed}: valid={_valid_text(outcome.valid)}"
        + (f" ({', '.join(failing)})" if failing else "")
        + f"  ops={len(outcome.ops)} sim={outcome.simulated_seconds:.1f}s "
        f"wall={outcome.wall_seconds:.2f}s ({speed:.0f}x)"
    )


def _valid_text(valid: Any) -> str:
    return "true" if valid is True else "false" if valid is False else "unknown"


@click.command("sim")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="The run's seed.")
@click.option("--seeds", "seeds_text", default=None, help="Many seeds: 1..200, or 1,5,9.")
@click.option(
    "--time",
    "sim_time",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Simulated seconds of workload.",
)
@click.option(
    "--workload",
    type=click.Choice(["register", "set", "append", "bank", "list-append", "rw-register"]),
    default="register",
    show_default=True,
)
@click.option(
    "--nemesis",
    default="partition,kill",
    show_default=True,
    help="Faults: partition,kill,pause,delay,loss,clock,disk,crash | all | none.",
)
@click.option(
    "--nemesis-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
)
@click.option("--nodes", type=click.IntRange(1, 15), default=5, show_default=True)
@click.option("--concurrency", default="2n", show_default=True, help="N, or Nn for N per node.")
@click.option(
    "--rate", type=click.FloatRange(min=0, min_open=True), default=100.0, show_default=True
)
@click.option("--name", default="sim", show_default=True, help="Results go to results/NAME/.")
@click.option(
    "--bug",
    "bugs",
    multiple=True,
    type=click.Choice(sorted(KNOWN_BUGS)),
    help="A teaching bug switch (repeatable). Safe here: nothing leaves the simulation.",
)
@click.option(
    "--schedule", default=None, help="An explicit fault schedule (JSON list), for replays."
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="FIELD=VALUE",
    help=(
        "Any other simulation setting (repeatable; VALUE is JSON): heartbeat_ms, "
        "election_timeout_ms, base_delay, jitter, loss, duplicate, workload_options, ... "
        "Replay commands use it."
    ),
)
@click.option(
    "--scenario",
    type=click.Choice(sorted(_scenario_names())),
    default=None,
    help=(
        "Start from a teaching bug's recipe (bench/bug_matrix.py's): its workload, faults, "
        "timings and bug; flags given explicitly override it."
    ),
)
@click.option(
    "--without-bug",
    is_flag=True,
    help="With --scenario: the same recipe on the correct build.",
)
@click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("results"),
    show_default=True,
)
@click.option("--keep-all", is_flag=True, help="With --seeds: write a results folder per seed.")
@click.option(
    "--executor",
    default="local",
    show_default=True,
    help="With --seeds: local (--jobs processes) | dask (a Dask LocalCluster of --jobs "
    "workers) | dask://HOST:PORT (an existing scheduler). Same summary on each.",
)
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Workers.")
@click.option(
    "--shrink/--no-shrink",
    default=None,
    help="Shrink a failing run to a minimal fault schedule (Hypothesis over its sub-schedules) "
    "and print its replay command. Default: on with --seeds (the first failing seed), off "
    "with --seed.",
)
@click.option(
    "--shrink-runs",
    type=click.IntRange(min=1),
    default=40,
    show_default=True,
    help="At most this many simulations while shrinking (each replays the failing seed); "
    "the smallest failing schedule found within them is reported.",
)
def sim_command(
    seed: int | None,
    seeds_text: str | None,
    sim_time: float,
    workload: str,
    nemesis: str,
    nemesis_interval: float,
    nodes: int,
    concurrency: str,
    rate: float,
    name: str,
    bugs: tuple[str, ...],
    schedule: str | None,
    settings: tuple[str, ...],
    scenario: str | None,
    without_bug: bool,
    results_dir: Path,
    keep_all: bool,
    shrink: bool | None,
    shrink_runs: int,
    executor: str,
    jobs: int,
) -> None:
    """Run raftnode in a deterministic simulation: a seed replays a run exactly.

    A run that is invalid (with --shrink, the default for --seeds) is shrunk to a minimal
    fault schedule: its results folder gets minimal-schedule.json and the minimal run's
    own results folder, and the replay command of the minimal run is printed.

    \b
    Exit codes:
      0    valid (every seed)
      1    invalid (some seed; the anomaly is printed in words)
      2    unknown (some seed could not be judged, none invalid)
      130  interrupted by Ctrl-C (with --seeds: the seeds run so far are summarised)
      254  bad arguments
      255  internal error
    """
    from campaign.results import check_run_name
    from workloads.runner import WorkloadConfigError, parse_concurrency

    if seed is not None and seeds_text is not None:
        raise click.UsageError("give --seed or --seeds, not both")
    try:
        parse_faults(nemesis)
    except NemesisSpecError as error:
        raise click.BadParameter(str(error), param_hint="--nemesis") from None
    try:
        parse_concurrency(concurrency, nodes)
    except WorkloadConfigError as error:
        raise click.BadParameter(str(error), param_hint="--concurrency") from None
    try:
        check_run_name(name)
    except Exception as error:  # noqa: BLE001 - the message names the problem
        raise click.BadParameter(str(error), param_hint="--name") from None
    parsed_schedule = None
    if schedule is not None:
        try:
            parsed_schedule = json.loads(schedule)
            if not isinstance(parsed_schedule, list):
                raise ValueError("not a list")
        except ValueError as error:
            raise click.BadParameter(
                f"not a JSON list of steps: {error}", param_hint="--schedule"
            ) from None
        try:
            validate_schedule(parsed_schedule, nodes)
        except NemesisSpecError as error:
            raise click.BadParameter(str(error), param_hint="--schedule") from None
    seeds = parse_seeds(seeds_text) if seeds_text is not None else [1 if seed is None else seed]

    overrides = parse_settings(settings)

    given = {
        "time": sim_time,
        "name": name,
        "workload": workload,
        "nemesis": nemesis,
        "nemesis_interval": nemesis_interval,
        "nodes": nodes,
        "concurrency": concurrency,
        "rate": rate,
        "bugs": list(bugs),
        "schedule": parsed_schedule,
    }
    recipe = None
    if scenario is not None:
        from campaign.sim.scenarios import SCENARIOS

        recipe = SCENARIOS[scenario]
        # The recipe's settings, under whatever the command line says explicitly.
        ctx = click.get_current_context()
        param_of = {"time": "sim_time"}
        given = {
            key: value
            for key, value in given.items()
            if ctx.get_parameter_source(param_of.get(key, key))
            is click.core.ParameterSource.COMMANDLINE
        }

    def make(seed_value: int) -> SimConfig:
        if recipe is None:
            return SimConfig(seed=seed_value, **given, **overrides)
        base = recipe.config(seed_value, with_bug=not without_bug)
        if "bugs" in given:
            given["bugs"] = sorted(set(base.bugs) | set(given["bugs"]))
        return dataclasses.replace(base, **given, **overrides)

    try:  # the workload's options, checked before anything runs
        from workloads import make_workload

        first = make(seeds[0])
        make_workload(first.workload, **first.workload_options)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--set workload_options") from None
    if seeds_text is None:
        outcome = run_simulation(make(seeds[0]))
        run_dir = write_sim_results(outcome, results_dir)
        click.echo(_summary_line(outcome))
        echo_anomalies(run_dir, click.echo)
        click.echo(f"replay: {replay_command(outcome.config)}")
        click.echo(f"report: {run_dir / 'report.html'}")
        if shrink and outcome.valid is False:
            shrink_and_report(outcome, run_dir, results_dir, max_runs=shrink_runs)
        sys.exit(exit_code(outcome.valid))

    from campaign.sweep import SweepError, parse_executor, run_sim_sweep

    try:
        spec = parse_executor(executor)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--executor") from None
    try:  # one task per seed, on `spec`; failing seeds' folders come back into results_dir
        sweep = run_sim_sweep(
            [make(s) for s in seeds],
            executor=spec,
            jobs=jobs,
            results_dir=results_dir,
            keep_all=keep_all,
            echo=click.echo,
        )
    except SweepError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(255)
    verdicts, not_valid = sweep.verdicts, sweep.not_valid
    if sweep.interrupted:
        click.echo(f"interrupted after {len(verdicts)} of {len(seeds)} seeds", err=True)
        _echo_seeds_summary(len(verdicts), verdicts, not_valid)
        sys.exit(EXIT_INTERRUPTED)
    first_invalid = next((s for s in sweep.summaries if s["valid"] is False), None)
    if first_invalid is not None and shrink is not False and first_invalid["run_dir"]:
        # The first failing seed, replayed here (same seed, same run); the others as printed.
        outcome = run_simulation(make(first_invalid["seed"]))
        shrink_and_report(
            outcome, Path(first_invalid["run_dir"]), results_dir, max_runs=shrink_runs
        )
    _echo_seeds_summary(len(seeds), verdicts, not_valid)
    sys.exit(exit_code(merge_valid(verdicts)))


def _echo_seeds_summary(count: int, verdicts: list[Any], not_valid: list[int]) -> None:
    click.echo(
        f"{count} seeds: {verdicts.count(True)} valid, {verdicts.count(False)} invalid, "
        f"{len(verdicts) - verdicts.count(True) - verdicts.count(False)} unknown"
        + (f"; not valid: {', '.join(map(str, not_valid))}" if not_valid else "")
    )


def shrink_and_report(
    outcome: SimOutcome, run_dir: Path, results_dir: Path, *, max_runs: int
) -> Path | None:
    """Shrink a failing run's schedule; write minimal-schedule.json beside its results and
    the minimal run's own results folder; print the minimal schedule and its replay line.

    Returns the minimal run's folder (None when the failure did not reproduce with the
    schedule made explicit, which `shrink` checks first)."""
    from campaign.sim.shrink import shrink

    original = [step.to_dict() for step in outcome.schedule]
    click.echo(
        f"shrinking the fault schedule of seed {outcome.config.seed} ({len(original)} steps)"
    )
    result = shrink(outcome.config, max_examples=max_runs, max_runs=max_runs)
    document: dict[str, Any] = {
        "seed": outcome.config.seed,
        "original": original,
        "minimal": None if result.minimal is None else [s.to_dict() for s in result.minimal],
        "runs": result.runs,
    }
    minimal_dir = None
    if result.config is None or result.minimal is None:
        click.echo("  the failure did not reproduce with its schedule made explicit: not shrunk")
    else:
        minimal = run_simulation(result.config)
        minimal_dir = write_sim_results(minimal, results_dir)
        document["replay"] = replay_command(result.config)
        document["minimal_run"] = str(minimal_dir)
        click.echo(
            f"  minimal schedule: {len(result.minimal)} of {len(original)} steps "
            f"({result.runs} runs)"
        )
        for step in result.minimal:
            click.echo(
                f"    {step.fault}:{step.option} at {step.start:.3f} s for {step.duration:.3f} s"
            )
        for anomaly in run_anomaly_lines(minimal_dir)[:1]:
            click.echo(f"  {anomaly}")
        click.echo(f"  replay: {document['replay']}")
        click.echo(f"  report: {minimal_dir / 'report.html'}")
    (Path(run_dir) / MINIMAL_SCHEDULE_FILE).write_text(
        json.dumps(document, indent=2) + "\n", encoding="utf-8"
    )
    return minimal_dir
