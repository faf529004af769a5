"""The command line: parse options, build a Context, call one function, map errors to exit codes.

Exit codes: 0 ok, 1 failed, 2 bad usage or config, 3 leftovers found or unhealthy, 4 locked by another run,
130 interrupted.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import click
import typer

from cdpoc import __version__, interrupts
from cdpoc.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Cancelled,
    CdpocError,
    ConfigError,
    Declined,
)
from cdpoc.options import Options

if TYPE_CHECKING:  # the run's modules load when a command runs, not for --help or --version
    from cdpoc.context import Context
    from cdpoc.ui import Ui

app = typer.Typer(
    help="Stand up a classic AWS CI/CD environment with one command, and tear it down to nothing.\n\n"
    "Exit codes: 0 ok, 1 failed, 2 bad usage or config, 3 leftovers found or unhealthy, 4 locked by another run, "
    "130 interrupted.\n\nThe global options (--config, --name, --region, --profile, --endpoint-url, --verbose, "
    "--quiet, --no-color) go before or after the command.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])

ParallelismOption = Annotated[int, typer.Option("--parallelism", min=1, max=32, help="Steps run at once.")]
JsonLinesOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print JSON lines on stdout instead: a version line, one line per message and step change, and a "
        "summary line with the exit code (schema in the README).",
    ),
]


# The global options, accepted before the command (`cdpoc --region x up`) and after it (`cdpoc up --region x`),
# as the AWS CLI takes them; every subcommand's help lists them.
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="User config file merged over the defaults (default: ./cdpoc.yaml if present)."
    ),
]
NameOption = Annotated[str | None, typer.Option("--name", help="Stack name (overrides the config).")]
RegionOption = Annotated[str | None, typer.Option("--region", help="AWS region (beats config, env, profile).")]
ProfileOption = Annotated[str | None, typer.Option("--profile", help="AWS profile to use.")]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url", help="AWS endpoint, e.g. the sandbox's http://127.0.0.1:5000 (AWS_ENDPOINT_URL works too)."
    ),
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Print every AWS call with its outcome and duration (on stderr).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors, warnings and --json output.")]
NoColorOption = Annotated[bool, typer.Option("--no-color", help="No colors (NO_COLOR=1 works too).")]
# Options field -> the option's type.
GLOBAL_OPTIONS: dict[str, Any] = {
    "config": ConfigOption,
    "name": NameOption,
    "region": RegionOption,
    "profile": ProfileOption,
    "endpoint_url": EndpointOption,
}
# The output switches: Ui.configure's keyword -> the flag's type.
OUTPUT_SWITCHES: dict[str, Any] = {"verbose": VerboseOption, "quiet": QuietOption, "no_color": NoColorOption}


def takes_global_options(command: F) -> F:
    """Add the global options to a subcommand: a value given after the command overrides one given before."""
    signature = inspect.signature(command, eval_str=True)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
        for name, annotation in GLOBAL_OPTIONS.items()
    ] + [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=annotation)
        for name, annotation in OUTPUT_SWITCHES.items()
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: value for name in GLOBAL_OPTIONS if (value := kwargs.pop(name, None)) is not None}
        switches = {name: bool(kwargs.pop(name, False)) for name in OUTPUT_SWITCHES}
        typer_ctx = kwargs.get("ctx") or next(a for a in args if isinstance(a, typer.Context))
        if given:
            typer_ctx.obj["options"] = dataclasses.replace(typer_ctx.obj["options"], **given)
        typer_ctx.obj["ui"].configure(**switches)
        return command(*args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *extra])  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def handles_errors(command: F) -> F:
    """Every command ends with a message and a documented exit code, never a traceback for user errors."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        typer_ctx = kwargs.get("ctx") or next(a for a in args if isinstance(a, typer.Context))
        ui: Ui = typer_ctx.obj["ui"]
        try:
            result = command(*args, **kwargs)
        except Declined as exc:
            ui.say(exc.message)
            ui.finish_stream(exc.exit_code, exc)
            raise typer.Exit(exc.exit_code) from None
        except CdpocError as exc:
            ui.error(exc)
            ui.finish_stream(exc.exit_code, exc)
            if exc.exit_code == EXIT_INTERRUPTED:
                interrupts.announced()
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            cancelled = Cancelled("interrupted", "Re-run the same command to resume; it picks up what exists.")
            ui.error(cancelled)
            ui.finish_stream(EXIT_INTERRUPTED, cancelled)
            interrupts.announced()
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception:
            # Not a user error: a bug. Its traceback is what a report needs.
            ui.bug(traceback.format_exc())
            ui.finish_stream(EXIT_FAILED, CdpocError("a bug in cdpoc (its traceback is on stderr)"))
            raise typer.Exit(EXIT_FAILED) from None
        ui.finish_stream(EXIT_OK)
        return result

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cdpoc {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: ConfigOption = None,
    name: NameOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointOption = None,
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
    no_color: NoColorOption = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    from cdpoc.ui import Ui

    ui = Ui()
    ui.configure(verbose=verbose, quiet=quiet, no_color=no_color)
    ctx.obj = {"options": Options(config, name, region, profile, endpoint_url), "ui": ui}


def _context(typer_ctx: typer.Context) -> Context:
    from cdpoc.context import Context

    return Context.build(typer_ctx.obj["options"], typer_ctx.obj["ui"])


def _confirm(question: str) -> bool:
    try:
        return typer.confirm(question, default=False)
    except typer.Abort as exc:  # click turns both Ctrl-C and the end of input at the prompt into Abort
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise Cancelled("interrupted at the question: nothing was done") from None
        raise ConfigError(
            f"{question} needs an answer, and there is no terminal to ask: nothing was done",
            "Pass --yes to skip the question.",
        ) from None


@app.command()
@handles_errors
@takes_global_options
def plan(
    ctx: typer.Context,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help="Exit 0 when there is nothing to do, 2 when `up` has work, 1 when `up` would refuse (a conflict) "
            "or on any error.",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the plan as one JSON document (schema in the README).")
    ] = False,
) -> None:
    """Show what `up` would create, change or leave alone (read-only)."""
    from cdpoc import lifecycle

    ctx.obj["ui"].json_mode = json_output
    try:
        context = _context(ctx)
        result = lifecycle.plan(context)
    except CdpocError as exc:
        if detailed_exitcode and exc.exit_code == EXIT_USAGE:
            exc.exit_code = EXIT_FAILED  # 2 means "up has work" here: as in Terraform, an error is 1
        raise
    if detailed_exitcode:
        raise typer.Exit(lifecycle.detailed_exit_code(context, result))


@app.command()
@handles_errors
@takes_global_options
def up(ctx: typer.Context, parallelism: ParallelismOption = 8, json_output: JsonLinesOption = False) -> None:
    """Provision the environment; safe to re-run; resumes after a crash or Ctrl-C."""
    from cdpoc import lifecycle

    if json_output:
        ctx.obj["ui"].start_stream("up")
    lifecycle.up(_context(ctx), parallelism=parallelism)


@app.command()
@handles_errors
@takes_global_options
def down(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    keep_data: Annotated[
        bool,
        typer.Option(
            "--keep-data",
            help="Keep the uploads bucket, a snapshot of the MongoDB data and its passwords for a later `up`.",
        ),
    ] = False,
    parallelism: ParallelismOption = 8,
    json_output: JsonLinesOption = False,
) -> None:
    """Delete everything of the stack in dependency order, then prove nothing is left (exit 3 if something is)."""
    from cdpoc import lifecycle

    if json_output:
        if not yes:  # the question would land in the JSON lines, and a script cannot answer it
            raise ConfigError("down --json needs --yes: a script cannot answer the question", "Add --yes.")
        ctx.obj["ui"].start_stream("down")
    lifecycle.down(_context(ctx), yes=yes, confirm=_confirm, parallelism=parallelism, keep_data=keep_data)


@app.command()
@handles_errors
@takes_global_options
def unlock(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove the stack's lock, whichever run holds it (after showing it); only when no run is going on."""
    from cdpoc.lock import unlock as remove_lock

    context = _context(ctx)
    remove_lock(context.run, context.ui, yes=yes, confirm=_confirm)


@app.command("push-app")
@handles_errors
@takes_global_options
def push_app(
    ctx: typer.Context,
    bundle: Annotated[
        Path | None,
        typer.Option(
            "--bundle",
            help="The application revision to push (default: ./bundle, or the sample app that ships with cdpoc).",
        ),
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="Commit message.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the change through the pipeline to the instances.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds --wait waits before giving up (exit 1).")
    ] = 1800.0,
    allow_secret: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-secret",
            metavar="PATH",
            help="Ship this bundle file although it looks like a secret (repeatable; path relative to the bundle).",
        ),
    ] = None,
    json_output: JsonLinesOption = False,
) -> None:
    """Commit what changed in the bundle to the pipeline's source (exit 2 if the bundle is invalid).

    Files excluded by the bundle's .cdpocignore or .gitignore files are not sent; a file that looks like a
    secret is refused unless --allow-secret names it."""
    from cdpoc import rollout

    if json_output:
        ctx.obj["ui"].start_stream("push-app")
    rollout.push_app(_context(ctx), bundle, message, wait, timeout, frozenset(allow_secret or ()))


@app.command()
@handles_errors
@takes_global_options
def status(
    ctx: typer.Context,
    watch: Annotated[
        bool, typer.Option("--watch", help="Refresh in place until Ctrl-C; off a terminal, print a line per change.")
    ] = False,
    interval: Annotated[float, typer.Option("--interval", min=1.0, help="Seconds between --watch refreshes.")] = 5.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the snapshot as JSON (with --watch: one line per change).")
    ] = False,
) -> None:
    """Show the stack, endpoints, fleet, pipeline and latest deployment (exit 0 healthy, 3 missing or unhealthy)."""
    from cdpoc import status as status_view

    ctx.obj["ui"].json_mode = json_output
    raise typer.Exit(status_view.show(_context(ctx), watch=watch, interval=interval))


@app.command()
@handles_errors
@takes_global_options
def logs(
    ctx: typer.Context,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")] = False,
    since: Annotated[str, typer.Option("--since", help="How far back to start: 30s, 10m, 2h, 1d.")] = "10m",
    instance: Annotated[str | None, typer.Option("--instance", help="Only this instance (i-...).")] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Only this log: app, deploy, cloud-init or agent.")
    ] = None,
    filter_pattern: Annotated[
        str | None, typer.Option("--filter", help="A CloudWatch Logs filter pattern, e.g. ERROR.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object per event.")] = False,
) -> None:
    """Print the instances' logs from CloudWatch Logs (exit 3 when the stack's log group does not exist)."""
    from cdpoc import logs as log_view

    request = log_view.LogRequest.parse(since, instance, source, filter_pattern, follow)
    ctx.obj["ui"].json_mode = json_output
    raise typer.Exit(log_view.show(_context(ctx), request))


@app.command()
@handles_errors
@takes_global_options
def sandbox(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0 = any free port).")
    ] = 5000,
    timing: Annotated[
        str,
        typer.Option(
            "--timing",
            help="How long NAT gateways, load balancers, boots, health checks and deployments take: "
            "fast, realistic (AWS-like minutes) or a factor of AWS's durations, e.g. 0.1.",
        ),
    ] = "fast",
) -> None:
    """Run a local AWS endpoint (moto plus cdpoc's additions) until Ctrl-C or SIGTERM."""
    from cdpoc.sandbox.server import require_sandbox_extra, serve_forever

    require_sandbox_extra("sandbox")
    serve_forever(port, ctx.obj["ui"], timing)


@app.command()
@handles_errors
@takes_global_options
def demo(ctx: typer.Context) -> None:
    """Run the whole lifecycle against an in-process sandbox and check every step: up, up again (no changes),
    plan, status, push-app --wait, a new and a failing revision, down and the leftover scan."""
    from cdpoc.sandbox.server import require_sandbox_extra

    require_sandbox_extra("demo")
    from cdpoc.demo import run_demo

    run_demo(ctx.obj["ui"], ctx.obj["options"])


def main() -> None:
    interrupts.run(app)
