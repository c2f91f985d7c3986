"""The replay controller: publishes a :class:`Schedule` in order, at a speed, with pause / resume / seek /
speed commands arriving on the control topic, and the clock published after every change.

Exactly-once towards the log: event ids are deterministic (``<dataset>:<seq>``); records carry no headers
(they cost a fifth of the producer's time). At start the controller reads, per partition, the last replayed
sequence number of its dataset back from the log; a partition is always a prefix of the schedule's events
for it (one producer, idempotent, ordered), so everything up to that number is on the log and is not sent
again. Forward seeks are recorded in the state file, so a restarted controller does not send what was
skipped either.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from kafka import KafkaConsumer
from kafka.errors import KafkaError, KafkaTimeoutError

from replayrec.bus._clock import RedisStateStore, ReplayClock, ReplayState, format_speed, parse_speed
from replayrec.bus._kafka import (
    BusConfig,
    BusUnavailableError,
    abandon_producer,
    broker_reachable,
    ensure_topics,
    high_watermarks,
    make_producer,
    make_reader,
    read_range,
    topic_id,
)
from replayrec.bus._metrics import BusMetrics
from replayrec.bus._publish import EventPublisher
from replayrec.bus._schedule import Schedule
from replayrec.bus._schema import InvalidEventError, decode_event
from replayrec.runtime import write_json_atomic

__all__ = ["COMMANDS", "ReplayController", "new_command", "replayed_seqs"]

log = logging.getLogger("replayrec.bus")

COMMANDS = ("pause", "resume", "seek", "speed", "stop")
#: events produced between two flushes (and commands checked)
CHUNK = 5000
#: consecutive refusals of one chunk before the controller gives up
MAX_RECOVERIES = 20
#: how long a broker that still accepts connections may take to acknowledge a chunk
SLOW_BROKER_S = 30.0


def replayed_seqs(
    cfg: BusConfig, dataset: str, since: int = 0, window: int = 5000, timeout_s: float = 30.0
) -> set[int]:
    """The sequence numbers ``>= since`` of ``dataset``'s replayed events (ids ``<dataset>:<seq>``) on the
    events topic: each partition is read back from its end in windows until a window reaches an event of
    the dataset before ``since`` (a replay moves forward, so nothing of the range lies further back) or the
    partition's start."""
    consumer = make_reader(cfg)
    prefix = f"{dataset}:"
    found: set[int] = set()
    try:
        ends = high_watermarks(consumer, cfg.events_topic, timeout_s)
        for part, end in ends.items():
            hi = end
            while hi > 0:
                lo = max(0, hi - window)
                earlier = False
                for batch in read_range(consumer, cfg.events_topic, {part: lo}, {part: hi}, timeout_s):
                    for m in batch:
                        q = _replay_seq(m.value, prefix)
                        if q >= since:
                            found.add(q)
                        elif q >= 0:
                            earlier = True
                if earlier:
                    break
                hi = lo
        return found
    finally:
        consumer.close()


def _replay_seq(value: bytes | None, prefix: str) -> int:
    """The sequence number of a replayed event of the dataset with id ``prefix<seq>``; -1 for anything else
    (live events, other datasets, records that do not decode)."""
    try:
        ev = decode_event(value)
    except InvalidEventError:
        return -1
    if ev.source != "replay" or not ev.event_id.startswith(prefix):
        return -1
    tail = ev.event_id[len(prefix) :]
    return int(tail) if tail.isdigit() else -1


class _Control:
    """The control topic: commands in, states out (one partition, read from where it was at start)."""

    def __init__(self, cfg: BusConfig) -> None:
        self.cfg = cfg
        self.consumer: KafkaConsumer = make_reader(cfg)
        high_watermarks(self.consumer, cfg.control_topic, 10.0)  # leaves it assigned at the end

    def commands(self, wait_s: float) -> list[dict[str, Any]]:
        try:
            polled = self.consumer.poll(timeout_ms=max(0, int(wait_s * 1000)), max_records=100)
        except KafkaError:
            time.sleep(wait_s)
            return []
        out = []
        for records in polled.values():
            for r in records:
                try:
                    msg = json.loads(r.value)
                except (TypeError, ValueError):
                    continue
                if isinstance(msg, dict) and msg.get("type") == "command":
                    out.append(msg)
        return out

    def close(self) -> None:
        self.consumer.close()


class ReplayController:
    """Runs one replay to its end (or until stopped). Not thread-safe; one per process."""

    def __init__(
        self,
        cfg: BusConfig,
        schedule: Schedule,
        speed: float,
        *,
        state_path: Path,
        store: RedisStateStore | None = None,
        metrics: BusMetrics | None = None,
        chunk: int = CHUNK,
        resume: bool = True,
    ) -> None:
        self.cfg = cfg
        self.s = schedule
        self.metrics = metrics or BusMetrics()
        self.store = store
        self.state_path = state_path
        self.chunk = chunk
        self.sent = np.zeros(len(schedule), dtype=bool)  # on the log (or skipped): never sent again
        self.skipped_mask = np.zeros(len(schedule), dtype=bool)
        self.skips: list[tuple[int, int]] = []  # seq ranges [a, b) jumped over by forward seeks
        self.published = self.skipped = self.already = self.outages = 0
        self.status = "starting"
        self.error: str | None = None
        self.acks: list[str] = []
        self.stop_requested = threading.Event()
        self._last_state = 0.0
        self._on_state: Callable[[ReplayState], None] | None = None
        self._outage_since: float | None = None
        saved = self._load_state() if resume else None
        self._mark_logged(saved)
        start_clock = self._start_clock(saved)
        self.clock = ReplayClock(start_clock, speed)
        self.cursor = int(np.argmin(self.sent)) if not self.sent.all() else len(schedule)
        self.publisher = EventPublisher(cfg, self.metrics, make_producer(cfg))
        self._topic_id = topic_id(cfg, cfg.events_topic)
        self.control = _Control(cfg)

    # -- start-up: what is already on the log --------------------------------------------------------
    def _load_state(self) -> dict[str, Any] | None:
        try:
            saved: dict[str, Any] = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        same = (saved.get("dataset"), saved.get("range_from"), saved.get("range_until")) == (
            self.s.dataset, self.s.range_from, self.s.range_until,
        )  # fmt: skip
        # a finished replay, or one of another range, says nothing about this one
        return saved if same and saved.get("status") != "finished" else None

    def _mark_logged(self, saved: dict[str, Any] | None) -> None:
        self._mark_from_log()
        self.already = int(self.sent.sum())
        for a, b in (saved or {}).get("skips", []):
            mask = (self.s.seq >= a) & (self.s.seq < b) & ~self.sent
            self.skipped += int(mask.sum())
            self.sent |= mask
            self.skipped_mask |= mask
            self.skips.append((int(a), int(b)))
        if self.already:
            log.info("%d events of this range are already on the log; they are not sent again", self.already)

    def _start_clock(self, saved: dict[str, Any] | None) -> float:
        first_unsent = float(self.s.times[int(np.argmin(self.sent))]) if not self.sent.all() else None
        start = (
            self.s.range_from
            if self.s.range_from is not None
            else (float(self.s.times[0]) if len(self.s) else time.time())
        )
        if saved and saved.get("clock") is not None:
            start = max(start, float(saved["clock"]))
        if first_unsent is not None and self.already and not saved:
            start = max(start, first_unsent)
        return start

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, on_state: Callable[[ReplayState], None] | None = None) -> ReplayState:
        """Publish until the range is done or a stop is requested (``stop`` command or
        :attr:`stop_requested`); ``on_state`` sees every published state."""
        self._on_state = on_state
        self.clock.set(self.clock.now())  # set-up time (log scan, connections) is not replay time
        self.status = "running"
        self._publish_state(force=True)
        try:
            while not self.stop_requested.is_set():
                if self.cursor >= len(self.s):
                    self.status = "finished"
                    break
                wait = self._step()
                for cmd in self.control.commands(wait):
                    self._apply(cmd)
                self._publish_state()
        except _InterruptedError:
            pass
        except Exception as exc:
            self.status = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if self.status not in ("finished", "failed"):
                self.status = "stopped"
            self._close()
        return self.state()

    def _step(self) -> float:
        """Send what is due; the seconds to wait before the next step."""
        if self.clock.paused:
            self.status = "paused"
            return 0.1
        n = len(self.s)
        if math.isinf(self.clock.speed):
            hi = min(self.cursor + self.chunk, n)
        else:
            now = self.clock.now()
            due = self.cursor + int(np.searchsorted(self.s.times[self.cursor :], now, side="right"))
            hi = min(due, self.cursor + self.chunk)
        if hi > self.cursor:
            try:
                self._send(self.cursor, hi)
            except _LogResetError:
                # a restarted broker came back empty: send everything due again, in order
                self.cursor = int(np.argmin(self.sent)) if not self.sent.all() else len(self.s)
                return 0.0
            if math.isinf(self.clock.speed):
                self.clock.advance_to(float(self.s.times[hi - 1]))
            self.cursor = hi
            self.status = "running"
            return 0.0
        nxt = float(self.s.times[self.cursor])
        now = self.clock.now()
        self.status = "waiting" if nxt - now > 60 * self.clock.speed else "running"
        return max(0.0, min(0.05, (nxt - now) / self.clock.speed))

    def _send(self, lo: int, hi: int) -> None:
        """Produce the unsent events of ``[lo, hi)`` and wait until the broker has them all.

        After a broker outage or refused events nothing the old producer still held is trusted: it is
        abandoned, a new one is made once the broker answers, and the log says, per partition, what arrived
        (a prefix: one ordered producer per partition); the rest is sent again in order."""
        s = self.s
        parts = s.partitions
        for attempt in range(MAX_RECOVERIES + 1):
            todo = np.flatnonzero(~self.sent[lo:hi]) + lo
            if not todo.size:
                return
            send = self.publisher.send_encoded  # a new publisher after a recovery
            rows = todo.tolist()
            users = s.users
            try:
                futures = [
                    send(users[i], value, (), p)
                    for i, value, p in zip(rows, s.encode_many(rows), parts[todo].tolist(), strict=True)
                ]
            except KafkaError as exc:  # e.g. metadata unavailable: treat as an outage
                log.warning("producing failed (%s)", exc)
                futures = []
                abandon_producer(self.publisher.producer)
                self._recover()
                continue
            if not self._await():
                self._recover()
                continue
            ok = np.fromiter((not f.failed() for f in futures), dtype=bool, count=len(futures))
            self.sent[todo[ok]] = True
            self.published += int(ok.sum())
            self.metrics.record_produced(int(ok.sum()), "replay")
            if ok.all():
                return
            first = next(f for f in futures if f.failed())
            log.warning(
                "%d events refused by the broker (%s); checking the log and re-sending the missing ones "
                "(attempt %d)", int((~ok).sum()), first.exception, attempt + 1,
            )  # fmt: skip
            self._recover()
        raise BusUnavailableError(f"the broker kept refusing events after {MAX_RECOVERIES} attempts")

    def _await(self) -> bool:
        """True once the broker has taken everything produced. False after an outage (the broker stopped
        accepting connections): the outage is reported (state, metric, log) and the producer abandoned
        with whatever it still held. A broker that answers but is slow is waited for."""
        slow_s = 0.0
        while True:
            try:
                self.publisher.producer.flush(timeout=2.0)
                return True
            except KafkaTimeoutError:
                if self.stop_requested.is_set():
                    raise _InterruptedError from None
                if broker_reachable(self.cfg) and slow_s < SLOW_BROKER_S:
                    slow_s += 2.0
                    continue
            self.outages += 1
            self.metrics.outages.inc()
            self._outage_since = time.monotonic()
            log.warning("broker %s is not taking events; retrying", self.cfg.bootstrap_servers)
            self.status = "broker-unavailable"
            self._publish_state(force=True, to_log=False)
            abandon_producer(self.publisher.producer)  # drops what it still holds
            return False

    def _recover(self) -> None:
        """A fresh producer once the broker answers again, then the log decides what was sent. When the
        events topic had to be created again (a memory broker restarted empty), everything sent so far is
        gone with it (the topic has a new id) and is sent again: :class:`_LogResetError` makes the loop start
        over from the first event."""
        abandon_producer(self.publisher.producer)
        delay = 0.2
        while True:
            if self.stop_requested.is_set():
                raise _InterruptedError
            try:
                ensure_topics(self.cfg, timeout_s=3.0)
                self.publisher = EventPublisher(self.cfg, self.metrics, make_producer(self.cfg))
                now_id = topic_id(self.cfg, self.cfg.events_topic)
                reset = now_id != self._topic_id
                self._topic_id = now_id
                if reset:
                    self.sent[:] = self.skipped_mask
                    self.already = 0
                    log.warning(
                        "the events topic is a new one (the broker lost its log): re-sending the replay"
                    )
                else:
                    before = int(self.sent.sum())
                    self._mark_from_log()
                    found = int(self.sent.sum()) - before
                    self.published += found
                    self.metrics.record_produced(found, "replay")
                break
            except (BusUnavailableError, KafkaError) as exc:
                log.info("broker not back yet (%s)", exc)
                self.status = "broker-unavailable"
                self._publish_state(to_log=False)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        if self._outage_since is not None:
            log.warning("broker is back after %.1f s", time.monotonic() - self._outage_since)
            self._outage_since = None
        self.status = "running"
        if reset:
            raise _LogResetError

    def _mark_from_log(self) -> None:
        since = int(self.s.seq[0]) if len(self.s) else 0
        found = replayed_seqs(self.cfg, self.s.dataset, since)
        if found:
            self.sent |= np.isin(self.s.seq, np.fromiter(found, dtype=np.int64, count=len(found)))

    def _apply(self, cmd: dict[str, Any]) -> None:
        name, value, cid = cmd.get("command"), cmd.get("value"), str(cmd.get("id", ""))
        try:
            if name == "pause":
                self.clock.pause()
                self.status = "paused"
            elif name == "resume":
                self.clock.resume()
                self.status = "running"
            elif name == "speed":
                self.clock.set_speed(parse_speed(value if isinstance(value, str | float | int) else ""))
            elif name == "seek":
                when = float(value)  # type: ignore[arg-type]
                if not math.isfinite(when):
                    raise ValueError(f"seek to {value!r}: not a time")
                self._seek(when)
            elif name == "stop":
                self.stop_requested.set()
            else:
                raise ValueError(f"unknown command {name!r}")
            self.error = None
        except (TypeError, ValueError) as exc:
            self.error = f"{name}: {exc}"
        self.acks = ([*self.acks, cid] if cid else self.acks)[-20:]
        log.info("command %s %s", name, value if value is not None else "")
        self._publish_state(force=True)

    def _seek(self, when: float) -> None:
        """Forward: skip the events before ``when`` (never sent); backward: only the clock moves (what was
        published stays published; nothing is sent until the clock passes the next unsent event)."""
        if self.cursor < len(self.s) and when > float(self.s.times[self.cursor]):
            hi = self.cursor + int(np.searchsorted(self.s.times[self.cursor :], when, side="left"))
            if hi > self.cursor:
                jumped = ~self.sent[self.cursor : hi]
                self.skipped += int(jumped.sum())
                a = int(self.s.seq[self.cursor])
                b = int(self.s.seq[hi]) if hi < len(self.s) else int(self.s.seq[-1]) + 1
                self.skips.append((a, b))
                self.skipped_mask[self.cursor : hi] |= jumped
                self.sent[self.cursor : hi] = True
                self.cursor = hi
        self.clock.set(when)
        self._save_state()

    # -- state ----------------------------------------------------------------------------------------
    def state(self) -> ReplayState:
        nxt = float(self.s.times[self.cursor]) if self.cursor < len(self.s) else None
        lag = 0.0
        speed = self.clock.speed
        now = self.clock.now()
        if nxt is not None and not math.isinf(speed) and not self.clock.paused and now > nxt:
            lag = (now - nxt) / speed
        return ReplayState(
            dataset=self.s.dataset,
            status=self.status,
            clock=now,
            speed=format_speed(speed),
            updated_at=time.time(),
            clock_running=not self.clock.paused and self.status not in ("finished", "stopped", "failed"),
            position=self.cursor,
            published=self.published,
            skipped=self.skipped,
            already=self.already,
            total=len(self.s),
            range_from=self.s.range_from,
            range_until=self.s.range_until,
            next_event_time=nxt,
            lag_s=round(lag, 3),
            outages=self.outages,
            pid=os.getpid(),
            ack=list(self.acks),
            error=self.error,
        )

    def _publish_state(self, force: bool = False, to_log: bool = True) -> None:
        t = time.monotonic()
        if not force and t - self._last_state < 0.2:
            return
        self._last_state = t
        st = self.state()
        m = self.metrics
        m.clock.set(st.clock)
        m.lag.set(st.lag_s)
        m.speed.set(0.0 if st.speed == "max" else float(st.speed))
        m.position.set(st.position)
        m.total.set(st.total)
        m.paused.set(1.0 if self.clock.paused else 0.0)
        if self.store is not None:
            self.store.publish(st)
        if to_log and self.status != "broker-unavailable":
            payload = json.dumps({"type": "state", **st.model_dump(mode="json")}).encode()
            with contextlib.suppress(KafkaError):
                self.publisher.producer.send(self.cfg.control_topic, value=payload, partition=0)
        self._save_state(st)
        if self._on_state is not None:
            self._on_state(st)

    def _save_state(self, st: ReplayState | None = None) -> None:
        st = st or self.state()
        write_json_atomic(self.state_path, {**st.model_dump(mode="json"), "skips": self.skips})

    def _close(self) -> None:
        try:
            self._publish_state(force=True)
            self.publisher.producer.flush(timeout=5.0)
        except KafkaError:
            pass
        finally:
            abandon_producer(self.publisher.producer)
            self.control.close()


class _InterruptedError(Exception):
    """Stop was requested while the broker was away."""


class _LogResetError(Exception):
    """The events topic was created again: what was sent is gone."""


def new_command(command: str, value: Any = None) -> dict[str, Any]:
    return {
        "type": "command",
        "id": uuid.uuid4().hex,
        "command": command,
        "value": value,
        "sent_at": time.time(),
    }
