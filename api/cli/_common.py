"""Helpers shared by CLI commands: error reporting and JSON output."""

import json
import sys
from collections.abc import Iterable
from typing import TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console

from lookups import InvalidInputError, LookupsError

M = TypeVar("M", bound=BaseModel)

err_console = Console(stderr=True)

# typer ships its own copy of click: its usage errors are not ``click.ClickException``s, so find
# the base class through an exception typer exports (both copies, should typer ever go back).
USAGE_ERRORS = tuple({next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"),
                      __import__("click").ClickException})

# Options that take several values after one flag (``--layers 27 28 29``); click options cannot
# be variadic, so these are rewritten to repeated flags before parsing.
MULTI_VALUE_OPTIONS = {"--layers"}


def expand_multi_value_options(args: list[str]) -> list[str]:
    out: list[str] = []
    flag = None
    for arg in args:
        if arg in MULTI_VALUE_OPTIONS:
            flag = arg
            continue
        if flag is not None and not arg.startswith("-"):
            out += [flag, arg]
            continue
        flag = None
        out.append(arg)
    return out


def run_guarded(app: typer.Typer, args: list[str] | None = None) -> None:
    """Run the CLI, turning known errors into one clear line and exit code 2."""
    try:
        code = app(args=expand_multi_value_options(sys.argv[1:] if args is None else args),
                   standalone_mode=False)
        if isinstance(code, int) and code:  # click returns (not raises) typer.Exit's code here
            sys.exit(code)
    except LookupsError as error:
        err_console.print(f"[bold red]error:[/] {error}")
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except USAGE_ERRORS as error:  # a usage error: its message and the usage hint, exit 2
        error.show()
        sys.exit(error.exit_code)


def worth_range(text: str) -> list[str]:
    """``--worth-range LOW,HIGH`` as its two parts (the models check they are fractions)."""
    parts = text.split(",")
    if len(parts) != 2:
        raise InvalidInputError(f"--worth-range {text!r}: expected LOW,HIGH")
    return parts


def parse_prices(given: list[str]) -> dict[str, tuple[float, float]]:
    """``MODEL=IN,OUT`` flags as a price table (USD per million input, output tokens)."""
    prices = {}
    for entry in given:
        model, _, pair = entry.rpartition("=")
        try:
            price_in, price_out = (float(part) for part in pair.split(","))
        except ValueError:
            raise InvalidInputError(f"--price {entry!r}: expected MODEL=IN,OUT, e.g. gpt-4o=2.5,10") from None
        if not model or price_in < 0 or price_out < 0:
            raise InvalidInputError(f"--price {entry!r}: expected MODEL=IN,OUT with prices >= 0")
        prices[model] = (price_in, price_out)
    return prices


def print_json(records: BaseModel | Iterable[BaseModel]) -> None:
    if isinstance(records, BaseModel):
        typer.echo(records.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in records], indent=2))


def validated(request_model: type[M], /, **values) -> M:
    """A request built from command-line values; a bad value is a usage error naming its flag."""
    try:
        return request_model(**values)
    except ValidationError as error:
        raise InvalidInputError("; ".join(
            f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" if e["loc"] else e["msg"]
            for e in error.errors())) from None
