"""``GET /v1/recommendations/{user_id}``."""

from __future__ import annotations

import re
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, HTTPException, Path, Query, Request

from replayrec_serving._deps import ServiceDep, SettingsDep, admin, bearer
from replayrec_serving._schemas import ITEM_ID, USER_ID, RecommendationsResponse
from replayrec_serving._service import UnknownArmError

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["recommendations"])


def _history(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    items = [h for h in raw.split(",") if h]
    if len(items) > 200:
        raise HTTPException(422, f"history: at most 200 item ids, got {len(items)}")
    bad = [h for h in items if not re.match(ITEM_ID, h)]
    if bad:
        raise HTTPException(422, f"history: {bad[0][:40]!r} is not an item id (letters, digits, _ . : @ -)")
    return items


@router.get(
    "/recommendations/{user_id}", response_model=RecommendationsResponse, response_model_exclude_none=True
)
async def recommendations(
    request: Request,
    service: ServiceDep,
    settings: SettingsDep,
    user_id: Annotated[str, Path(pattern=USER_ID, description="the shop's user id")],
    k: Annotated[int, Query(ge=1, le=100, description="list length")] = 10,
    explain: Annotated[bool, Query(description="each stage's score and the reasons")] = False,
    history: Annotated[
        str | None,
        Query(
            max_length=8192,
            description="the user's recent item ids, oldest first, comma-separated: used "
            "only when the online profile cannot be read",
        ),
    ] = None,
    cache_control: Annotated[str | None, Header(description="no-cache: skip the result cache")] = None,
    arm: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
            description="admin only: answer from this arm (prod, canary, ab:<arm>, popularity) instead of "
            "the user's route — replay evaluation and debugging; such an answer is not counted as shown",
        ),
    ] = None,
) -> dict[str, Any]:
    """The user's top ``k`` now: the online profile (history, exclusions) through the cascade of the arm the
    user is routed to. Users without events get recent popularity (``cold_start``), never an error."""
    hist = _history(history)
    use_cache = "no-cache" not in (cache_control or "").lower()
    if arm is not None:
        admin(await bearer(request), settings)
    # a few cascades at a time per worker: more threads would only fight over the GIL (measured: 16 at once
    # gave fewer answers per second than 2); the rest wait their turn in the event loop
    try:
        return await anyio.to_thread.run_sync(
            service.recommend, user_id, k, explain, hist, use_cache, arm, limiter=service.limiter
        )
    except UnknownArmError as exc:
        raise HTTPException(422, str(exc)) from None
