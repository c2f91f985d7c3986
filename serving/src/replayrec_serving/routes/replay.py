"""The replay controller over HTTP (the UI's backend): status for anyone, control for admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool

from replayrec.application import ReplayRequest, replay_command, replay_start_detached, replay_status
from replayrec.bus import BusUnavailableError, ReplayNotRunningError
from replayrec.errors import ConfigError, ReplayrecError
from replayrec_serving._deps import SettingsDep, admin
from replayrec_serving._schemas import ReplaySeek, ReplaySpeed, ReplayStart

__all__ = ["router"]

router = APIRouter(prefix="/v1/replay", tags=["replay"])


async def _call(fn: Any, *args: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args)
    except ReplayNotRunningError as exc:
        raise HTTPException(409, str(exc)) from None
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    except BusUnavailableError as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None
    except ReplayrecError as exc:
        raise HTTPException(409, str(exc)) from None


def _state(result: Any) -> dict[str, Any]:
    return result.model_dump(mode="json") if hasattr(result, "model_dump") else dict(result)


@router.get("")
async def status(settings: SettingsDep) -> dict[str, Any]:
    """The replay clock and the controller's last published state."""
    return dict(await _call(replay_status, settings))


@router.post("/start", dependencies=[Depends(admin)], status_code=202)
async def start(body: ReplayStart, settings: SettingsDep) -> dict[str, Any]:
    """Start a replay controller in the background (resumes where the log ends)."""
    req = ReplayRequest(dataset=body.dataset, start=body.start, until=body.until, speed=body.speed)
    pid = await _call(replay_start_detached, settings, req)
    return {"pid": pid, **dict(await _call(replay_status, settings))}


@router.post("/pause", dependencies=[Depends(admin)])
async def pause(settings: SettingsDep) -> dict[str, Any]:
    return _state(await _call(replay_command, settings, "pause"))


@router.post("/resume", dependencies=[Depends(admin)])
async def resume(settings: SettingsDep) -> dict[str, Any]:
    return _state(await _call(replay_command, settings, "resume"))


@router.post("/stop", dependencies=[Depends(admin)])
async def stop(settings: SettingsDep) -> dict[str, Any]:
    return _state(await _call(replay_command, settings, "stop"))


@router.post("/speed", dependencies=[Depends(admin)])
async def speed(body: ReplaySpeed, settings: SettingsDep) -> dict[str, Any]:
    """Simulated seconds per wall second (or ``max``)."""
    return _state(await _call(replay_command, settings, "speed", body.speed))


@router.post("/seek", dependencies=[Depends(admin)])
async def seek(body: ReplaySeek, settings: SettingsDep) -> dict[str, Any]:
    """Move the clock (the time slider)."""
    return _state(await _call(replay_command, settings, "seek", body.to))
