"""Shared dependencies: the store, settings and bearer-token auth."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.settings import Settings
from services.store import Store

bearer = HTTPBearer(auto_error=False, description="A token from LOOKUPS_API_TOKENS.")


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """401 without a bearer token, 403 with a wrong one; open only in development with no tokens."""
    if not settings.api_tokens and settings.environment == "development":
        return
    if credentials is None:
        raise HTTPException(401, "missing bearer token (Authorization: Bearer TOKEN)",
                            headers={"WWW-Authenticate": "Bearer"})
    if not any(secrets.compare_digest(credentials.credentials, t) for t in settings.api_tokens):
        raise HTTPException(403, "invalid bearer token")
