from __future__ import annotations

from rest_framework.parsers import BaseParser


class JsonLinesParser(BaseParser):
    """Hands a JSONL body to the importer as raw bytes; the importer parses it line by line."""

    media_type = "application/x-ndjson"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        return stream.read() if stream is not None else b""


class JsonlParser(JsonLinesParser):
    media_type = "application/jsonl"
