"""Streaming, atomic writers for dataset exports: JSONL, Parquet and a ``datasets`` folder.

Pure (no Django): :func:`write_export` takes an iterable of records, so the
caller can stream them from a database cursor, and holds at most
``batch_rows`` rows per split in memory.

Layout of a finished export directory::

    manifest.json
    jsonl/<shard>.jsonl          one JSON object per line
    parquet/<shard>.parquet      one row group per flushed batch
    hf/                          ``DatasetDict.save_to_disk`` folder, one split per shard

Shards are ``train`` and ``test`` when splitting into files, ``all`` when the
split is a column, and ``train`` without a split policy. Only shards that got
rows have files: ``datasets.load_dataset`` cannot build a zero-row split (it
raises "Instruction 'test' corresponds to no data"), so an empty ``test.parquet``
would break the obvious ``data_files={"train": ..., "test": ...}`` call.
``manifest["splits"]`` names the shards that exist with their row counts; build
``data_files`` from it. An export with no rows at all still has one empty
``train`` shard carrying the full schema in every output, so ``load_from_disk``,
pyarrow and pandas read a typed empty table. Everything is written
into a hidden temporary sibling of the destination and renamed into place only
when complete, so readers either see a whole export or nothing; on any
exception or cancellation the temporary directory is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from curation.exports.formats import (
    ExportOptions,
    Record,
    Row,
    RowBuilder,
    export_schema,
    prompt_text,
)

OUTPUTS: tuple[str, ...] = ("jsonl", "parquet", "hf")
# One encoder for every line: ``json.dumps`` with options builds a new one per call.
_JSON_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
MANIFEST_VERSION = 1

__all__ = [
    "MANIFEST_VERSION",
    "OUTPUTS",
    "ExportCancelled",
    "ExportResult",
    "SplitPolicy",
    "prompt_split",
    "write_export",
]


class ExportCancelled(Exception):
    """Raised by :func:`write_export` when its cancellation callback returned True."""


@dataclass(frozen=True, slots=True)
class SplitPolicy:
    """Grouped train/test split: every row of one prompt lands in the same split.

    ``mode="files"`` writes one shard per split; ``mode="column"`` writes one
    shard with a ``split`` column.
    """

    test_fraction: float = 0.1
    seed: int = 0
    mode: Literal["files", "column"] = "files"

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_fraction <= 1.0:
            raise ValueError("test_fraction must be within [0, 1]")
        if self.mode not in ("files", "column"):
            raise ValueError(f"unknown split mode {self.mode!r}")

    def describe(self) -> dict[str, Any]:
        """The policy as JSON-ready values for the manifest."""
        return {
            "test_fraction": self.test_fraction,
            "seed": self.seed,
            "mode": self.mode,
            "key": "sha256(seed NUL prompt_text) as a uniform number < test_fraction -> test",
        }


@dataclass(frozen=True, slots=True)
class ExportResult:
    """Where the finished export lies and its manifest."""

    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)


def prompt_split(prompt_key: str, *, test_fraction: float, seed: int) -> str:
    """``"test"`` or ``"train"`` for a prompt, deterministically from its text and the seed.

    Hashing the prompt (not the item) groups every item, response pair and
    ranking that shares a prompt into one split, so a model is never evaluated
    on a prompt it was trained on. SHA-256 rather than ``hash()`` because the
    builtin is salted per process.
    """
    digest = hashlib.sha256(f"{seed}\x00{prompt_key}".encode()).digest()
    uniform = int.from_bytes(digest[:8], "big") / 2.0**64
    return "test" if uniform < test_fraction else "train"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _ShardWriters:
    """Open JSONL and Parquet writers for the shards of one export, created on first use."""

    def __init__(
        self, root: Path, schema: pa.Schema, jsonl: bool, parquet_dir: Path | None, stack: ExitStack
    ) -> None:
        self.root = root
        self.schema = schema
        self.jsonl = jsonl
        self.parquet_dir = parquet_dir
        self.stack = stack
        self.jsonl_files: dict[str, IO[str]] = {}
        self.parquet_files: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}

    def open(self, shard: str) -> None:
        if shard in self.rows:
            return
        self.rows[shard] = 0
        if self.jsonl:
            path = self.root / "jsonl" / f"{shard}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.jsonl_files[shard] = self.stack.enter_context(
                path.open("w", encoding="utf-8", newline="\n")
            )
        if self.parquet_dir is not None:
            path = self.parquet_dir / f"{shard}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(path, self.schema, compression="zstd")
            self.stack.callback(writer.close)
            self.parquet_files[shard] = writer

    def write(self, shard: str, rows: list[Row]) -> None:
        self.open(shard)
        if self.jsonl:
            encode = _JSON_LINE.encode
            self.jsonl_files[shard].write("".join([encode(row) + "\n" for row in rows]))
        if self.parquet_dir is not None:
            # One row group per batch: readers can stream the file in the same
            # bounded chunks it was written in.
            table = pa.Table.from_pylist(rows, schema=self.schema)
            self.parquet_files[shard].write_table(table, row_group_size=len(rows))
        self.rows[shard] += len(rows)


def _build_hf_folder(
    parquet_dir: Path, shards: list[str], schema: pa.Schema, destination: Path, scratch: Path
) -> None:
    # Imported here so JSONL/Parquet-only exports (and the benchmark) do not pay
    # for importing ``datasets``.
    import datasets

    features = datasets.Features.from_arrow_schema(schema)
    # Progress bars would only clutter worker logs; the export reports its own progress.
    bars_were_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        _convert_shards(datasets, parquet_dir, shards, schema, features, destination, scratch)
    finally:
        if bars_were_enabled:
            datasets.enable_progress_bars()


def _convert_shards(
    datasets: Any,
    parquet_dir: Path,
    shards: list[str],
    schema: pa.Schema,
    features: Any,
    destination: Path,
    scratch: Path,
) -> None:
    splits: dict[str, Any] = {}
    # save_to_disk picks min(rows, n) shards, i.e. zero for an empty split, and
    # writes no Arrow file, after which load_from_disk fails with IndexError;
    # one explicit shard writes an empty file that loads.
    num_shards: dict[str, int] = {}
    for shard in shards:
        path = parquet_dir / f"{shard}.parquet"
        if pq.ParquetFile(path).metadata.num_rows == 0:
            # The parquet builder yields no table for an empty file, so build the
            # empty split straight from the schema.
            splits[shard] = datasets.Dataset(schema.empty_table())
            num_shards[shard] = 1
        else:
            # from_parquet converts into Arrow files under cache_dir batch by batch
            # and memory-maps them, so the export never sits in RAM whole.
            splits[shard] = datasets.Dataset.from_parquet(
                str(path),
                features=features,
                cache_dir=str(scratch / "hf-cache"),
                keep_in_memory=False,
            )
    datasets.DatasetDict(splits).save_to_disk(str(destination), num_shards=num_shards)


def _json_ready(name: str, value: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(value), sort_keys=True))
    except TypeError as error:
        raise TypeError(f"{name} must be JSON-serialisable to go into the manifest: {error}")


def write_export(
    records: Iterable[Record],
    *,
    destination: Path | str,
    format_name: str,
    code_version: str,
    options: ExportOptions | None = None,
    outputs: Collection[str] = OUTPUTS,
    split: SplitPolicy | None = None,
    filters: Mapping[str, Any] | None = None,
    aggregation: Mapping[str, Any] | None = None,
    batch_rows: int = 8192,
    total_records: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> ExportResult:
    """Stream records into an export directory and publish it atomically.

    ``records`` is consumed once, lazily. Rows are buffered per shard and
    flushed every ``batch_rows`` rows (one Parquet row group per flush), so
    memory stays bounded whatever the export size. ``filters`` and
    ``aggregation`` (how the records were selected and aggregated; must be
    JSON-serialisable) and ``code_version`` are recorded in ``manifest.json``
    with row counts per shard that has files (``splits``, also as ``rows``) and
    per logical split (``rows_by_split``, zeros included, also in column
    mode), the records read and skipped, the schema, and the size and SHA-256
    of every file.

    ``progress(done, total)`` is called after every flush and at the end; both
    count *input records* (the unit a caller can count up front), ``total`` being
    ``total_records`` as given. ``is_cancelled()`` is polled before every flush;
    when it returns True, :class:`ExportCancelled` is raised.

    Raises ``FileExistsError`` if ``destination`` exists (an export is
    immutable). On any exception nothing is left behind: no destination and no
    temporary directory.
    """
    options = options or ExportOptions()
    destination = Path(destination)
    unknown = set(outputs) - set(OUTPUTS)
    if unknown or not outputs:
        raise ValueError(f"outputs must be a non-empty subset of {OUTPUTS}, got {sorted(outputs)}")
    if batch_rows < 1:
        raise ValueError("batch_rows must be positive")
    if destination.exists():
        raise FileExistsError(f"export destination already exists: {destination}")
    filters_json = _json_ready("filters", filters or {})
    aggregation_json = _json_ready("aggregation", aggregation or {})
    split_column = split is not None and split.mode == "column"
    schema = export_schema(format_name, options, split_column=split_column)

    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{destination.name}.tmp-", dir=destination.parent))
    try:
        scratch = temporary / ".scratch"
        # The hf folder is built from Parquet; without a Parquet output the
        # shards go to scratch space that is dropped before hashing.
        if "parquet" in outputs:
            parquet_dir: Path | None = temporary / "parquet"
        elif "hf" in outputs:
            parquet_dir = scratch / "parquet"
        else:
            parquet_dir = None
        with ExitStack() as stack:
            shards = _ShardWriters(temporary, schema, "jsonl" in outputs, parquet_dir, stack)
            if split is None:
                fixed_shard: str | None = "train"
            elif split.mode == "column":
                fixed_shard = "all"
            else:
                fixed_shard = None
            builder = RowBuilder(format_name, options)
            # Many records share a prompt (every pair of one item); remembering the
            # split of recent prompts skips re-hashing them. Bounded so a huge
            # export of unique prompts cannot grow it without limit.
            split_of_prompt: dict[str, str] = {}
            buffers: dict[str, list[Row]] = {}
            records_read = 0
            records_skipped = 0
            split_rows: dict[str, int] = (
                {"train": 0, "test": 0} if split is not None else {"train": 0}
            )

            def flush(shard: str) -> None:
                if is_cancelled is not None and is_cancelled():
                    raise ExportCancelled(f"export to {destination} was cancelled")
                shards.write(shard, buffers.pop(shard))
                if progress is not None:
                    progress(records_read, total_records)

            for record in records:
                records_read += 1
                rows = builder.rows(record)
                if not rows:
                    records_skipped += 1
                    continue
                split_name = "train"
                if split is not None:
                    key = prompt_text(record.prompt)
                    split_name = split_of_prompt.get(key, "")
                    if not split_name:
                        if len(split_of_prompt) >= 65_536:
                            split_of_prompt.clear()
                        split_name = split_of_prompt[key] = prompt_split(
                            key, test_fraction=split.test_fraction, seed=split.seed
                        )
                split_rows[split_name] = split_rows.get(split_name, 0) + len(rows)
                if split_column:
                    for row in rows:
                        row["split"] = split_name
                shard = fixed_shard or split_name
                buffer = buffers.setdefault(shard, [])
                buffer.extend(rows)
                if len(buffer) >= batch_rows:
                    flush(shard)
            for shard in list(buffers):
                flush(shard)
            if not shards.rows:
                # Nothing to write: keep one empty shard so the schema stays readable.
                shards.open(fixed_shard or "train")
            if is_cancelled is not None and is_cancelled():
                raise ExportCancelled(f"export to {destination} was cancelled")
        shard_rows = dict(shards.rows)

        if "hf" in outputs:
            assert parquet_dir is not None
            _build_hf_folder(parquet_dir, sorted(shard_rows), schema, temporary / "hf", scratch)
        shutil.rmtree(scratch, ignore_errors=True)

        files = [
            {
                "path": path.relative_to(temporary).as_posix(),
                "bytes": path.stat().st_size,
                "sha256": _sha256(path),
            }
            for path in sorted(p for p in temporary.rglob("*") if p.is_file())
        ]
        manifest: dict[str, Any] = {
            "manifest_version": MANIFEST_VERSION,
            "format": format_name,
            "options": options.describe(),
            "schema": [{"name": f.name, "type": str(f.type)} for f in schema],
            "outputs": sorted(outputs),
            "split": split.describe() if split is not None else None,
            "splits": shard_rows,
            "rows": shard_rows,
            "rows_by_split": split_rows,
            "rows_total": sum(shard_rows.values()),
            "records_read": records_read,
            "records_skipped": records_skipped,
            "filters": filters_json,
            "aggregation": aggregation_json,
            "code_version": code_version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": files,
        }
        (temporary / "manifest.json").write_text(
            json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
        # rename(2) of a directory is atomic on one filesystem, and the temporary
        # directory is a sibling, so readers never see a half-written export.
        # It fails if another export has meanwhile published a (non-empty)
        # directory at the destination.
        os.rename(temporary, destination)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if progress is not None:
        progress(records_read, total_records)
    return ExportResult(path=destination, manifest=manifest)
