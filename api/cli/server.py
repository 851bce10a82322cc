"""``lookups api``: serve the REST API (or write its OpenAPI schema)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from api.token_file import announce, token_from_file
from lookups import InvalidInputError
from services.settings import Settings, get_settings
from services.store import Store


def openapi_schema() -> dict:
    """The app's schema, independent of settings and of any real store."""
    from api.app import create_app

    app = create_app(Settings(environment="development", api_tokens=[], api_orchestrate=False),
                     Store("sqlite:///:memory:"))
    return app.openapi()


def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    dump_openapi: Annotated[Path | None, typer.Option(help="Write the OpenAPI schema to this file and exit.")] = None,
    token_file: Annotated[Path | None, typer.Option(help="When LOOKUPS_API_TOKENS and LOOKUPS_API_PRINCIPALS are both empty: accept the bearer token in this file, generated (and printed once) when it does not exist (the first run of lookups stack up and docker compose).")] = None,
) -> None:
    """Serve the REST API (needs LOOKUPS_API_PRINCIPALS or LOOKUPS_API_TOKENS unless LOOKUPS_ENVIRONMENT=development)."""
    if dump_openapi is not None:
        dump_openapi.write_text(json.dumps(openapi_schema(), indent=2, sort_keys=True) + "\n")
        return
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    if token_file is not None and not settings.api_tokens and not settings.api_principals:
        token, generated = token_from_file(token_file)
        typer.echo(announce(token_file, token, generated))
        settings = settings.model_copy(update={"api_tokens": [token]})
    try:
        app = create_app(settings)
    except ValueError as error:
        raise InvalidInputError(str(error)) from error
    uvicorn.run(app, host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    app.command()(api)
