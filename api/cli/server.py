"""``lookups api``: serve the REST API (or write its OpenAPI schema)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from contract import InvalidInputError
from services.settings import Settings
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
) -> None:
    """Serve the REST API (needs LOOKUPS_API_PRINCIPALS or LOOKUPS_API_TOKENS unless LOOKUPS_ENVIRONMENT=development)."""
    if dump_openapi is not None:
        dump_openapi.write_text(json.dumps(openapi_schema(), indent=2, sort_keys=True) + "\n")
        return
    import uvicorn

    from api.app import create_app

    try:
        app = create_app()
    except ValueError as error:
        raise InvalidInputError(str(error)) from error
    uvicorn.run(app, host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    app.command()(api)
