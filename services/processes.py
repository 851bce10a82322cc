"""Starting and stopping the service's own processes: a redis-server and ``lookups`` subcommands.

``lookups stack up``, the integration tests and the benchmarks all run the same topology as plain
processes; one starter keeps them from drifting apart (how a child is put in its own process
group, how long a stop waits before it kills, what "Redis is up" means).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["RedisServer", "StartError", "free_port", "listening", "lookups_command", "start", "stop",
           "stop_all"]


class StartError(RuntimeError):
    """A process could not be started, or did not come up in time."""


def free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it, so parallel runs do not collide)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def lookups_command(*args: str) -> list[str]:
    """``lookups ARGS`` run by this interpreter, so a child uses the same environment as its parent."""
    return [sys.executable, "-m", "api", *args]


def start(command: list[str], log: Path | None = None, env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen:
    """Start ``command`` with stdout and stderr appended to ``log`` (discarded without one).

    Each child leads its own process group, so a stop reaches a worker's pool children too, and
    a Ctrl-C at the terminal reaches only the parent, which then stops the children in order.
    """
    if log is None:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT, start_new_session=True)
    with open(log, "ab") as handle:  # the child holds its own copy of the descriptor
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:  # the whole group is gone already
        pass


def stop_all(processes: Iterable[subprocess.Popen], timeout: float = 30.0,
             sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to every process group at once (SIGTERM lets a worker finish its current task),
    then SIGKILL each group still running ``timeout`` seconds later."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            _signal_group(process, sig)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()


def stop(process: subprocess.Popen, timeout: float = 30.0, sig: int = signal.SIGTERM) -> int:
    """Stop one process group as ``stop_all`` does; its exit status."""
    stop_all([process], timeout, sig)
    return process.returncode


class RedisServer:
    """A redis-server on a fixed loopback port: it can be stopped and started again on the same
    port, as a restart of the broker looks to the workers.

    Without ``append_only`` nothing is persisted (``--save "" --appendonly no``): a restart loses
    every queued message, which is what the recovery tests want. With it, tasks still queued
    when Redis stops are there when it comes back, which is what a deployment wants.
    """

    def __init__(self, directory: Path, port: int | None = None, *, append_only: bool = False,
                 log: Path | None = None, env: Mapping[str, str] | None = None):
        self.directory = directory
        self.port = port if port is not None else free_port()
        self.append_only = append_only
        self.log = log
        self.env = env
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> subprocess.Popen:
        """Start redis-server; return its process once it accepts connections."""
        if shutil.which("redis-server") is None:
            raise StartError("redis-server is not installed (apt-get install redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = start(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.append_only else "no", "--dir", str(self.directory.resolve())],
            self.log, self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if listening("127.0.0.1", self.port, timeout=0.2):
                return self.process
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise StartError(f"redis-server did not start on 127.0.0.1:{self.port}; see its log")

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is not None:
            stop(self.process, timeout)
