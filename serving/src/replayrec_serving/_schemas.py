"""The HTTP API's request and response bodies (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "USER_ID",
    "ArmsResponse",
    "Explanation",
    "FeedbackIn",
    "Recommendation",
    "RecommendationsResponse",
    "ReplaySeek",
    "ReplaySpeed",
    "ReplayStart",
    "StageTrace",
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
