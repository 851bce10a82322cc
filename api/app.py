"""The REST API: ``create_app()`` builds it from settings (``lookups api`` serves it)."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.middleware import BodyLimit, SecurityHeaders
from api.ratelimit import SubmissionLimiter
from api.routes import campaigns, jobs, meta
from api.schemas import ErrorPublic, Problem
from lookups import LookupsError
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


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_api()
    # redirect_slashes off: the API answers nothing with a redirect (Starlette's would echo Host).
    app = FastAPI(title="lookups", version="1", lifespan=lifespan, redirect_slashes=False,
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
    app.add_middleware(SecurityHeaders, docs_paths=tuple(p for p in (app.docs_url, app.redoc_url) if p))  # outermost
    for module in (campaigns, jobs, meta):
        app.include_router(module.router)
    return app
