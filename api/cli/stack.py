"""``lookups stack up``: the docker-compose topology as plain processes, for machines without
Docker: redis-server (unless one already listens), the orchestrator, a gpu worker, an llm
worker and the REST api. One command starts them; Ctrl-C or SIGTERM stops them all."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

import typer

from services.errors import InvalidInputError

stack_app = typer.Typer(help="Run the whole service on this machine without Docker.",
                        no_args_is_help=True)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_listening(host: str, port: int, process: subprocess.Popen, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _listening(host, port):
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise InvalidInputError(f"redis-server did not start on {host}:{port}; see its log")


def _start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Each child leads its own process group, so a stop reaches a worker's pool children too."""
    with open(log, "ab") as handle:
        return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(processes: dict[str, subprocess.Popen], timeout: float = 30) -> None:
    """SIGTERM every group (workers finish their current task), SIGKILL what is left; Redis last,
    so workers can still acknowledge their tasks while stopping."""
    order = [name for name in processes if name != "redis"] + (["redis"] if "redis" in processes else [])
    for group in ([n for n in order if n != "redis"], ["redis"]):
        for name in group:
            if name in processes and processes[name].poll() is None:
                os.killpg(processes[name].pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in group:
            if name not in processes:
                continue
            try:
                processes[name].wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(processes[name].pid, signal.SIGKILL)
                processes[name].wait()


@stack_app.command()
def up(
    broker_url: Annotated[str | None, typer.Option(
        help="Redis URL (default: LOOKUPS_BROKER_URL). A loopback port with nothing listening "
             "gets its own redis-server.")] = None,
    llm_concurrency: Annotated[int, typer.Option(help="Processes of the llm worker.")] = 8,
    host: Annotated[str, typer.Option(help="Address the REST api listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the REST api.")] = 8000,
    api: Annotated[bool, typer.Option("--api/--no-api", help="Start the REST api too.")] = True,
    state_dir: Annotated[Path, typer.Option(
        help="Redis's append-only file and every process's log go here.")] = Path(".lookups"),
) -> None:
    """Start redis-server, the orchestrator, a gpu worker, an llm worker and the api; wait."""
    from services.settings import get_settings

    url = broker_url or get_settings().broker_url
    parsed = urlparse(url)
    if parsed.scheme != "redis" or not parsed.port:
        raise InvalidInputError(f"--broker-url {url!r}: expected redis://HOST:PORT/DB")
    if llm_concurrency < 1:
        raise InvalidInputError(f"--llm-concurrency must be at least 1, got {llm_concurrency}")
    if api:
        try:  # refuse here, before anything starts, rather than when the api child exits
            get_settings().check_api()
        except ValueError as error:
            raise InvalidInputError(f"{error} (or start without the api: --no-api)") from error
    from services.store import Store

    Store(get_settings().results_url).dispose()  # migrate once here, not in every child at once
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LOOKUPS_BROKER_URL": url, "PYTHONUNBUFFERED": "1"}
    lookups = [sys.executable, "-m", "api"]
    commands = {
        "orchestrator": [*lookups, "orchestrate"],
        "gpu-worker": [*lookups, "worker", "--queues", "gpu", "--concurrency", "1", "--hostname", "gpu@%h"],
        "llm-worker": [*lookups, "worker", "--queues", "llm", "--concurrency", str(llm_concurrency),
                       "--hostname", "llm@%h"],
    }
    if api:
        commands["api"] = [*lookups, "api", "--host", host, "--port", str(port)]

    processes: dict[str, subprocess.Popen] = {}
    stopping = False

    def on_signal(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if _listening(parsed.hostname, parsed.port):
            typer.echo(f"redis        already listening at {parsed.hostname}:{parsed.port}; using it")
        elif parsed.hostname not in ("127.0.0.1", "localhost"):
            raise InvalidInputError(f"nothing listens at {parsed.hostname}:{parsed.port}, and only a "
                                    "loopback broker is started here")
        else:
            if shutil.which("redis-server") is None:
                raise InvalidInputError("redis-server is not installed (apt-get install redis-server)")
            redis_dir = (state_dir / "redis").resolve()
            redis_dir.mkdir(parents=True, exist_ok=True)
            # Append-only, so tasks still queued when Redis stops are there when it comes back.
            processes["redis"] = _start(
                ["redis-server", "--port", str(parsed.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "yes", "--dir", str(redis_dir)], logs / "redis.log", env)
            _wait_listening(parsed.hostname, parsed.port, processes["redis"])
            typer.echo(f"redis        pid {processes['redis'].pid:<7} log {logs / 'redis.log'}")
        for name, command in commands.items():
            processes[name] = _start(command, logs / f"{name}.log", env)
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
        _stop(processes)


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
