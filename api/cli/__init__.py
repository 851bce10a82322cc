"""The ``lookups`` command line. Each command group lives in its own module."""

import typer

from api.cli import analysis, heads, llm, remote, run, server, stack, workers
from api.cli._common import run_guarded

app = typer.Typer(
    name="lookups",
    help="Find next-token neurons, the contexts that fire them and the attention heads behind them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
analysis.register(app)
heads.register(app)
llm.register(app)
remote.register(app)
run.register(app)
server.register(app)
stack.register(app)
workers.register(app)


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"lookups {version('lookups')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Find next-token neurons, the contexts that fire them and the attention heads behind them."""


def main() -> None:
    run_guarded(app)
