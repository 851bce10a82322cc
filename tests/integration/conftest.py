"""Real services for integration tests: a private redis-server on a free loopback port (never
the shared one), worker processes started as users start them, and a results store file."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from services.processes import RedisServer, StartError, free_port, lookups_command, start, stop, stop_all

__all__ = ["REPO", "Processes", "RedisServer", "free_port"]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server the test owns, without persistence: ``stop()`` then ``start()`` (or
    ``restart()``) brings it back on the same port with every queued message lost."""
    server = RedisServer(tmp_path)
    try:
        server.start()
    except StartError as error:
        pytest.fail(str(error))
    yield server
    server.stop()


class Processes:
    """Starts ``lookups`` subcommands as real processes with a shared environment; stops the
    whole process group of each at teardown."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.started: list[subprocess.Popen] = []

    def start(self, *args: str, name: str) -> subprocess.Popen:
        process = start(lookups_command(*args), self.log_dir / f"{name}.log", self.env, cwd=REPO)
        self.started.append(process)
        return process

    def kill(self, process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        stop(process, sig=sig)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        stop_all(self.started)


@pytest.fixture
def stack_env(tmp_path, redis_server) -> dict[str, str]:
    """Environment of every process of one test's stack: its broker, store and caches."""
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "LOOKUPS_BROKER_URL": redis_server.url,
        "LOOKUPS_RESULTS_URL": f"sqlite:///{tmp_path / 'results.sqlite'}",
        "LOOKUPS_LLM_DB_URL": f"sqlite:///{tmp_path / 'llm.sqlite'}",
        "LOOKUPS_DEVICE": "cpu",
    }


@pytest.fixture
def processes(stack_env, tmp_path):
    running = Processes(stack_env, tmp_path)
    yield running
    running.stop_all()
