"""Markdown on server-rendered pages.

Two sources, two paths, never mixed:

- Item data (conversation messages and responses) is rendered by the one client-side
  renderer, ``frontend/static/frontend/markdown.js``, everywhere it is shown; here
  ``markdown_source`` only hands it the raw text. That renderer keeps every visible
  character tied to its offset in the raw text, which correction spans need.
- Project instructions, written by the project's admins, are rendered here with
  Python-Markdown and sanitised with nh3 (``markdown`` filter).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import markdown as markdown_lib
import nh3
from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "dl", "dt", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "strong", "sub", "sup",
    "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "td": {"align"}, "th": {"align"}}


def markdown_to_safe_html(text: str) -> str:
    """Render markdown, then let only a small set of tags and http(s)/mailto links through.

    Sanitising after rendering (not before) matters: markdown passes raw HTML
    through, so ``<script>`` or ``onerror=`` in the source would survive otherwise.
    """
    html = markdown_lib.markdown(text or "", extensions=["fenced_code", "tables", "sane_lists"])
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


@register.filter(name="markdown")
def markdown_filter(text: str) -> SafeString:
    return mark_safe(markdown_to_safe_html(text))  # noqa: S308 - sanitised by nh3 just above


def message_text(content: Any) -> str:
    """A message's content as text: structured content (a list of parts) as indented JSON, like the labeling page."""
    return (
        content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False)
    )


@register.simple_tag
def markdown_source(text: Any, marks: Sequence[Sequence[int]] = ()) -> SafeString:
    """A ``<div>`` that ``markdown_blocks.js`` renders with markdown.js.

    The raw text travels as JSON in an attribute (JSON keeps a ``\\r`` that HTML
    parsing would fold away, so offsets stay exact) and, escaped, as the element's
    content, which shows as plain text if scripts do not run. ``marks`` are
    highlights as ``(start, end, number)`` in code points of the raw text.
    """
    raw = message_text(text)
    return format_html(
        '<div class="md raw-text" dir="auto" data-markdown="{}" data-marks="{}">{}</div>',
        json.dumps(raw, ensure_ascii=False),
        json.dumps([list(mark) for mark in marks]),
        raw,
    )
