"""The app factory: ``create_app(settings)`` builds the FastAPI application; the models and stores are loaded
when it starts (the lifespan), never at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

import replayrec_serving
from replayrec_serving._metrics import ServiceMetrics
from replayrec_serving._service import RecommendationService
from replayrec_serving._settings import ServiceSettings
from replayrec_serving.routes import admin, events, health, recommendations, replay, ui

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("replayrec.serving")


def create_app(settings: ServiceSettings | None = None, *, watch: bool = True) -> FastAPI:
    """The service. ``watch``: keep checking the registry aliases and the experiment in the background."""
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await run_in_threadpool(RecommendationService, settings, ServiceMetrics())
        await run_in_threadpool(service.start, watch)
        app.state.service = service
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(
        title="replayrec",
        version=replayrec_serving.__version__,
        summary="real-time recommendations from live behaviour",
        description="Recommendations from the online profiles the stream keeps, through the cascade the "
        "registry's aliases name; live ingest and feedback; the replay controller; health and metrics.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )
    limit = settings.max_body_bytes

    @app.middleware("http")
    async def body_limit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > limit):
            return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)
        return await call_next(request)

    for module in (recommendations, events, replay, admin, health, ui):
        app.include_router(module.router)
    app.mount("/ui", ui.static_files(), name="ui")  # after the routes: /ui and /ui/ are the page
    return app


def app_from_env() -> FastAPI:
    """What ``uvicorn --factory`` runs in each worker: the settings from the environment."""
    return create_app(ServiceSettings())
