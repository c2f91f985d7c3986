"""The online feature store: the same features, kept in Redis by the stream job and read at request time.

Key layout (``P`` = ``<namespace>:f:``; users by the shop's id, items by dense id):

=====================  =======  ===========================================================================
``P meta``             hash     epoch, status (ready | rebuilding), offsets (the log position applied, JSON),
                                wm (per-partition watermarks), batch, applied, dead, catalog, spec, updated_ms
``P u:<user>``         hash     v (version: events applied), first, last, a:<action> counts
``P ur:<user>``        list     the newest ``recent_events`` events, ``item|time_ms|action``, in log order
``P ux:<user>``        set      every item the user has an event with (the exclusions)
``P ug:<user>``        hash     ``<group>:<day>`` → events (the interest vector's integer buckets)
``P i:<item>``         hash     n, first, last, ``d:<day>`` → events
``P pop:<day>``        zset     item → events that day (the popularity fallback)
``P g``                hash     n, ``a:<action>``, ``d:<day>`` (global counters)
=====================  =======  ===========================================================================

A batch is applied by one Lua script, atomically, and only if the stored epoch and log position are the ones
the writer read: a batch replayed after a crash finds the position moved and changes nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import redis

from replayrec.errors import ConfigError, ReplayrecError
from replayrec.features._batch import Payload, canonical_offsets, parse_offsets
from replayrec.features._spec import (
    DAY_MS,
    FeatureSpec,
    ItemStats,
    UserProfile,
    interest_vector,
    sort_recent,
    window_start_ms,
)

__all__ = [
    "ApplyOutcome",
    "OnlineFeatures",
    "StoreMeta",
    "StoreNotReadyError",
    "feature_prefix",
    "view_namespace",
]

I64 = npt.NDArray[np.int64]

_APPLY = r"""
local meta = KEYS[1]
local p = ARGV[1]
local cur = redis.call('HMGET', meta, 'epoch', 'offsets')
if not cur[1] then return 'lost' end
if cur[1] ~= ARGV[2] then return 'epoch' end
if (cur[2] or '') ~= ARGV[3] then return 'moved' end
local m = cjson.decode(ARGV[4])
local d = cjson.decode(ARGV[5])
local cap = tonumber(ARGV[6])
local function minmax(h, first, last)
  local fl = redis.call('HMGET', h, 'first', 'last')
  if (not fl[1]) or tonumber(fl[1]) > tonumber(first) then redis.call('HSET', h, 'first', first) end
  if (not fl[2]) or tonumber(fl[2]) < tonumber(last) then redis.call('HSET', h, 'last', last) end
end
local function chunks(cmd, key, list)
  for i = 1, #list, 500 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 499, #list)))
  end
end
for _, u in ipairs(d.u) do
  local id = u[1]
  local h = p .. 'u:' .. id
  redis.call('HINCRBY', h, 'v', u[2])
  minmax(h, u[3], u[4])
  chunks('RPUSH', p .. 'ur:' .. id, u[5])
  redis.call('LTRIM', p .. 'ur:' .. id, -cap, -1)
  chunks('SADD', p .. 'ux:' .. id, u[6])
  local g = p .. 'ug:' .. id
  for j = 1, #u[7], 2 do redis.call('HINCRBY', g, u[7][j], u[7][j + 1]) end
  for j = 1, #u[8], 2 do redis.call('HINCRBY', h, 'a:' .. u[8][j], u[8][j + 1]) end
end
for _, it in ipairs(d.i) do
  local h = p .. 'i:' .. it[1]
  redis.call('HINCRBY', h, 'n', it[2])
  minmax(h, it[3], it[4])
  for j = 1, #it[5], 2 do redis.call('HINCRBY', h, 'd:' .. it[5][j], it[5][j + 1]) end
end
for _, x in ipairs(d.p) do redis.call('ZINCRBY', p .. 'pop:' .. x[1], x[3], x[2]) end
for _, x in ipairs(d.g) do redis.call('HINCRBY', p .. 'g', x[1], x[2]) end
redis.call('HSET', meta, 'offsets', m.offsets, 'wm', m.wm, 'batch', m.batch, 'updated_ms', m.updated_ms)
redis.call('HINCRBY', meta, 'applied', m.applied)
redis.call('HINCRBY', meta, 'dead', m.dead)
if m.ready then redis.call('HSET', meta, 'status', 'ready') end
return 'ok'
"""


# item features in one round trip: per item total, events on days [lo, hi], first, last (the store's status
# first, so a missing or rebuilding store is refused like the other reads)
_ITEM_FEATURES = r"""
local out = {redis.call('HGET', KEYS[1], 'epoch') or false, redis.call('HGET', KEYS[1], 'status') or false}
local p, lo, hi = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 4, #ARGV do
  local h = p .. 'i:' .. ARGV[i]
  local v = redis.call('HMGET', h, 'n', 'first', 'last')
  local w = 0
  for d = lo, hi do w = w + (tonumber(redis.call('HGET', h, 'd:' .. d)) or 0) end
  out[#out + 1] = tonumber(v[1]) or 0
  out[#out + 1] = w
  out[#out + 1] = tonumber(v[2]) or -1
  out[#out + 1] = tonumber(v[3]) or -1
end
return out
"""


class StoreNotReadyError(ReplayrecError):
    """The online store is missing (Redis lost it) or being rebuilt from the log: its profiles would be
    partial. ``status`` is ``missing`` or ``rebuilding``; callers fall back (e.g. to popularity)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def feature_prefix(namespace: str) -> str:
    return f"{namespace}:f:"


def view_namespace(namespace: str, view: str) -> str:
    """The namespace of the snapshot ``view`` of ``namespace``'s store (:meth:`OnlineFeatures.copy_to`)."""
    return f"{namespace}:view:{view}"


@dataclass(frozen=True)
class StoreMeta:
    epoch: str
    status: str
    offsets: dict[int, int]
    watermarks: dict[int, int]
    batch: int
    applied: int
    dead: int
    catalog: str
    spec: str
    updated_ms: int
    rebuild_to: dict[int, int]
    offsets_text: str
    watermarks_text: str

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def as_dict(self) -> dict[str, Any]:
        keys = ("epoch", "status", "offsets", "batch", "applied", "dead", "catalog", "updated_ms")
        return {**{k: getattr(self, k) for k in keys}, "rebuild_to": self.rebuild_to or None}


@dataclass(frozen=True)
class ApplyOutcome:
    status: str  # ok | lost | epoch | moved
    seconds: float


class OnlineFeatures:
    """The online store of one namespace: the stream job writes it, serving reads it."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        groups: npt.ArrayLike,
        spec: FeatureSpec | None = None,
    ) -> None:
        self.r: Any = client  # redis-py's reply types depend on decode_responses; this store reads bytes
        self.prefix = feature_prefix(namespace)
        self.meta_key = self.prefix + "meta"
        self.spec = spec or FeatureSpec()
        self.groups = np.asarray(groups, dtype=np.int64)
        self.n_groups = int(self.groups.max()) + 1 if self.groups.size else 0
        self._apply = self.r.register_script(_APPLY)
        self._item_features = self.r.register_script(_ITEM_FEATURES)

    @classmethod
    def connect(
        cls, url: str, namespace: str, groups: npt.ArrayLike, spec: FeatureSpec | None = None
    ) -> OnlineFeatures:
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=3)
        return cls(client, namespace, groups, spec)

    # -- the store's state --------------------------------------------------------------------------
    def meta(self) -> StoreMeta | None:
        raw = self.r.hgetall(self.meta_key)
        if not raw or b"epoch" not in raw:
            return None
        f = {k.decode(): v.decode() for k, v in raw.items()}
        return StoreMeta(
            epoch=f["epoch"],
            status=f.get("status", "ready"),
            offsets=parse_offsets(f.get("offsets")),
            watermarks=parse_offsets(f.get("wm")),
            batch=int(f.get("batch", -1)),
            applied=int(f.get("applied", 0)),
            dead=int(f.get("dead", 0)),
            catalog=f.get("catalog", ""),
            spec=f.get("spec", ""),
            updated_ms=int(f.get("updated_ms", 0)),
            rebuild_to=parse_offsets(f.get("rebuild_to")),
            offsets_text=f.get("offsets", "{}"),
            watermarks_text=f.get("wm", "{}"),
        )

    def initialise(self, catalog: str, *, rebuild_to: dict[int, int] | None = None) -> StoreMeta:
        """A new epoch at log position zero, after clearing whatever the namespace still holds (so a store
        that lost only part of its keys is rebuilt from nothing, never on top of leftovers)."""
        self.clear()
        fields = {
            "epoch": uuid.uuid4().hex,
            "status": "rebuilding" if rebuild_to else "ready",
            "offsets": "{}",
            "wm": "{}",
            "batch": -1,
            "applied": 0,
            "dead": 0,
            "catalog": catalog,
            "spec": self.spec.fingerprint(),
            "updated_ms": int(time.time() * 1000),
            "rebuild_to": canonical_offsets(rebuild_to or {}),
        }
        self.r.hset(self.meta_key, mapping=fields)
        meta = self.meta()
        if meta is None:  # pragma: no cover - Redis lost it again at once
            raise ConfigError("the online store could not be initialised")
        return meta

    def check_compatible(self, meta: StoreMeta, catalog: str) -> None:
        if meta.catalog != catalog:
            raise ConfigError(
                f"the online store {self.prefix}* was built for catalogue {meta.catalog}, this job's is "
                f"{catalog}: use another namespace or `replayrec stream reset`"
            )
        if meta.spec != self.spec.fingerprint():
            raise ConfigError(
                f"the online store was built with features ({meta.spec}), this job has "
                f"({self.spec.fingerprint()}): `replayrec stream reset` rebuilds it"
            )

    def clear(self) -> int:
        """Delete every key of this namespace's store."""
        n = 0
        batch: list[bytes] = []
        for key in self.r.scan_iter(match=self.prefix + "*", count=2000):
            batch.append(key)
            if len(batch) >= 2000:
                n += int(self.r.unlink(*batch))
                batch = []
        if batch:
            n += int(self.r.unlink(*batch))
        return n

    def apply(
        self,
        meta: StoreMeta,
        payload: Payload,
        offsets: dict[int, int],
        watermarks: dict[int, int],
        *,
        batch: int,
        dead: int,
    ) -> ApplyOutcome:
        """Apply one batch atomically, moving the log position from ``meta``'s to ``offsets``."""
        t0 = time.perf_counter()
        ready = bool(meta.rebuild_to) and all(offsets.get(p, 0) >= o for p, o in meta.rebuild_to.items())
        update = {
            "offsets": canonical_offsets(offsets), "wm": canonical_offsets(watermarks), "batch": int(batch),
            "updated_ms": int(time.time() * 1000), "applied": payload.events, "dead": int(dead),
            "ready": ready or meta.status == "ready",
        }  # fmt: skip
        status = self._apply(
            keys=[self.meta_key],
            args=[self.prefix, meta.epoch, meta.offsets_text, json.dumps(update), payload.to_json(),
                  self.spec.recent_events],
        )  # fmt: skip
        return ApplyOutcome(
            status.decode() if isinstance(status, bytes) else str(status), time.perf_counter() - t0
        )

    # -- reads --------------------------------------------------------------------------------------
    def profiles(self, users: Sequence[str], at_ms: int | None = None) -> list[UserProfile]:
        """Profiles of ``users`` (empty ones for users without events); the interest as of ``at_ms`` (default:
        now). Read in one transaction with the store's status, so a profile is never torn by a batch applied
        in between; :class:`StoreNotReadyError` while the store is missing or rebuilding."""
        at = int(time.time() * 1000) if at_ms is None else int(at_ms)
        pipe = self.r.pipeline(transaction=True)
        pipe.hmget(self.meta_key, "epoch", "status")
        for u in users:
            pipe.hgetall(self.prefix + "u:" + u)
            pipe.lrange(self.prefix + "ur:" + u, 0, -1)
            pipe.smembers(self.prefix + "ux:" + u)
            pipe.hgetall(self.prefix + "ug:" + u)
        (epoch, status), *res = pipe.execute()
        self._require_ready(epoch, status)
        return [self._profile(u, res[4 * i : 4 * i + 4], at) for i, u in enumerate(users)]

    def _require_ready(self, epoch: bytes | None, status: bytes | None) -> None:
        if epoch is None:
            raise StoreNotReadyError(
                "missing", f"no online store at {self.prefix}* (Redis lost it, or no job ran)"
            )
        if status != b"ready":
            raise StoreNotReadyError(
                "rebuilding", f"the online store {self.prefix}* is being rebuilt from the log"
            )

    def profile(self, user: str, at_ms: int | None = None) -> UserProfile:
        return self.profiles([user], at_ms)[0]

    def _profile(self, user: str, replies: list[Any], at: int) -> UserProfile:
        h, recent, seen, ug = replies
        parts = [r.decode().split("|") for r in recent]
        items = np.array([int(p[0]) for p in parts], dtype=np.int64)
        times = np.array([int(p[1]) for p in parts], dtype=np.int64)
        r_items, r_times, r_acts = sort_recent(items, times, [p[2] for p in parts])
        keys = [k.decode().split(":") for k in ug]
        g = np.array([int(k[0]) for k in keys], dtype=np.int64)
        d = np.array([int(k[1]) for k in keys], dtype=np.int64)
        c = np.array([int(v) for v in ug.values()], dtype=np.int64)
        counts = {k.decode()[2:]: int(v) for k, v in h.items() if k.startswith(b"a:")}
        return UserProfile(
            user=user,
            version=int(h.get(b"v", 0)),
            recent_items=r_items,
            recent_times=r_times,
            recent_actions=r_acts,
            exclude=np.array(sorted(int(x) for x in seen), dtype=np.int64),
            interest=interest_vector(g, d, c, at, self.n_groups, self.spec),
            counts=dict(sorted(counts.items())),
            first_ms=int(h[b"first"]) if b"first" in h else None,
            last_ms=int(h[b"last"]) if b"last" in h else None,
        )

    def item_stats(self, items: Iterable[int]) -> ItemStats:
        """Statistics of ``items`` as the store holds them now (one transaction; :class:`StoreNotReadyError`
        while the store is missing or rebuilding)."""
        ids = np.asarray(list(items), dtype=np.int64)
        pipe = self.r.pipeline(transaction=True)
        pipe.hmget(self.meta_key, "epoch", "status")
        for it in ids.tolist():
            pipe.hgetall(f"{self.prefix}i:{it}")
        (epoch, status), *replies = pipe.execute()
        self._require_ready(epoch, status)
        total: list[int] = []
        first: list[int] = []
        last: list[int] = []
        ptr: list[int] = [0]
        days: list[int] = []
        counts: list[int] = []
        for h in replies:
            total.append(int(h.get(b"n", 0)))
            first.append(int(h.get(b"first", -1)))
            last.append(int(h.get(b"last", -1)))
            dc = sorted((int(k[2:]), int(v)) for k, v in h.items() if k.startswith(b"d:"))
            days.extend(x for x, _ in dc)
            counts.extend(y for _, y in dc)
            ptr.append(len(days))
        return ItemStats(
            ids, *(np.asarray(x, dtype=np.int64) for x in (total, first, last, ptr, days, counts))
        )

    def item_features(self, items: Iterable[int], at_ms: int, window_days: int) -> tuple[I64, I64, I64, I64]:
        """(total, events in the ``window_days`` window as of ``at_ms``, first, last) of each item: what
        :meth:`ItemStats.window` gives, summed in Redis (one round trip, four numbers per item). Days after
        ``at_ms``'s next day are not counted (events are at most an hour ahead of the watermark)."""
        lo = window_start_ms(at_ms, window_days) // DAY_MS
        return self.item_features_between(items, lo, at_ms // DAY_MS + 1)

    def item_features_between(
        self, items: Iterable[int], lo_day: int, hi_day: int
    ) -> tuple[I64, I64, I64, I64]:
        """(total, events on days ``lo_day`` to ``hi_day``, first, last) of each item, in one round trip."""
        ids = [int(i) for i in items]
        res = self._item_features(keys=[self.meta_key], args=[self.prefix, int(lo_day), int(hi_day), *ids])
        self._require_ready(res[0] or None, res[1] or None)
        a = np.asarray(res[2:], dtype=np.int64).reshape(len(ids), 4)
        return a[:, 0].copy(), a[:, 1].copy(), a[:, 2].copy(), a[:, 3].copy()

    def global_counts(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.r.hgetall(self.prefix + "g").items()}

    def popular(self, at_ms: int, window_days: int, k: int) -> list[tuple[int, int]]:
        """The ``k`` items with most events in the window as of ``at_ms``, ties by item id."""
        lo = window_start_ms(at_ms, window_days) // 86_400_000
        keys = [f"{self.prefix}pop:{d}" for d in range(lo, at_ms // 86_400_000 + 1)]
        existing = [k for k, e in zip(keys, self._exists(keys), strict=True) if e]
        if not existing:
            return []
        pairs = self.r.zunion(existing, withscores=True)
        ranked = sorted(((int(m), int(s)) for m, s in pairs), key=lambda x: (-x[1], x[0]))
        return ranked[:k]

    def _exists(self, keys: list[str]) -> list[bool]:
        pipe = self.r.pipeline(transaction=False)
        for k in keys:
            pipe.exists(k)
        return [bool(x) for x in pipe.execute()]

    def users(self) -> list[str]:
        """Every user with a profile (a scan: tests and tools, not the request path)."""
        n = len(self.prefix) + 2
        return sorted(k.decode()[n:] for k in self.r.scan_iter(match=self.prefix + "u:*", count=5000))

    # -- snapshots ----------------------------------------------------------------------------------
    def copy_to(
        self, dest: OnlineFeatures, users: Iterable[str] | None = None, as_of_ms: int | None = None
    ) -> int:
        """Copy this store into ``dest`` (another namespace), replacing what ``dest`` held: every item, daily
        and global key, and the profiles of ``users`` (default: every user). A *snapshot*: a view that stays
        as it is while this store moves on (the nightly-batch and frozen arms of the replay evaluation);
        ``as_of_ms``, when given, is recorded as the moment it stands for (:meth:`as_of_ms`). The meta key
        is copied last, so ``dest`` reads as ready only once complete. Take it while the writer is quiet;
        otherwise it may hold part of one batch. Returns the keys copied."""
        if dest.prefix == self.prefix:
            raise ConfigError(f"a store cannot be copied onto itself ({self.prefix}*)")
        dest.clear()
        keys: list[str] = []
        if users is None:
            keys.extend(k.decode() for k in self.r.scan_iter(match=self.prefix + "u*", count=5000))
        else:
            keys.extend(f"{self.prefix}{kind}:{u}" for u in users for kind in ("u", "ur", "ux", "ug"))
        for pattern in ("i:*", "pop:*"):
            keys.extend(k.decode() for k in self.r.scan_iter(match=self.prefix + pattern, count=5000))
        keys.append(self.prefix + "g")
        n = 0
        for lo in range(0, len(keys), 2000):
            pipe = self.r.pipeline(transaction=False)
            for key in keys[lo : lo + 2000]:
                pipe.copy(key, dest.prefix + key[len(self.prefix) :], replace=True)
            n += sum(bool(x) for x in pipe.execute())
        if not self.r.copy(self.meta_key, dest.meta_key, replace=True):
            raise StoreNotReadyError(
                "missing", f"the online store {self.prefix}* has no meta: nothing copied"
            )
        if as_of_ms is not None:
            self.r.hset(dest.meta_key, "as_of_ms", int(as_of_ms))
        return n + 1

    def as_of_ms(self) -> int | None:
        """The moment a snapshot stands for (set by :meth:`copy_to`); None for a live store."""
        value = self.r.hget(self.meta_key, "as_of_ms")
        return None if value is None else int(value)
