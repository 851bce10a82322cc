"""Backends, templates, explainer strategies, scorers, models and health checks."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from api.broker import broker_reachable
from api.deps import SettingsDep, StoreDep, require_token
from api.schemas import Health
from services.llm.registry import BackendInfo, PluginInfo, TemplateInfo, list_strategies
from services.llm.registry import list_backends as backends
from services.llm.registry import list_scorers as scorers
from services.llm.registry import list_templates as templates
from services.subject_model import PACKAGED_MODELS

router = APIRouter(tags=["meta"])


class BackendsPublic(BaseModel):
    data: list[BackendInfo]
    count: int


class TemplatesPublic(BaseModel):
    data: list[TemplateInfo]
    count: int


class PluginsPublic(BaseModel):
    data: list[PluginInfo]
    count: int


class ModelPublic(BaseModel):
    name: str
    description: str


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int


@router.get("/v1/backends", operation_id="list_backends", dependencies=[Depends(require_token)])
def list_backends() -> BackendsPublic:

    data = backends()
    return BackendsPublic(data=data, count=len(data))


@router.get("/v1/templates", operation_id="list_templates", dependencies=[Depends(require_token)])
def list_templates() -> TemplatesPublic:

    data = templates()
    return TemplatesPublic(data=data, count=len(data))


@router.get("/v1/explainers", operation_id="list_explainers", dependencies=[Depends(require_token)])
def list_explainers() -> PluginsPublic:

    data = list_strategies()
    return PluginsPublic(data=data, count=len(data))


@router.get("/v1/scorers", operation_id="list_scorers", dependencies=[Depends(require_token)])
def list_scorers() -> PluginsPublic:

    data = scorers()
    return PluginsPublic(data=data, count=len(data))


@router.get("/v1/models", operation_id="list_models", dependencies=[Depends(require_token)])
def list_models() -> ModelsPublic:
    """Packaged (offline) subject models; any local checkpoint or hub name works too."""

    data = [ModelPublic(name=name, description=spec.description) for name, spec in PACKAGED_MODELS.items()]
    return ModelsPublic(data=data, count=len(data))


@router.get("/healthz", operation_id="healthz")
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", operation_id="readyz", responses={503: {"model": Health}})
def readyz(store: StoreDep, settings: SettingsDep) -> Health:
    """The store answers and Redis answers a ping; 503 otherwise."""

    checks: dict[str, str] = {}
    try:
        with store.session() as session:
            session.execute(text("SELECT 1"))
        checks["store"] = "ok"
    except Exception as error:
        checks["store"] = f"error: {type(error).__name__}"
    checks["redis"] = "ok" if broker_reachable(settings.broker_url) else "error: unreachable"
    ready = all(v == "ok" for v in checks.values())
    health = Health(status="ok" if ready else "unavailable", checks=checks)
    return health if ready else JSONResponse(health.model_dump(), status_code=503)
