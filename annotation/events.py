"""A tiny in-process event bus: annotation says what happened, other apps listen.

The annotation app must not import curation (an import-linter contract), yet
curation's webhooks want to hear when an annotation is stored. So annotation
publishes here and curation subscribes from its ``AppConfig.ready``.

``publish`` defers delivery to ``transaction.on_commit``: a listener never
hears of a write that was rolled back, and the publishing transaction holds no
lock while listeners run. ``publish`` itself runs no query; listeners decide
cheaply (a cached look-up) whether anyone cares about the project.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from django.db import transaction

log = logging.getLogger(__name__)

# (event_type, project_id, payload, event_key) -> None. ``event_key`` names the
# occurrence (e.g. "annotation.created:42"), so listeners can deduplicate.
Listener = Callable[[str, int, Mapping[str, Any], str], None]

_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    """Register ``listener`` for every event. Registering the same function twice is a no-op."""
    if listener not in _listeners:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def publish(event_type: str, *, project_id: int, payload: Mapping[str, Any], key: str) -> None:
    """Tell every listener about ``event_type`` once the current transaction commits."""
    if not _listeners:
        return
    transaction.on_commit(lambda: _dispatch(event_type, project_id, dict(payload), key))


def _dispatch(event_type: str, project_id: int, payload: dict[str, Any], key: str) -> None:
    for listener in list(_listeners):
        try:
            listener(event_type, project_id, payload, key)
        except Exception:
            # The write that raised the event is committed; a failing listener must
            # not turn it into an error for the caller.
            log.exception(
                "listener %r failed on %s for project %s", listener, event_type, project_id
            )
