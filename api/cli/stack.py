"""``lookups stack up``: the docker-compose topology as plain processes, for machines without
Docker: redis-server (unless one already listens), the orchestrator, a gpu worker, an llm
worker and the REST api. One command starts them; Ctrl-C or SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

import typer

from api.token_file import announce, is_loopback, token_from_file
from lookups import InvalidInputError
from services.processes import RedisServer, StartError, listening, lookups_command, start, stop_all
from services.settings import get_settings
from services.store import Store

stack_app = typer.Typer(help="Run the whole service on this machine without Docker.",
                        no_args_is_help=True)


@stack_app.command()
def up(
    broker_url: Annotated[str | None, typer.Option(
        help="Redis URL (default: LOOKUPS_BROKER_URL). A loopback port with nothing listening "
             "gets its own redis-server.")] = None,
    llm_concurrency: Annotated[int, typer.Option(help="LLM items the llm worker runs at once (threads).")] = 8,
    host: Annotated[str, typer.Option(help="Address the REST api listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the REST api.")] = 8000,
    api: Annotated[bool, typer.Option("--api/--no-api", help="Start the REST api too.")] = True,
    state_dir: Annotated[Path, typer.Option(
        help="Redis's append-only file, every process's log and the generated api token go here.")] = Path(".lookups"),
) -> None:
    """Start redis-server, the orchestrator, a gpu worker, an llm worker and the api; wait.
    With no LOOKUPS_API_TOKENS or LOOKUPS_API_PRINCIPALS, an api on a loopback --host gets a
    token generated into STATE_DIR/api-token (printed the first time)."""

    url = broker_url or get_settings().broker_url
    parsed = urlparse(url)
    if parsed.scheme != "redis" or not parsed.port:
        raise InvalidInputError(f"--broker-url {url!r}: expected redis://HOST:PORT/DB")
    if llm_concurrency < 1:
        raise InvalidInputError(f"--llm-concurrency must be at least 1, got {llm_concurrency}")
    token_file = None
    if api:
        settings = get_settings()
        if not settings.api_tokens and not settings.api_principals and settings.environment != "development":
            if not is_loopback(host):
                raise InvalidInputError(f"--host {host}: an api reachable from other machines needs "
                                        "LOOKUPS_API_TOKENS (a JSON list of bearer tokens); only a loopback "
                                        "--host gets a generated one")
            token_file = state_dir / "api-token"
            settings = settings.model_copy(update={"api_tokens": ["generated at start"]})
        try:  # refuse here, before anything starts, rather than when the api child exits
            settings.check_api()
        except ValueError as error:
            raise InvalidInputError(f"{error} (or start without the api: --no-api)") from error

    Store(get_settings().results_url).dispose()  # migrate once here, not in every child at once
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LOOKUPS_BROKER_URL": url, "PYTHONUNBUFFERED": "1"}
    commands = {
        "orchestrator": lookups_command("orchestrate"),
        "gpu-worker": lookups_command("worker", "--queues", "gpu", "--concurrency", "1", "--hostname", "gpu@%h"),
        "llm-worker": lookups_command("worker", "--queues", "llm", "--concurrency", str(llm_concurrency),
                                      "--hostname", "llm@%h"),
    }
    if api:
        commands["api"] = lookups_command("api", "--host", host, "--port", str(port))
    if token_file is not None:
        commands["api"] += ["--token-file", str(token_file)]
        typer.echo(announce(token_file, *token_from_file(token_file)))

    processes: dict[str, subprocess.Popen] = {}
    redis: RedisServer | None = None
    stopping = False

    def on_signal(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if listening(parsed.hostname, parsed.port):
            typer.echo(f"redis        already listening at {parsed.hostname}:{parsed.port}; using it")
        elif parsed.hostname not in ("127.0.0.1", "localhost"):
            raise InvalidInputError(f"nothing listens at {parsed.hostname}:{parsed.port}, and only a "
                                    "loopback broker is started here")
        else:
            # Append-only, so tasks still queued when Redis stops are there when it comes back.
            redis = RedisServer(state_dir / "redis", parsed.port, append_only=True,
                                log=logs / "redis.log", env=env)
            try:
                processes["redis"] = redis.start()  # watched like the others below
            except StartError as error:
                raise InvalidInputError(str(error)) from error
            typer.echo(f"redis        pid {processes['redis'].pid:<7} log {logs / 'redis.log'}")
        for name, command in commands.items():
            processes[name] = start(command, logs / f"{name}.log", env)
            typer.echo(f"{name:<12} pid {processes[name].pid:<7} log {logs / f'{name}.log'}")
        if api:
            typer.echo(f"api          http://{host}:{port}")
        typer.echo("running; Ctrl-C stops everything")
        while not stopping:
            exited = [name for name, p in processes.items() if p.poll() is not None]
            if exited:
                typer.echo(f"{', '.join(exited)} exited (see its log); stopping the rest", err=True)
                raise typer.Exit(1)
            time.sleep(0.5)
        typer.echo("stopping")
    finally:
        # Workers first (SIGTERM: each finishes its current task), Redis last, so they can
        # still acknowledge their tasks while stopping.
        stop_all(p for name, p in processes.items() if name != "redis")
        if redis is not None:
            redis.stop()


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
