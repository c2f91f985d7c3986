"""The service's routers, one per resource."""

from replayrec_serving.routes import admin, events, health, recommendations, replay, ui

__all__ = ["admin", "events", "health", "recommendations", "replay", "ui"]
