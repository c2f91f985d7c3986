"""Dependencies the routes share: the worker's service, the admin check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from replayrec_serving._service import RecommendationService
from replayrec_serving._settings import ServiceSettings

__all__ = ["ServiceDep", "SettingsDep", "admin", "bearer", "get_service", "get_settings"]

bearer = HTTPBearer(auto_error=False, description="the admin token (REPLAYREC_ADMIN_TOKEN)")


def get_service(request: Request) -> RecommendationService:
    service: RecommendationService = request.app.state.service
    return service


def get_settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


def admin(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    settings: Annotated[ServiceSettings, Depends(get_settings)],
) -> None:
    """Admin endpoints need ``Authorization: Bearer <REPLAYREC_ADMIN_TOKEN>`` (compared in constant time);
    without a configured token they are off."""
    secret = settings.admin_secret()
    if secret is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "admin endpoints are disabled: set REPLAYREC_ADMIN_TOKEN on the service",
        )
    given = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(given, secret):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "admin endpoints need Authorization: Bearer <admin token>",
            headers={"WWW-Authenticate": "Bearer"},
        )


ServiceDep = Annotated[RecommendationService, Depends(get_service)]
SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
