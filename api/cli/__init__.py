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


def main() -> None:
    run_guarded(app)
