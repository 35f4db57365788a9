"""Dataset exports: row formats for alignment trainers and streaming, atomic writers.

Pure (no Django): the export service selects records and calls :func:`write_export`.
"""

from __future__ import annotations

from curation.exports.formats import (
    FORMATS,
    ExportOptions,
    RowBuilder,
    build_rows,
    export_schema,
    prompt_text,
    pseudonymise,
    record_type,
)
from curation.exports.writers import (
    OUTPUTS,
    ExportCancelled,
    ExportResult,
    SplitPolicy,
    prompt_split,
    write_export,
)

__all__ = [
    "FORMATS",
    "OUTPUTS",
    "ExportCancelled",
    "ExportOptions",
    "ExportResult",
    "RowBuilder",
    "SplitPolicy",
    "build_rows",
    "export_schema",
    "prompt_split",
    "prompt_text",
    "pseudonymise",
    "record_type",
    "write_export",
]
