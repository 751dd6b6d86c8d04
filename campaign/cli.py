"""The ``raftlab`` command: one click group; each subcommand lives with the package it serves.

Subcommands are imported lazily so that ``raftlab check`` does not pay for matplotlib and
a broken optional part cannot break the others. Exit codes follow conventions §2:
0 valid, 1 invalid, 2 unknown, 254 bad arguments, 255 internal error.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

EXIT_BAD_ARGUMENTS = 254
EXIT_INTERNAL_ERROR = 255
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT) of a command that judges: partial results only

# name -> "module:attribute" of a click command. A new command is one line here.
COMMANDS: dict[str, str] = {
    "node": "raftnode.cli:node_command",
    "kv": "raftnode.cli:kv_command",
    "status": "raftnode.cli:status_command",
    "cluster": "raftnode.cli:cluster_group",
    "check": "checker.cli:check_command",
    "test": "campaign.test_cli:test_command",
    "analyze": "campaign.analyze:analyze_command",
    "serve": "campaign.serve:serve_command",
    "sim": "campaign.sim.cli:sim_command",
    "wal": "raftnode.wal_cli:wal_group",
    "member": "raftnode.membership_cli:member_group",
    "transfer-leader": "raftnode.membership_cli:transfer_leader_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        module = importlib.import_module(module_name)
        return getattr(module, attribute)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name == "check" and _asks_for_executor(rest):
            # Batch checks on a pool or Dask (campaign/batch_check.py): the checker's own
            # options plus --executor/--jobs. A plain `raftlab check` never imports it.
            from campaign.batch_check import batch_check_command

            command = batch_check_command
        return name, command, rest


def _asks_for_executor(args: list[str]) -> bool:
    """``raftlab check`` given --executor or --jobs, or --help (which then lists them);
    what follows ``--`` is files."""
    for arg in args:
        if arg == "--":
            return False
        if arg in ("-h", "--help") or arg.split("=", 1)[0] in ("--executor", "--jobs"):
            return True
    return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="raftlab")
def cli() -> None:
    """raftlab: a Raft key-value store and the Jepsen-style harness that tests it."""


def _interrupted_exit_code(error: BaseException | None) -> int:
    """128 + the signal that interrupted a run (a run's RunInterrupted carries it: SIGTERM
    gives 143), else EXIT_INTERRUPTED (Ctrl-C, 130)."""
    signum = getattr(error, "signum", None)
    return 128 + signum if isinstance(signum, int) else EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> None:
    """Entry point: map click's errors onto raftlab's exit codes."""
    try:
        code = cli.main(args=argv, prog_name="raftlab", standalone_mode=False)
    except click.exceptions.Abort as abort:  # Ctrl-C or SIGTERM: 128 + the signal, as a shell
        code = _interrupted_exit_code(abort.__cause__)
        click.echo(f"raftlab: interrupted (exit {code})", err=True)
        sys.exit(code)
    except click.UsageError as error:  # bad arguments, unknown options, missing values
        error.show()
        sys.exit(EXIT_BAD_ARGUMENTS)
    except click.ClickException as error:
        error.show()
        sys.exit(EXIT_BAD_ARGUMENTS if error.exit_code == 2 else error.exit_code)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except KeyboardInterrupt as interrupt:
        sys.exit(_interrupted_exit_code(interrupt))
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        click.echo("raftlab: internal error (see the traceback above)", err=True)
        sys.exit(EXIT_INTERNAL_ERROR)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
