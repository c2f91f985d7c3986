"""The models the service runs: cascades whose stages are named by registry alias, loaded, warmed and swapped
in atomically when an alias moves; a version that fails to load or warm is refused and the old one serves on.

Arms: ``prod`` (the configured cascade), ``canary`` (the same cascade with every ``<plugin>@prod`` whose
``<plugin>@canary`` points elsewhere swapped for the canary version) and the arms of the A/B experiment.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from replayrec.cascade import Cascade, CascadeConfig
from replayrec.config import Settings
from replayrec.data import Dataset
from replayrec.errors import ConfigError
from replayrec.features import FeatureSpec
from replayrec.registry import REF_PATTERN, ModelRegistry, StageResolver, resolve_model, tracking_uri
from replayrec.stages import Request, StageContext
from replayrec_serving._engine import LoadedArm
from replayrec_serving._experiment import Experiment

__all__ = ["Arms", "ModelManager"]

log = logging.getLogger("replayrec.serving")


def _walk_models(node: Any, visit: Callable[[dict[str, Any]], None]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("model"), str) and "type" in node:
            visit(node)
        for v in node.values():
            _walk_models(v, visit)
    elif isinstance(node, list):
        for v in node:
            _walk_models(v, visit)


@dataclass(frozen=True)
class Arms:
    """What the service routes to now; replaced as a whole (one reference), never mutated."""

    prod: LoadedArm | None = None
    canary: LoadedArm | None = None
    experiment: Experiment | None = None
    experiment_arms: dict[str, LoadedArm] = field(default_factory=dict)
    shadow: LoadedArm | None = None

    def all(self) -> list[LoadedArm]:
        out = [a for a in (self.prod, self.canary, self.shadow) if a is not None]
        return out + list(self.experiment_arms.values())


class ModelManager:
    """Resolves aliases, builds and warms cascades, and swaps them in; one per worker process."""

    def __init__(
        self,
        settings: Settings,
        dataset: Dataset,
        layout: Mapping[str, Any],
        context: StageContext,
        *,
        registry_uri: str | None = None,
        warmup_requests: int = 20,
        canary_enabled: bool = True,
        view_context: Callable[[str], StageContext] | None = None,
    ) -> None:
        self.settings = settings
        self.dataset = dataset
        self.layout = dict(layout)
        self.context = context
        self.view_context = view_context  # the stage context of an arm reading a store view
        self.uri = registry_uri
        self.warmup_requests = warmup_requests
        self.canary_enabled = canary_enabled
        self.arms = Arms()
        self.refused: dict[str, str] = {}  # arm key -> why it was refused
        self.swaps = 0
        self._built: OrderedDict[str, LoadedArm] = OrderedDict()
        self._registry: ModelRegistry | None = None
        self._lock = threading.Lock()  # one reload at a time; readers never take it
        self.listeners: list[Callable[[str, LoadedArm | None, str], None]] = []

    # -- resolution -----------------------------------------------------------------------------------
    def registry(self) -> ModelRegistry:
        if self._registry is None:
            self._registry = ModelRegistry(tracking_uri(self.settings, self.uri))
        return self._registry

    def _version_of(self, ref: str, plugin: str) -> tuple[str, str]:
        """(artifact path, version label) of a model reference."""
        m = REF_PATTERN.match(ref)
        if m is not None and not Path(ref).exists() and m["alias"] != "latest":
            found = self.registry().by_alias(m["plugin"], m["alias"])
            if found is None:
                raise ConfigError(f"model {ref}: the registry has no such alias")
            return str(found.artifact), f"v{found.version}"
        path = resolve_model(ref, self.settings, self.dataset.name, plugin, self.uri)
        return str(path), path.name

    def resolve(self, layout: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str], str]:
        """The layout with every model reference replaced by its artifact, the versions, and a key."""
        resolved = copy.deepcopy(dict(layout))
        versions: dict[str, str] = {}

        def visit(node: dict[str, Any]) -> None:
            path, label = self._version_of(node["model"], node["type"])
            versions[node["type"]] = label
            node["model"] = path

        _walk_models(resolved, visit)
        # the versions too: two versions registered from one artifact are still two arms' worth of numbers
        blob = json.dumps([resolved, versions], sort_keys=True, default=str).encode()
        return resolved, versions, hashlib.sha256(blob).hexdigest()[:16]

    def canary_layout(self) -> dict[str, Any] | None:
        """The prod layout with ``X@prod`` → ``X@canary`` wherever a different canary version exists."""
        if not self.canary_enabled:
            return None
        swapped = False
        layout = copy.deepcopy(self.layout)

        def visit(node: dict[str, Any]) -> None:
            nonlocal swapped
            m = REF_PATTERN.match(node["model"])
            if m is None or m["alias"] != "prod":
                return
            reg = self.registry()
            canary = reg.by_alias(m["plugin"], "canary")
            prod = reg.by_alias(m["plugin"], "prod")
            if canary is not None and (prod is None or canary.version != prod.version):
                node["model"] = f"{m['plugin']}@canary"
                swapped = True

        _walk_models(layout, visit)
        return layout if swapped else None

    # -- building -------------------------------------------------------------------------------------
    def key_of(self, layout: Mapping[str, Any], features: str | None = None) -> str:
        """The arm key: the resolved layout and versions, and the store view the arm reads."""
        key = self.resolve(layout)[2]
        return key if features is None else self._view_key(key, features)

    @staticmethod
    def _view_key(key: str, features: str) -> str:
        return hashlib.sha256(f"{key}:{features}".encode()).hexdigest()[:16]

    def _context(self, features: str | None) -> StageContext:
        if features is None:
            return self.context
        if self.view_context is None:
            raise ConfigError(f"store view {features!r}: this service reads only its live store")
        return self.view_context(features)

    def build(self, name: str, layout: Mapping[str, Any], features: str | None = None) -> LoadedArm:
        """Resolve, build, warm: a :class:`LoadedArm` ready to serve (cached by its key)."""
        resolved, versions, base = self.resolve(layout)  # one resolution: an alias may move meanwhile
        key = base if features is None else self._view_key(base, features)
        cached = self._built.get(key)
        if cached is not None:
            self._built.move_to_end(key)
            return replace(cached, name=name, versions=versions)
        config = CascadeConfig.from_mapping(resolved, source=f"arm {name}")
        resolver = StageResolver(self.settings, self.dataset.name, self._context(features), self.uri)
        cascade = Cascade.build(config, resolver.context_for)
        cascade.warmup()
        self._warm(cascade)
        vectors = cascade.recall.channels[0].item_vectors()
        arm = LoadedArm(
            name, cascade, versions, key, vectors=None if vectors is None else np.asarray(vectors),
            features=features,
        )  # fmt: skip
        self._built[key] = arm
        while len(self._built) > 8:
            self._built.popitem(last=False)
        return arm

    def _warm(self, cascade: Cascade) -> None:
        """Answer real requests (the busiest users' newest events) before serving; any failure refuses it."""
        n = self.warmup_requests
        if n <= 0:
            return
        train = self.context.train
        if train is None or len(train) == 0:
            cascade.recommend(Request.create(-1, 0), k=cascade.config.rerank.k)
            return
        history = FeatureSpec().recent_events
        users = np.argsort(-np.bincount(train.user, minlength=train.n_users), kind="stable")[:n]
        for u in users.tolist():
            items, times = train.sequences.of(int(u))
            req = Request.create(
                u, int(times.max()) + 1 if times.size else 0, items[-history:], times[-history:]
            )
            out = cascade.recommend(req, k=cascade.config.rerank.k)
            if not out:
                raise ConfigError(f"warm-up: the cascade answered user {u} with an empty list")

    # -- swapping -------------------------------------------------------------------------------------
    def _try(
        self, name: str, layout: Mapping[str, Any], current: LoadedArm | None, features: str | None = None
    ) -> LoadedArm | None:
        """The arm for ``layout``: the current one if nothing moved, a freshly built one, or — when the new
        version fails to load or warm — the current one again (the failure is recorded in ``refused``)."""
        try:
            key = self.key_of(layout, features)
        except Exception as exc:
            log.warning(f"arm {name}: cannot resolve its models ({exc}); keeping what serves")
            self._notify("unresolved", current, f"{name}: {exc}")
            return current
        if current is not None and current.key == key:
            return current
        if key in self.refused:
            return current
        t0 = time.perf_counter()
        try:
            arm = self.build(name, layout, features)
        except Exception as exc:  # a broken version never replaces a working one
            why = f"{type(exc).__name__}: {exc}"[:500]
            self.refused[key] = why
            log.warning(f"arm {name}: refused new version {key} ({why}); the old one keeps serving")
            self._notify("refused", current, f"{name}: {why}")
            return current
        log.info(f"arm {name}: loaded {arm.versions} in {time.perf_counter() - t0:.1f} s")
        self._notify("loaded", arm, f"{name} in {time.perf_counter() - t0:.2f} s")
        return arm

    def _notify(self, what: str, arm: LoadedArm | None, detail: str) -> None:
        for fn in self.listeners:
            fn(what, arm, detail)

    def reload(self, experiment: Experiment | bool | None = False) -> Arms:
        """Re-check every alias (and, when given, apply ``experiment``; ``None`` clears it) and swap in what
        moved. Returns the arms now served."""
        with self._lock:
            cur = self.arms
            prod = self._try("prod", self.layout, cur.prod)
            canary = None
            try:
                clayout = self.canary_layout()
            except Exception as exc:
                log.warning(f"canary: cannot read the registry ({exc}); keeping what serves")
                clayout, canary = None, cur.canary
            if clayout is not None:
                canary = self._try("canary", clayout, cur.canary)
            exp = cur.experiment if experiment is False else experiment
            arms: dict[str, LoadedArm] = {}
            shadow = None
            if isinstance(exp, Experiment):
                arms, shadow, ok = self._experiment_arms(exp, cur)
                if not ok:  # an arm of the new experiment could not load: keep the old experiment
                    exp, arms, shadow = cur.experiment, cur.experiment_arms, cur.shadow
            new = Arms(prod, canary, exp if isinstance(exp, Experiment) else None, arms, shadow)
            if new != cur:
                self.arms = new  # the swap: one reference assignment, atomic for the request threads
                self.swaps += 1
            return self.arms

    def _experiment_arms(
        self, exp: Experiment, cur: Arms
    ) -> tuple[dict[str, LoadedArm], LoadedArm | None, bool]:
        arms: dict[str, LoadedArm] = {}
        for spec in exp.arms:
            old = cur.experiment_arms.get(spec.name) if cur.experiment is not None else None
            arm = self._try(f"ab:{spec.name}", spec.cascade, old, spec.features)
            if arm is None:
                return {}, None, False
            arms[spec.name] = arm if arm is old else replace(arm, name=f"ab:{spec.name}")
        shadow = None
        if exp.shadow is not None:
            shadow = self._try(
                f"shadow:{exp.shadow.name}", exp.shadow.cascade, cur.shadow, exp.shadow.features
            )
            if shadow is not None and shadow is not cur.shadow:
                shadow = replace(shadow, name=f"shadow:{exp.shadow.name}")
        return arms, shadow, True
