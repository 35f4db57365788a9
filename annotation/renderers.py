"""JSON rendering that survives rows stored before Ballot rejected non-finite numbers."""

from __future__ import annotations

import math
from typing import Any

from rest_framework.renderers import JSONRenderer


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN or ±Infinity float replaced by ``None`` (a copy where anything changed)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(child) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(child) for child in value]
    return value


class TolerantJSONRenderer(JSONRenderer):
    """Strict JSON out; a row holding NaN or Infinity (written before input was checked) reads as null.

    The common path is the plain renderer; only a failed render pays for the walk.
    """

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except ValueError:
            return super().render(finite_or_none(data), accepted_media_type, renderer_context)
