"""The live web UI: the page (``/ui``, its assets under ``/ui/``) and what it reads — users, a user's profile,
the system panel, and a user's live stream (server-sent events)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Annotated, Any

import anyio
import redis
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from replayrec_serving._deps import ServiceDep
from replayrec_serving._schemas import (
    USER_ID,
    USER_PREFIX,
    SystemResponse,
    UserProfileResponse,
    UsersResponse,
)
from replayrec_serving._ui import UiState, find_users, live_events, system_view, user_view

__all__ = ["router", "static_files"]

router = APIRouter(tags=["ui"])

#: the page loads only what the service serves: no CDN, no inline script
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
UserId = Annotated[str, Path(pattern=USER_ID, description="the shop's user id")]


async def ui_state(request: Request, service: ServiceDep) -> UiState:
    """The app's :class:`UiState`, created on the first UI request (in the event loop: no race)."""
    state: UiState | None = getattr(request.app.state, "ui", None)
    if state is None:
        state = request.app.state.ui = UiState(service)
    return state


UiDep = Annotated[UiState, Depends(ui_state)]


@cache
def _page() -> str:
    return (files("replayrec_serving") / "ui" / "index.html").read_text(encoding="utf-8")


def static_files() -> StaticFiles:
    """The page's script and style sheet (package data ``replayrec_serving/ui``), mounted at ``/ui``."""
    return StaticFiles(packages=[("replayrec_serving", "ui")])


@router.get("/ui", response_class=HTMLResponse, include_in_schema=False)
@router.get("/ui/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    """The dashboard: the replay's time slider and controls, a user's events, recommendations and interest,
    the system panel. Admin controls read the token from ``#token=…`` or the page's password field."""
    headers = {
        "Content-Security-Policy": _CSP,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(_page(), headers=headers)


@router.get("/v1/users", response_model=UsersResponse)
async def users(
    service: ServiceDep,
    prefix: Annotated[str, Query(pattern=USER_PREFIX, description="user ids starting with this")] = "",
    limit: Annotated[int, Query(ge=1, le=100, description="at most this many")] = 20,
) -> dict[str, Any]:
    """Users with an online profile whose id starts with ``prefix`` (a bounded scan of the store)."""
    try:
        return await anyio.to_thread.run_sync(find_users, service, prefix, limit)
    except redis.RedisError as exc:
        raise HTTPException(503, f"Redis holds the profiles and does not answer: {exc}",
                            headers={"Retry-After": "5"}) from None  # fmt: skip


@router.get("/v1/users/{user_id}", response_model=UserProfileResponse)
async def user(
    service: ServiceDep,
    ui: UiDep,
    user_id: UserId,
    events: Annotated[int, Query(ge=1, le=50, description="newest events to list")] = 20,
) -> dict[str, Any]:
    """The user's online profile as of the replay clock: the newest events with titles, the interest over
    every item group (labelled), the version. An unknown user gets an empty profile (version 0)."""
    return await anyio.to_thread.run_sync(user_view, service, ui, user_id, events, limiter=ui.limiter)


@router.get("/v1/system", response_model=SystemResponse)
async def system(service: ServiceDep, ui: UiDep) -> dict[str, Any]:
    """Freshness (event time → applied), QPS and p50 / p99 over about 15 s, the arm split, model versions,
    the replay clock and the dataset's timeline."""
    return await anyio.to_thread.run_sync(system_view, service, ui, limiter=ui.limiter)


# not in the OpenAPI document: a stream of up to ten minutes is no request/response operation (and a fuzzer
# would wait for it); docs/serving.md describes it
@router.get("/v1/users/{user_id}/live", include_in_schema=False)
async def live(
    service: ServiceDep,
    ui: UiDep,
    user_id: UserId,
    lifetime_s: Annotated[float, Query(ge=1, le=600, description="close after this long")] = 600,
) -> StreamingResponse:
    """Server-sent events: ``change`` at once and whenever the user's profile version or the replay clock
    moves, ``bye`` after ``lifetime_s`` (then the stream ends; EventSource reconnects)."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        live_events(service, ui, user_id, lifetime_s), media_type="text/event-stream", headers=headers
    )
