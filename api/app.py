"""The REST API: ``create_app()`` builds it from settings (``lookups api`` serves it)."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.ratelimit import SubmissionLimiter
from api.routes import campaigns, jobs, meta
from api.schemas import ErrorPublic, Problem
from contract import LookupsError
from services.settings import Settings, get_settings
from services.store import Store
from workers.dispatch import orchestrate
from workers.jobs import requeue_jobs

log = logging.getLogger(__name__)


def _orchestrate(store: Store, stop: threading.Event, interval: float) -> None:
    """The reconcile loop in a thread: lost items are re-enqueued, and campaigns and jobs
    submitted while the broker was down get sent."""

    while not stop.wait(interval):
        orchestrate(store, once=True)
        try:
            requeue_jobs(store)
        except Exception:  # broker or database briefly away: next round
            log.exception("re-enqueueing jobs failed")


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    stop = threading.Event()
    thread = None
    if settings.api_orchestrate:
        thread = threading.Thread(target=_orchestrate, name="orchestrate", daemon=True,
                                  args=(app.state.store, stop, settings.orchestrate_interval_s))
        thread.start()
    yield
    stop.set()
    if thread is not None:
        thread.join(timeout=30)


def _field(loc) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = [Problem(field=_field(e["loc"]), problem=e["msg"]) for e in error.errors()]
    detail = "; ".join(f"{p.field}: {p.problem}" for p in problems)
    return JSONResponse(ErrorPublic(detail=detail, errors=problems).model_dump(), status_code=422)


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(ErrorPublic(detail=str(error.detail)).model_dump(), status_code=error.status_code,
                        headers=getattr(error, "headers", None))


async def _lookups_error(request: Request, error: LookupsError) -> JSONResponse:
    return JSONResponse(ErrorPublic(detail=str(error)).model_dump(), status_code=400)


class BodyLimit:
    """413 for bodies over the limit; 411 for bodies without a Content-Length (no chunked uploads)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            problem = None
            if length is None and headers.get(b"transfer-encoding"):
                problem = (411, "send a Content-Length header")
            elif length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                problem = (413, f"request body over {self.max_bytes} bytes")
            if problem:
                response = JSONResponse(ErrorPublic(detail=problem[1]).model_dump(), status_code=problem[0])
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_api()
    app = FastAPI(title="lookups", version="1", lifespan=lifespan,
                  description="Automated interpretability of attention-MLP context look-ups: "
                              "campaigns, single jobs and reports.",
                  responses={400: {"model": ErrorPublic}, 401: {"model": ErrorPublic}, 403: {"model": ErrorPublic},
                             413: {"model": ErrorPublic}, 422: {"model": ErrorPublic}})
    app.state.settings = settings
    app.state.store = store or Store(settings.results_url)
    app.state.limiter = SubmissionLimiter(settings.api_submissions_per_minute, settings.broker_url)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(LookupsError, _lookups_error)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_request_bytes)
    for module in (campaigns, jobs, meta):
        app.include_router(module.router)
    return app
