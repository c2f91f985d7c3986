"""Build stages from cascade specs whose ``model`` key is an artifact path or a ``<plugin>@<alias>`` ref."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from replayrec.cascade import ChannelSpec, MergedRecall, RecallSpec, StageSpec, build_from_spec
from replayrec.config import Settings
from replayrec.errors import ConfigError, describe_validation_error
from replayrec.registry._refs import resolve_model
from replayrec.stages import Recall, Stage, StageContext

__all__ = ["StageResolver"]


@dataclass(frozen=True)
class StageResolver:
    """Resolves model references of one dataset and hands each stage its context.

    ``context_for`` is what :meth:`replayrec.cascade.Cascade.build` takes; :meth:`build` makes one stage
    from a plain mapping (``{"type": "lightgcn", "model": "lightgcn@latest", ...}``) and returns the spec
    with the model resolved to an absolute artifact path, so it can be recorded and rebuilt exactly.
    """

    settings: Settings
    dataset: str
    context: StageContext
    tracking_uri: str | None = None
    #: the evaluation / training protocol: every model must have been trained on its training events
    protocol: str | None = None

    def context_for(self, spec: StageSpec | ChannelSpec) -> StageContext:
        if spec.model is None:
            return self.context
        path = resolve_model(
            spec.model, self.settings, self.dataset, spec.type, self.tracking_uri, self.protocol
        )
        return replace(self.context, artifact=path)

    def build(self, kind: str, spec: Mapping[str, Any]) -> tuple[Stage, dict[str, Any]]:
        """One stage from ``{type, model?, …}``, or for recall several channels merged (``{merge?, k?,
        channels: [{type, quota?, weight?, model?, …}, …]}``, the cascade's recall section), with the spec
        resolved (models as absolute artifact paths)."""
        if kind == "recall" and isinstance(spec, Mapping) and "channels" in spec:
            return self._merged(spec)
        if not isinstance(spec, Mapping) or "type" not in spec:
            raise ConfigError(f"a {kind} stage spec needs a 'type' key, got {spec!r}")
        parsed = ChannelSpec.model_validate({k: v for k, v in spec.items() if k not in ("k", "quota")})
        ctx = self.context_for(parsed)
        stage = build_from_spec(kind, parsed, ctx)
        resolved = {"type": parsed.type, **parsed.options}
        if ctx.artifact is not None:
            resolved["model"] = str(ctx.artifact)
        return stage, resolved

    def _merged(self, spec: Mapping[str, Any]) -> tuple[Stage, dict[str, Any]]:
        try:
            parsed = RecallSpec.model_validate(dict(spec))
        except ValidationError as exc:
            raise ConfigError(
                f"invalid multi-channel recall {dict(spec)}: {describe_validation_error(exc)}"
            ) from None
        channels, resolved = [], []
        for ch in parsed.channels:
            ctx = self.context_for(ch)
            stage = build_from_spec("recall", ch, ctx)
            if not isinstance(stage, Recall):
                raise ConfigError(f"recall channel {ch.type!r} is not a recall stage")
            channels.append(stage)
            entry: dict[str, Any] = {"type": ch.type, "weight": ch.weight, **ch.options}
            if ch.quota is not None:
                entry["quota"] = ch.quota
            if ctx.artifact is not None:
                entry["model"] = str(ctx.artifact)
            resolved.append(entry)
        merged = MergedRecall(channels, parsed.channels, parsed.k, parsed.merge, self.context)
        return merged, {"k": parsed.k, "merge": parsed.merge, "channels": resolved}
