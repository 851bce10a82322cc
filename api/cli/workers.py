"""``lookups worker`` and ``lookups orchestrate``: the distributed path's processes."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from lookups import InvalidInputError
from services.settings import get_settings
from services.store import Store

Pool = Literal["prefork", "threads"]


def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues: gpu, llm or gpu,llm.")] = "gpu,llm",
    concurrency: Annotated[int, typer.Option(help="Tasks at once: processes (prefork) or threads (1 per GPU "
                                                  "on gpu queues; several on llm: each item mostly waits).")] = 1,
    pool: Annotated[Pool | None, typer.Option(help="prefork (processes) or threads; default threads for an llm-only "
                                              "worker (one process: one local model, shared limits), else prefork.")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    hostname: Annotated[str | None, typer.Option(help="Celery node name (default: queues@host).")] = None,
) -> None:
    """Start a Celery worker consuming the given queues (needs Redis: LOOKUPS_BROKER_URL)."""
    import socket

    chosen = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(chosen) - {"gpu", "llm"})
    if unknown or not chosen:
        raise InvalidInputError(f"--queues {queues!r}: allowed queues are gpu and llm")
    if concurrency < 1:
        raise InvalidInputError(f"--concurrency must be at least 1, got {concurrency}")
    from celery.signals import worker_process_init

    from services.llm.registry import preload_backends
    from workers.app import app

    name = hostname or f"{'-'.join(chosen)}@{socket.gethostname()}"
    pool = pool or ("threads" if chosen == ["llm"] else "prefork")
    if "llm" in chosen:  # the backends' client libraries, imported before the first llm item needs them
        if pool == "threads":
            preload_backends()
        else:  # in each child: a thread importing in this process could be forked half-way
            worker_process_init.connect(lambda **_: preload_backends(), weak=False)
    app.worker_main(["worker", "-Q", ",".join(chosen), "-c", str(concurrency), "-P", pool, "-n", name,
                     "--loglevel", loglevel, "--without-gossip", "--without-mingle"])


def orchestrate(
    once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
) -> None:
    """Re-enqueue lost work items and move every active campaign on, every few seconds."""
    import logging

    from workers.dispatch import orchestrate as loop

    logging.basicConfig(level=logging.INFO)
    loop(Store(get_settings().results_url), once=once)


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(orchestrate)
