"""The HTTP API's request and response bodies (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "USER_ID",
    "USER_PREFIX",
    "ArmTraffic",
    "ArmsResponse",
    "Explanation",
    "FeedbackIn",
    "Freshness",
    "InterestBar",
    "Recommendation",
    "RecommendationsResponse",
    "ReplaySeek",
    "ReplaySpeed",
    "ReplayStart",
    "ReplayView",
    "StageTrace",
    "SystemResponse",
    "Timeline",
    "Traffic",
    "UserEvent",
    "UserProfileResponse",
    "UserSummary",
    "UsersResponse",
]

#: the shop's user ids: 1–128 characters, letters, digits and ``_ . : @ -``
USER_ID = r"^[A-Za-z0-9_.:@-]{1,128}$"
ITEM_ID = r"^[A-Za-z0-9_.:@-]{1,128}$"


class Explanation(BaseModel):
    stages: dict[str, float] = Field(description="every stage's and recall channel's score")
    recall_position: int | None = Field(description="1-based place in the recall list")
    rank_position: int | None = Field(description="1-based place after the ranker")
    reasons: list[str]


class Recommendation(BaseModel):
    rank: int
    item: str = Field(description="the shop's raw item id")
    title: str
    score: float
    explanation: Explanation | None = None


class StageTrace(BaseModel):
    stage: str
    status: str = Field(description="ok | error | timeout | skipped")
    ms: float
    detail: str = ""


class RecommendationsResponse(BaseModel):
    user: str
    request_id: str = Field(description="quote it in POST /v1/feedback")
    arm: str = Field(description="the cascade that answered: prod, canary, ab:<arm> or fallback")
    versions: dict[str, str] = Field(description="model version per plugin of that arm")
    degraded: bool
    degraded_reasons: list[str]
    cold_start: bool = Field(description="no history: recent popularity answered")
    cached: bool
    as_of_ms: int = Field(description="the moment answered for (the replay clock when a replay runs)")
    profile_version: int | None
    items: list[Recommendation]
    stages: list[StageTrace] | None = None


class FeedbackIn(BaseModel):
    """Impressions and clicks on a list the service returned (CTR per arm)."""

    model_config = ConfigDict(extra="forbid")
    user: str = Field(pattern=USER_ID)
    arm: str = Field(min_length=1, max_length=64)
    request_id: str | None = Field(default=None, max_length=64)
    impressions: list[str] = Field(min_length=1, max_length=200)
    clicks: list[str] = Field(default_factory=list, max_length=200)


class ReplayStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speed: str = Field(default="86400", max_length=32, description="simulated seconds per second, or max")
    start: str | None = Field(default=None, max_length=40, description="from (date, ISO 8601, Unix s)")
    until: str | None = Field(default=None, max_length=40)
    dataset: str | None = Field(default=None, max_length=64)


class ReplaySpeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speed: str = Field(max_length=32, description="simulated seconds per second (> 0) or max")


class ReplaySeek(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(max_length=40, description="date, ISO 8601 or Unix seconds")


class ArmsResponse(BaseModel):
    arms: dict[str, dict[str, Any]] = Field(description="live numbers per arm (every worker, from Redis)")
    serving: dict[str, Any] = Field(description="what this worker serves: arms, versions, experiment")


# -- the web UI (GET /v1/users, /v1/users/{user_id}, /v1/system) ---------------------------------------------
#: a user-id prefix to search for: what a user id may hold, possibly empty
USER_PREFIX = r"^[A-Za-z0-9_.:@-]{0,128}$"


class UserSummary(BaseModel):
    user: str
    events: int = Field(description="events applied to the profile (its version)")


class UsersResponse(BaseModel):
    prefix: str
    users: list[UserSummary] = Field(description="sorted by user id")
    complete: bool = Field(description="false when the bounded scan of the store stopped before its end")


class UserEvent(BaseModel):
    item: str = Field(description="the shop's raw item id")
    title: str
    action: str
    time_ms: int = Field(description="event time (Unix ms)")
    group: int = Field(description="the item's group")


class InterestBar(BaseModel):
    group: int
    label: str = Field(description="the title of the group's most consumed item (groups are clusters)")
    weight: float = Field(description="decayed interest, summing to 1 over the groups (0 without events)")


class UserProfileResponse(BaseModel):
    user: str
    store: str = Field(description="ready | missing | rebuilding | unreachable (then the profile is empty)")
    version: int = Field(description="events applied to the profile (0: unknown user)")
    as_of_ms: int = Field(description="the moment the interest is computed for (the replay clock)")
    first_ms: int | None
    last_ms: int | None
    counts: dict[str, int] = Field(description="events per action")
    recent: list[UserEvent] = Field(description="the newest events, newest first")
    interest: list[InterestBar] = Field(description="one per item group, in group order")


class Timeline(BaseModel):
    start_ms: int = Field(description="the dataset's first event time")
    end_ms: int = Field(description="its last event time")
    events: int


class ReplayView(BaseModel):
    status: str
    speed: float | str
    clock_ms: int
    clock_running: bool
    position: int
    published: int
    total: int
    updated_ms: int


class Freshness(BaseModel):
    store: str = Field(description="ready | rebuilding | missing | unreachable")
    applied: int | None = Field(description="events the stream job applied to the store")
    dead: int | None
    batch: int | None
    newest_event_ms: int | None = Field(description="the newest event time applied (over the partitions)")
    behind_clock_s: float | None = Field(description="replay clock − newest event time applied")
    updated_ms: int | None = Field(description="wall time of the last batch applied")
    applied_ago_s: float | None
    applied_per_s: float | None = Field(description="events applied per second over the traffic window")
    job: str | None = Field(description="the stream job's state, when it runs on this machine")
    lag_events: int | None = Field(description="records on the topic the store has not applied")
    freshness_p50_ms: float | None = Field(description="produced → visible in Redis, last applied batch")
    freshness_p99_ms: float | None
    last_batch_ms: int | None


class Traffic(BaseModel):
    window_s: float | None = Field(description="the window the numbers cover (null: since the start)")
    requests: int
    qps: float | None
    p50_ms: float | None
    p99_ms: float | None
    error_rate: float


class ArmTraffic(BaseModel):
    requests: int
    share: float | None
    p99_ms: float | None
    versions: dict[str, str]


class SystemResponse(BaseModel):
    now_ms: int
    clock_ms: int = Field(description="the replay clock (the end of the data without a replay)")
    timeline: Timeline
    replay: ReplayView | None
    freshness: Freshness
    traffic: Traffic
    arms: dict[str, ArmTraffic] = Field(description="requests, share and p99 per arm over the window")
    serving: dict[str, Any] = Field(description="what this worker serves: arms, versions, experiment")
