"""``POST /v1/events`` (live ingest) and ``POST /v1/feedback`` (impressions and clicks)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from replayrec_serving._deps import ServiceDep, SettingsDep
from replayrec_serving._schemas import FeedbackIn

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["events"])

_EVENT_EXAMPLE = {
    "user": "A1B2C3", "item": "0316015849", "action": "purchase",
    "event_time": "2014-07-01T12:00:00Z", "rating": None,
}  # fmt: skip


@router.post(
    "/events",
    status_code=202,
    responses={
        202: {"description": "every valid event acknowledged by the broker; refusals listed"},
        422: {"description": "no valid event (or a malformed body)"},
        503: {"description": "the broker cannot take events now: retry (Retry-After); `failed` lists them"},
    },
)
async def post_events(
    service: ServiceDep,
    settings: SettingsDep,
    body: Annotated[
        Any,
        Body(
            description="one event object or a list of them (schema: docs/event-schema.json; event_id and "
            "source are filled in when absent)",
            examples=[_EVENT_EXAMPLE],
        ),
    ],
) -> JSONResponse:
    """Validate and produce behaviour events to the events topic (partitioned by user). Invalid events go to
    the dead-letter topic with their reason; the answer lists them."""
    events = body if isinstance(body, list) else [body]
    if not events:
        raise HTTPException(422, "an empty batch: send one event or a list of events")
    if len(events) > settings.max_batch:
        raise HTTPException(422, f"a batch holds at most {settings.max_batch} events, got {len(events)}")
    if not all(isinstance(e, dict) for e in events):
        raise HTTPException(422, "each event must be a JSON object")
    out = await run_in_threadpool(service.ingest, events)
    headers = {"Retry-After": str(out.retry_after_s)} if out.retry_after_s else None
    return JSONResponse(out.body, status_code=out.status, headers=headers)


@router.post("/feedback", status_code=202)
async def post_feedback(feedback: FeedbackIn, service: ServiceDep) -> dict[str, Any]:
    """What the shop showed of a list (impressions) and what was clicked, counted per arm (CTR)."""
    if feedback.arm not in service.known_arms():
        raise HTTPException(
            422, f"arm {feedback.arm!r} is not served here; one of {sorted(service.known_arms())}"
        )
    extra = set(feedback.clicks) - set(feedback.impressions)
    if extra:
        raise HTTPException(422, f"clicks must be among the impressions; {sorted(extra)[:3]} are not")
    return await run_in_threadpool(service.feedback, feedback.arm, feedback.impressions, feedback.clicks)
