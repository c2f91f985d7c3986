"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from replayrec_serving._deps import ServiceDep
from replayrec_serving._metrics import render_metrics

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    """The process answers (liveness)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready: the failing checks are named"}})
async def readyz(service: ServiceDep) -> JSONResponse:
    """Models loaded, Redis and the broker reachable."""
    ok, checks = await run_in_threadpool(service.readiness)
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus metrics (every worker's, merged, in multiprocess mode)."""
    return Response(render_metrics(service.metrics), media_type=CONTENT_TYPE_LATEST)
