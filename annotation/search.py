"""What an item is found by and shown as: its title and its plain search text.

Pure functions over an item's conversation and response texts, shared by the
import writer, the migration that fills existing rows and ``search_reindex``.
On PostgreSQL the stored ``search_text`` also feeds ``Item.search_vector``
(a ``tsvector`` column PostgreSQL generates from it, under a GIN index); SQLite searches ``search_text`` itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# One text search configuration for the stored vectors and the queries: they must match.
SEARCH_CONFIG = "english"
TITLE_WORDS = 12
TITLE_CHARS = 120


def _contents(conversation: Any) -> list[tuple[str, str]]:
    if not isinstance(conversation, list):
        return []
    turns = []
    for message in conversation:
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            turns.append((str(message.get("role", "")), message["content"]))
    return turns


def item_title(conversation: Any, fallback: str = "") -> str:
    """The first words of the prompt (the last user turn, the one the responses answer)."""
    turns = _contents(conversation)
    users = [content for role, content in turns if role == "user" and content.strip()]
    text = users[-1] if users else next((c for _, c in turns if c.strip()), "")
    words = text.split()
    if not words:
        return fallback[:TITLE_CHARS]
    title = " ".join(words[:TITLE_WORDS])
    if len(words) > TITLE_WORDS or len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "…"
    return title


def item_search_text(conversation: Any, response_texts: Iterable[str]) -> str:
    """Every message of the conversation and every response, one per line."""
    parts = [content for _, content in _contents(conversation)]
    parts.extend(text for text in response_texts if text)
    # NUL bytes are refused by PostgreSQL text columns.
    return "\n".join(parts).replace("\x00", " ")
