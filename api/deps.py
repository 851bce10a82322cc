"""Shared dependencies: the store, settings, the principal a bearer token names, and the
checks every submission passes (access policy, campaign size, rate limit)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.access import Principal, Problems, policy, principal_for, request_problems, token_table
from api.ratelimit import SubmissionLimiter
from api.schemas import ErrorPublic
from services.corpus import packaged_builders
from services.llm.registry import named_targets, templates
from services.settings import Settings
from services.store import Store
from services.subject_model import PACKAGED_MODELS

bearer = HTTPBearer(auto_error=False, description="A token from LOOKUPS_API_PRINCIPALS or LOOKUPS_API_TOKENS.")
DEVELOPMENT = Principal(name=None, admin=True)


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_limiter(request: Request) -> SubmissionLimiter:
    return request.app.state.limiter


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
LimiterDep = Annotated[SubmissionLimiter, Depends(get_limiter)]


def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The principal of the bearer token: 401 without one, 403 with an unknown one; in
    development with no tokens configured, an admin with no name."""
    table = token_table(settings)
    if not table and settings.environment == "development":
        return DEVELOPMENT
    if credentials is None:
        raise HTTPException(401, "missing bearer token (Authorization: Bearer TOKEN)",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = principal_for(credentials.credentials, table)
    if principal is None:
        raise HTTPException(403, "invalid bearer token")
    return principal


PrincipalDep = Annotated[Principal, Depends(require_token)]


def refuse(problems: Problems) -> None:
    """422 in the API's validation-error shape, one entry per (field, problem) of the body
    (field "" is the body as a whole)."""
    if problems:
        raise RequestValidationError([
            {"type": "access", "loc": ("body", *(field.split(".") if field else ())), "msg": problem}
            for field, problem in problems])


def access_problems(body: dict, settings: Settings) -> Problems:
    """The corpus, model, backend, template or base_url fields of ``body`` the policy refuses."""
    return request_problems(body, policy(settings, PACKAGED_MODELS, templates(), packaged_builders(),
                                         named_targets("local")))


RATE_LIMITED = {429: {"model": ErrorPublic, "description": "Too many submissions this minute by this principal.",
                      "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}}}


def count_submission(limiter: SubmissionLimiter, principal: Principal) -> None:
    """429 with Retry-After once the principal has submitted its allowance this minute."""
    wait = limiter.admit(principal.name or "-")
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(429, f"more than {limiter.per_minute} submissions a minute "
                                 f"(LOOKUPS_API_SUBMISSIONS_PER_MINUTE); retry in {seconds} s",
                            headers={"Retry-After": str(seconds)})
