"""`raftlab test`: run campaigns against a local cluster and exit with the verdict (conventions §2).

Defaults: a 5-node cluster, the register workload (linearizability per key, the strongest
property raftnode claims), ``--nemesis partition,kill`` every 5 s for 60 s, 2 clients per
node at 200 ops/s in total. Five nodes let the nemesis isolate a minority of two (or kill
two) and still leave a majority that must make progress; a fault every 5 s gives about a
dozen fault changes per minute, each longer than a failover (~1-2 s with the node's
1 s election timeout), so the run sees elections under load, leaders isolated mid-write
and nodes restarting from their WAL, and still has time to make progress in between.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from campaign.results import check_run_name

DEFAULT_WORKLOAD = "register"
DEFAULT_NEMESIS = "partition,kill"


def _workload_names() -> list[str]:
    from workloads import WORKLOADS

    return sorted(WORKLOADS)


def validate_nemesis(spec: str) -> str:
    """The nemesis spec as the nemesis package parses it; a clear error otherwise."""
    from nemesis.schedule import parse_nemesis

    try:
        parse_nemesis(spec)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--nemesis") from None
    return spec


def parse_workload_options(workload: str, items: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs into the workload's keyword options, checked by building it."""
    from workloads import make_workload

    options: dict[str, Any] = {}
    for item in items:
        key, separator, text = item.partition("=")
        if not separator or not key.strip():
            raise click.BadParameter(
                f"expected KEY=VALUE, got {item!r}", param_hint="--workload-option"
            )
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError:
            value = text
        options[key.strip()] = value
    try:
        make_workload(workload, **options)
    except (ValueError, TypeError) as error:
        raise click.BadParameter(str(error), param_hint="--workload-option") from None
    return options


def parse_nemesis_options(nemesis: str, items: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``FAULT.KEY=VALUE`` pairs into each fault's keyword options, checked by building the
    faults (a bad fault, key or value is a usage error, exit 254)."""
    from campaign.run import check_nemesis_options
    from campaign.targets import TargetError

    options: dict[str, dict[str, Any]] = {}
    for item in items:
        name, separator, text = item.partition("=")
        fault, dot, key = name.strip().partition(".")
        if not separator or not dot or not fault or not key:
            raise click.BadParameter(
                f"expected FAULT.KEY=VALUE, got {item!r}", param_hint="--nemesis-option"
            )
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError:
            value = [part.strip() for part in text.split(",")] if "," in text else text
        options.setdefault(fault, {})[key] = value
    try:
        check_nemesis_options(nemesis, options)
    except TargetError as error:
        raise click.BadParameter(str(error), param_hint="--nemesis-option") from None
    return options


def parse_target(
    name: str, items: tuple[str, ...], nemesis: str, workload: str | None = None
) -> dict[str, Any]:
    """The target's validated options (defaults filled in); its faults checked against
    ``--nemesis`` and ``workload`` against what it runs. A bad name, option, fault or
    workload is a usage error (exit 254)."""
    from campaign.targets import TargetError, check_faults, get_target, parse_target_options
    from campaign.targets.base import check_workload
    from nemesis.schedule import parse_nemesis

    try:
        target = get_target(name)
        options = parse_target_options(target, items)
        check_faults(target, [spec.name for spec in parse_nemesis(nemesis)])
        if workload is not None:
            check_workload(target, workload)
    except TargetError as error:
        raise click.UsageError(str(error)) from None
    return options


@click.command("test")
@click.option(
    "--target",
    default="raftnode",
    show_default=True,
    help="The system under test: raftnode, etcd, or a target another package registers "
    "(entry-point group raftlab.targets).",
)
@click.option(
    "--target-option",
    "target_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A target option (repeatable), e.g. binary=/usr/bin/etcd or serializable_reads=true "
    "for etcd; unknown keys are refused with the list of known ones. Recorded in campaign.json.",
)
@click.option(
    "--workload",
    type=click.Choice(["register", "set", "append", "bank", "list-append", "rw-register"]),
    default=DEFAULT_WORKLOAD,
    show_default=True,
    help="register: read/write/cas per key, checked for linearizability; set, append, bank.",
)
@click.option(
    "--workload-option",
    "workload_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A workload option (repeatable; VALUE is JSON or a plain string), e.g. "
    "active_keys=1 or ops_per_key=50 for register. Recorded in campaign.json.",
)
@click.option(
    "--nemesis",
    default=DEFAULT_NEMESIS,
    show_default=True,
    help="Faults, comma-separated: partition, kill, pause, delay, loss, clock, disk, transfer, "
    "member; or all / none. "
    "A suffix narrows a fault to one shape or target: partition-leader, kill-minority, clock-strobe.",
)
@click.option(
    "--nemesis-option",
    "nemesis_options",
    multiple=True,
    metavar="FAULT.KEY=VALUE",
    help="A fault's option (repeatable), e.g. partition.modes=blackhole (cut links stop "
    "reading, so the sender's TCP backs off as under a kernel packet drop) or "
    "partition.modes=drop,blackhole (each start draws one). Values are JSON or plain text; "
    "a comma list becomes a list.",
)
@click.option(
    "--nemesis-interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between nemesis actions.",
)
@click.option(
    "--nodes",
    type=click.IntRange(1, 15),
    default=5,
    show_default=True,
    help="Voters in the cluster (each a separate process).",
)
@click.option(
    "--spares",
    type=click.IntRange(0, 10),
    default=None,
    help="Spare nodes beyond --nodes that the member fault may grow the cluster with: each "
    "starts only when added, as a new empty `raftlab node --join` behind the proxies "
    "(Jepsen's member nemesis grows with nodes outside the cluster). Default: 2 with "
    "--nemesis member on raftnode, else 0.",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0.5),
    default=60.0,
    show_default=True,
    help="Seconds of workload under the nemesis (healing, recovery and final reads come after).",
)
@click.option(
    "--concurrency",
    default="2n",
    show_default=True,
    help="Client processes: a number, or Nn for N per node.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=200.0,
    show_default=True,
    help="Total operations per second over all clients.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=None,
    help="Seed of all randomness (drawn and recorded when omitted).",
)
@click.option(
    "--test-count",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Run up to K campaigns (seeds seed, seed+1, ...); stop at the first that is not valid.",
)
@click.option(
    "--name", default=None, help="Run name: results/<name>/... (default: the workload's name)."
)
@click.option(
    "--leave-cluster-running",
    is_flag=True,
    help="After the run, keep the nodes and proxies up (Ctrl-C stops them).",
)
@click.option(
    "--unsafe-local-reads",
    is_flag=True,
    help="Teaching switch: every node serves reads from local state without ReadIndex. "
    "The register workload should then find stale reads (an invalid verdict).",
)
@click.option(
    "--results-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("results"),
    show_default=True,
)
@click.option(
    "--recovery-time",
    type=click.FloatRange(min=0.0),
    default=5.0,
    show_default=True,
    help="Seconds to wait after healing before the final reads.",
)
@click.option(
    "--check-time-limit",
    type=click.FloatRange(min=0.1),
    default=120.0,
    show_default=True,
    help="Seconds the linearizability search may take before it says 'unknown'.",
)
@click.option(
    "--base-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="First port of the nodes (then the n(n-1) proxies); 0 finds a free block.",
)
@click.option(
    "--heartbeat-ms",
    type=click.FloatRange(min=1.0),
    default=100.0,
    show_default=True,
    help="Passed to every raftnode node (raftlab node --heartbeat-ms); other targets take "
    "their own timing options (etcd: --target-option heartbeat_ms=...).",
)
@click.option(
    "--election-timeout-ms",
    type=click.FloatRange(min=10.0),
    default=1000.0,
    show_default=True,
    help="Passed to every node; shorter makes short runs more eventful (e.g. 300).",
)
@click.option(
    "--net",
    type=click.Choice(["proxy", "netns"]),
    default="proxy",
    show_default=True,
    help="proxy: peer links through the nemesis's TCP proxies on 127.0.0.1. netns (root "
    "only): each node in its own network namespace on a bridge the run makes and removes; "
    "partitions and loss are nftables rules, cuts leave TCP half-open.",
)
@click.pass_context
def test_command(
    ctx: click.Context,
    target: str,
    target_options: tuple[str, ...],
    workload: str,
    workload_options: tuple[str, ...],
    nemesis: str,
    nemesis_interval: float,
    nemesis_options: tuple[str, ...],
    nodes: int,
    time_limit: float,
    concurrency: str,
    rate: float,
    seed: int | None,
    test_count: int,
    name: str | None,
    leave_cluster_running: bool,
    unsafe_local_reads: bool,
    results_dir: Path,
    recovery_time: float,
    check_time_limit: float,
    base_port: int,
    heartbeat_ms: float,
    election_timeout_ms: float,
    net: str,
    spares: int | None = None,
) -> None:
    """Run a campaign: a local cluster, a workload under a nemesis, a verdict and a report.

    \b
    Exit codes:
      0    valid
      1    invalid (the anomaly is printed in words, then the report's path)
      2    unknown (a checker could not decide, or the run was aborted)
      130  interrupted by Ctrl-C (143: SIGTERM, 129: SIGHUP): partial results named
      254  bad arguments
      255  internal error
    """
    import trio

    from campaign.cluster import ClusterError
    from campaign.run import CampaignConfig, draw_seed, run_campaign
    from campaign.targets import TargetError
    from campaign.verdict import EXIT_VALID
    from workloads.runner import WorkloadConfigError, parse_concurrency

    run_name = name or workload
    try:
        check_run_name(run_name)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--name") from None
    try:
        parse_concurrency(concurrency, nodes)
    except WorkloadConfigError as error:
        raise click.BadParameter(str(error), param_hint="--concurrency") from None
    if heartbeat_ms * 2 >= election_timeout_ms:
        raise click.BadParameter(
            "the election timeout must exceed twice the heartbeat",
            param_hint="--election-timeout-ms",
        )
    validate_nemesis(nemesis)
    chosen_target_options = parse_target(target, target_options, nemesis, workload)
    if target != "raftnode":
        from campaign.targets import get_target

        honoured = get_target(target).campaign_settings
        for setting in ("heartbeat_ms", "election_timeout_ms", "unsafe_local_reads"):
            source = ctx.get_parameter_source(setting)
            if setting not in honoured and source == click.core.ParameterSource.COMMANDLINE:
                flag = "--" + setting.replace("_", "-")
                raise click.UsageError(
                    f"{flag} is raftnode's; target {target!r} takes its own options "
                    "(see --target-option)"
                )
    options = parse_workload_options(workload, workload_options)
    parsed_nemesis_options = parse_nemesis_options(nemesis, nemesis_options)
    first_seed = seed if seed is not None else draw_seed()
    code = EXIT_VALID
    for number in range(test_count):
        config = CampaignConfig(
            name=run_name,
            workload=workload,
            workload_options=dict(options),
            nemesis=nemesis,
            nemesis_interval=nemesis_interval,
            nemesis_options=parsed_nemesis_options,
            nodes=nodes,
            time_limit=time_limit,
            concurrency=concurrency,
            rate=rate,
            seed=(first_seed + number) % 2**63,
            results_dir=str(results_dir),
            leave_cluster_running=leave_cluster_running,
            unsafe_local_reads=unsafe_local_reads,
            recovery_time=recovery_time,
            check_time_limit=check_time_limit,
            base_port=base_port,
            heartbeat_ms=heartbeat_ms,
            election_timeout_ms=election_timeout_ms,
            target=target,
            target_options=dict(chosen_target_options),
            net=net,
            spares=spares,
        )
        if test_count > 1:
            click.echo(f"run {number + 1}/{test_count}: seed {config.seed}")
        else:
            click.echo(f"seed {config.seed}")
        try:
            outcome = trio.run(lambda config=config: run_campaign(config, argv=list(sys.argv)))
        except (ClusterError, TargetError) as error:  # said before anything started
            raise click.UsageError(str(error)) from None
        results = outcome.run_dir / "results.json"
        click.echo(
            f"valid: {outcome.valid}" + (f" ({outcome.interrupted})" if outcome.interrupted else "")
        )
        from campaign.anomaly import echo_anomalies  # the anomaly in words, then the paths

        echo_anomalies(outcome.run_dir, click.echo)
        click.echo(f"results: {outcome.run_dir}  ({results.name})")
        click.echo(f"report: {outcome.run_dir / 'report.html'}")
        code = outcome.exit_code
        if code != EXIT_VALID:
            break
    sys.exit(code)
