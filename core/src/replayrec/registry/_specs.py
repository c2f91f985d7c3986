"""Build stages from cascade specs whose ``model`` key is an artifact path or a ``<plugin>@<alias>`` ref."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from replayrec.cascade import ChannelSpec, StageSpec, build_from_spec
from replayrec.config import Settings
from replayrec.errors import ConfigError
from replayrec.registry._refs import resolve_model
from replayrec.stages import Stage, StageContext

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

    def context_for(self, spec: StageSpec | ChannelSpec) -> StageContext:
        if spec.model is None:
            return self.context
        path = resolve_model(spec.model, self.settings, self.dataset, spec.type, self.tracking_uri)
        return replace(self.context, artifact=path)

    def build(self, kind: str, spec: Mapping[str, Any]) -> tuple[Stage, dict[str, Any]]:
        if not isinstance(spec, Mapping) or "type" not in spec:
            raise ConfigError(f"a {kind} stage spec needs a 'type' key, got {spec!r}")
        parsed = ChannelSpec.model_validate({k: v for k, v in spec.items() if k not in ("k", "quota")})
        ctx = self.context_for(parsed)
        stage = build_from_spec(kind, parsed, ctx)
        resolved = {"type": parsed.type, **parsed.options}
        if ctx.artifact is not None:
            resolved["model"] = str(ctx.artifact)
        return stage, resolved
