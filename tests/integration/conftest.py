"""Real services for integration tests: a private redis-server on a free loopback port (never
the shared one), worker processes started as users start them, and a results store file."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server that the test owns: it can be stopped and restarted on the same port."""

    def __init__(self, directory: Path):
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed (Debian package redis-server)")
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


class Processes:
    """Starts ``lookups`` subcommands as real processes with a shared environment; kills the
    whole process group of each at teardown."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.started: list[subprocess.Popen] = []

    def start(self, *args: str, name: str) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        process = subprocess.Popen([sys.executable, "-m", "api", *args], env=self.env, cwd=REPO,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(process)
        return process

    def kill(self, process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                self.kill(process, signal.SIGTERM)


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
