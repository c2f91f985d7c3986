"""Admin: the A/B experiment and model reloads (bearer token); the live per-arm numbers (read-only)."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool

from replayrec.errors import ConfigError
from replayrec_serving._deps import ServiceDep, admin
from replayrec_serving._experiment import Experiment
from replayrec_serving._schemas import ArmsResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["admin"])


@router.get("/arms", response_model=ArmsResponse)
async def arms(service: ServiceDep) -> dict[str, Any]:
    """Per arm, over every worker: requests, errors, latency p50 / p99 and buckets, online HR (the next event
    in the list shown), CTR from feedback; and what this worker serves. The canary gate reads this."""
    try:
        numbers = await run_in_threadpool(service.stats.read)
    except redis.RedisError as exc:
        raise HTTPException(503, f"Redis holds the per-arm numbers and does not answer: {exc}",
                            headers={"Retry-After": "5"}) from None  # fmt: skip
    return {"arms": numbers, "serving": service.describe()}


@router.get("/admin/experiment", dependencies=[Depends(admin)])
async def get_experiment(service: ServiceDep) -> dict[str, Any]:
    exp = await _redis(service.experiments.get)
    return {"experiment": None if exp is None else exp.model_dump(mode="json"), "serving": service.describe()}


@router.put("/admin/experiment", dependencies=[Depends(admin)])
async def put_experiment(experiment: Experiment, service: ServiceDep) -> dict[str, Any]:
    """Store the experiment; every worker applies it within about a second (``experiment_poll_s`` plus the
    time to load an arm's models the first time)."""
    stored = await _redis(service.experiments.set, experiment)
    return {"experiment": stored.model_dump(mode="json")}


@router.delete("/admin/experiment", dependencies=[Depends(admin)])
async def delete_experiment(service: ServiceDep) -> dict[str, Any]:
    return {"cleared": await _redis(service.experiments.clear)}


@router.post("/admin/reload", dependencies=[Depends(admin)])
async def reload(service: ServiceDep) -> dict[str, Any]:
    """Check the registry aliases now (instead of at the next poll) and swap in what moved."""
    return await run_in_threadpool(service.reload)


async def _redis(fn: Any, *args: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args)
    except redis.RedisError as exc:
        raise HTTPException(503, f"Redis does not answer: {exc}", headers={"Retry-After": "5"}) from None
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
