"""Conversation to text: the one place a message list becomes a string.

Pure (no Django). Curation jobs (embedding keys, FiFA prompt groups), split
hashing and the string form of exported prompts all go through
:func:`conversation_text`, so a prompt is the same text everywhere and the
embedding cache filled by one job is reused by the others.

The template: each message is a ``role: content`` paragraph, paragraphs are
joined by a blank line. A prompt that a model must continue ends with the
assistant turn marker (``assistant_cue=True``)::

    system: Be brief.

    user: What is 2 + 2?

    assistant: It is 4.

    user: And 3 + 3?

    assistant: ⟨answer⟩

(the last line is the cue; the answer follows it), so appending the answer
gives exactly the flattened conversation with the answer as its last
assistant turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TURN_SEPARATOR = "\n\n"
ASSISTANT_CUE = "assistant: "

__all__ = ["ASSISTANT_CUE", "TURN_SEPARATOR", "conversation_text"]


def conversation_text(messages: Iterable[Mapping[str, Any]], *, assistant_cue: bool = False) -> str:
    """A conversation flattened to ``role: content`` paragraphs joined by blank lines.

    With ``assistant_cue`` the text ends with ``"\\n\\nassistant: "``, the marker of
    the turn the model is to write.
    """
    text = TURN_SEPARATOR.join(f"{m['role']}: {m['content']}" for m in messages)
    if assistant_cue:
        return f"{text}{TURN_SEPARATOR}{ASSISTANT_CUE}" if text else ASSISTANT_CUE
    return text
