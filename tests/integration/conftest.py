"""Real services for integration tests: a private redis-server and a private PostgreSQL server,
each on a free loopback port (never the shared ones), worker processes started as users start
them, and a results store file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from services.processes import RedisServer, StartError, free_port, lookups_command, start, stop, stop_all

__all__ = ["REPO", "PostgresServer", "Processes", "RedisServer", "free_port"]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server the test owns, without persistence: ``stop()`` then ``start()`` brings it
    back on the same port with every queued message lost."""
    server = RedisServer(tmp_path)
    try:
        server.start()
    except StartError as error:
        pytest.fail(str(error))
    yield server
    server.stop()


POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


def _postgres_binary(name: str) -> str | None:
    """``initdb``/``pg_ctl`` from PATH, else from the Debian layout (they are not on PATH there)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


class PostgresServer:
    """A PostgreSQL cluster the test owns: its own data directory and a free loopback port,
    trust auth, no fsync. ``stop()`` then ``start()`` (or ``restart()``) brings it back on the
    same port with its data; every connection open at the stop is cut ("terminating connection
    due to administrator command"), and while it is down connections are refused.

    initdb refuses to run as root, so under root the cluster belongs to the ``postgres`` user
    (run through ``runuser``) and lives in a directory of its own outside pytest's 0700 tmp.
    """

    def __init__(self, port: int | None = None):
        self.initdb, self.pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
        if self.initdb is None or self.pg_ctl is None:
            raise StartError("PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)")
        self.port = port if port is not None else free_port()
        self.owner = "postgres" if os.geteuid() == 0 else None
        self.directory = Path(tempfile.mkdtemp(prefix="lookups-postgres-"))
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        if self.owner is not None:
            import pwd

            account = pwd.getpwnam(self.owner)
            os.chown(self.directory, account.pw_uid, account.pw_gid)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *command: str, timeout: float = 120) -> None:
        if self.owner is not None:
            command = ("runuser", "-u", self.owner, "--", *command)
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise StartError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}\n{log}")

    def init(self) -> None:
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync",
                  "-E", "UTF8", "--locale=C")

    def start(self) -> None:
        """Start the server; return once it accepts connections (``pg_ctl -w``)."""
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: roll back open transactions and cut every client; ``immediate``: as a crash."""
        if (self.data / "postmaster.pid").exists():
            self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def postgres_server():
    """A private PostgreSQL server (see ``PostgresServer``), skipped only where PostgreSQL's
    binaries are not installed; removed with its data at teardown."""
    pytest.importorskip("psycopg")
    try:
        server = PostgresServer()
    except StartError as error:
        pytest.skip(str(error))
    try:
        server.init()
        server.start()
    except (StartError, subprocess.TimeoutExpired) as error:
        server.remove()
        pytest.fail(str(error))
    yield server
    try:
        server.stop("immediate")
    finally:
        server.remove()


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


@pytest.fixture
def fresh_postgres_url():
    psycopg = pytest.importorskip("psycopg")
    name = f"lookups_migrations_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres",
                                autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({error})")
    admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.sqlite'}"
    return request.getfixturevalue("fresh_postgres_url")
