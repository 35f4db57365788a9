"""Compare two dataset versions row by row: what was added, removed and relabelled.

Both versions' JSONL files are read line by line into a throwaway SQLite file
(16-byte hashes of each row's key and label, plus the first text of a few keys
for examples), and the comparison is a handful of grouped queries there. Memory
stays bounded by SQLite's page cache whatever the size of the versions; only
disk grows, by about 40 bytes a row.

A row's *key* is what stays the same when a label changes, its *label* what a
relabelling changes (per format):

- preference pairs (``trl_preference``, ``reward_pairs``, ``segment_preference``):
  the prompt and the two responses, unordered / which response is chosen;
- ``trl_unpaired``: the prompt and the completion / the desirable flag;
- ``ranked_list``: the prompt and the set of responses / their order;
- ``pointwise``: the prompt and the response / the scores.

A key may hold several rows (one per annotator without aggregation); it counts
as relabelled when the multiset of its labels differs between the versions.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from annotation.errors import NotFound, ValidationFailed
from annotation.models import Project
from curation.models import DatasetVersion
from curation.storage import absolute

PAIR_FORMATS = ("trl_preference", "reward_pairs", "segment_preference")
KEY_DESCRIPTIONS = {
    **{f: "prompt and the pair of responses; label: the chosen response" for f in PAIR_FORMATS},
    "trl_unpaired": "prompt and completion; label: desirable or not",
    "ranked_list": "prompt and the set of responses; label: their order",
    "pointwise": "prompt and response; label: the scores",
}
EXAMPLES = 5
TEXT_LIMIT = 300
BATCH = 5000


def _canonical(value: Any) -> str:
    return (
        value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    )


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def row_key_and_label(format_name: str, row: dict) -> tuple[str, str]:
    """The (key, label) texts of one exported row (see the module docstring)."""
    prompt = _canonical(row.get("prompt"))
    if format_name in PAIR_FORMATS:
        chosen, rejected = _canonical(row.get("chosen")), _canonical(row.get("rejected"))
        return json.dumps([prompt, sorted([chosen, rejected])]), chosen
    if format_name == "trl_unpaired":
        return json.dumps([prompt, _canonical(row.get("completion"))]), json.dumps(row.get("label"))
    if format_name == "ranked_list":
        responses = [_canonical(r) for r in row.get("responses") or []]
        return json.dumps([prompt, sorted(responses)]), json.dumps(responses)
    if format_name == "pointwise":
        return (
            json.dumps([prompt, _canonical(row.get("response"))]),
            json.dumps(row.get("scores"), sort_keys=True),
        )
    rest = {k: v for k, v in row.items() if k not in ("external_id", "annotators", "split")}
    return prompt, json.dumps(rest, sort_keys=True)


def _jsonl_paths(version: DatasetVersion, field: str) -> list[Path]:
    paths = [
        entry["path"]
        for entry in version.manifest.get("files") or []
        if entry.get("path", "").startswith("jsonl/") and entry["path"].endswith(".jsonl")
    ]
    if not paths:
        raise ValidationFailed(
            f"Version {version.version} has no JSONL files to compare (export it with outputs "
            "including jsonl).",
            field=field,
        )
    return [absolute(f"{version.path}/{path}") for path in sorted(paths)]


def _rows(paths: list[Path]) -> Iterator[dict]:
    for path in paths:
        if not path.is_file():
            raise NotFound(f"A file of this dataset version is missing from storage: {path.name}.")
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def _load(db: sqlite3.Connection, side: int, format_name: str, paths: list[Path]) -> int:
    batch: list[tuple[int, bytes, bytes]] = []
    texts: list[tuple[bytes, str]] = []
    labels: list[tuple[bytes, str]] = []
    total = 0

    def flush() -> None:
        db.executemany("INSERT INTO rows VALUES (?, ?, ?)", batch)
        db.executemany("INSERT OR IGNORE INTO key_text VALUES (?, ?)", texts)
        db.executemany("INSERT OR IGNORE INTO label_text VALUES (?, ?)", labels)
        batch.clear()
        texts.clear()
        labels.clear()

    for row in _rows(paths):
        key, label = row_key_and_label(format_name, row)
        key_hash, label_hash = _digest(key), _digest(label)
        batch.append((side, key_hash, label_hash))
        texts.append((key_hash, _canonical(row.get("prompt"))[:TEXT_LIMIT]))
        labels.append((label_hash, label[:TEXT_LIMIT]))
        total += 1
        if len(batch) >= BATCH:
            flush()
    flush()
    return total


def _version(project: Project, version_id: int, field: str) -> DatasetVersion:
    version = DatasetVersion.objects.filter(project=project, pk=version_id).first()
    if version is None:
        raise NotFound(f"No such dataset version ({field}).")
    return version


_SETUP = """
CREATE TABLE rows (side INTEGER, key BLOB, label BLOB);
CREATE TABLE key_text (key BLOB PRIMARY KEY, prompt TEXT);
CREATE TABLE label_text (label BLOB PRIMARY KEY, text TEXT);
"""
_INDEX = """
CREATE TABLE a AS SELECT key, label, COUNT(*) AS n FROM rows WHERE side = 0 GROUP BY key, label;
CREATE TABLE b AS SELECT key, label, COUNT(*) AS n FROM rows WHERE side = 1 GROUP BY key, label;
CREATE UNIQUE INDEX a_kl ON a (key, label);
CREATE UNIQUE INDEX b_kl ON b (key, label);
CREATE TABLE ka AS SELECT key, SUM(n) AS n FROM a GROUP BY key;
CREATE TABLE kb AS SELECT key, SUM(n) AS n FROM b GROUP BY key;
CREATE UNIQUE INDEX ka_k ON ka (key);
CREATE UNIQUE INDEX kb_k ON kb (key);
CREATE TABLE changed AS
  SELECT ka.key FROM ka JOIN kb ON ka.key = kb.key
  WHERE ka.n != kb.n
     OR EXISTS (SELECT 1 FROM a LEFT JOIN b ON b.key = a.key AND b.label = a.label
                WHERE a.key = ka.key AND (b.n IS NULL OR b.n != a.n));
"""


def dataset_versions_compare(*, project: Project, a_id: int, b_id: int) -> dict:
    """Rows added (keys only in b), removed (keys only in a) and relabelled keys, with examples.

    Both versions must be of the project and of the same format; reading is
    streaming and memory-bounded (see the module docstring).
    """
    a = _version(project, a_id, "a")
    b = _version(project, b_id, "b")
    if a.format != b.format:
        raise ValidationFailed(
            f"Versions {a.version} ({a.format}) and {b.version} ({b.format}) have different "
            "formats; compare versions of one format.",
            field="b",
        )
    a_paths, b_paths = _jsonl_paths(a, "a"), _jsonl_paths(b, "b")
    with tempfile.TemporaryDirectory(prefix="ballot-compare-") as scratch:
        db = sqlite3.connect(Path(scratch) / "compare.sqlite3")
        try:
            # Bounded cache (about 8 MiB); temporary tables spill to the scratch file too.
            db.executescript("PRAGMA cache_size = -8000; PRAGMA temp_store = FILE;" + _SETUP)
            a_rows = _load(db, 0, a.format, a_paths)
            b_rows = _load(db, 1, b.format, b_paths)
            db.executescript(_INDEX)
            removed = db.execute(
                "SELECT COALESCE(SUM(n), 0) FROM ka WHERE key NOT IN (SELECT key FROM kb)"
            ).fetchone()[0]
            added = db.execute(
                "SELECT COALESCE(SUM(n), 0) FROM kb WHERE key NOT IN (SELECT key FROM ka)"
            ).fetchone()[0]
            relabelled = db.execute("SELECT COUNT(*) FROM changed").fetchone()[0]
            both = db.execute("SELECT COUNT(*) FROM ka JOIN kb ON ka.key = kb.key").fetchone()[0]
            examples = {
                "added": _examples(db, "kb", "ka", side="after"),
                "removed": _examples(db, "ka", "kb", side="before"),
                "relabelled": _relabelled_examples(db),
            }
        finally:
            db.close()
    return {
        "a": _describe(a, a_rows),
        "b": _describe(b, b_rows),
        "key": KEY_DESCRIPTIONS.get(a.format, "prompt; label: the rest of the row"),
        "rows_added": int(added),
        "rows_removed": int(removed),
        "relabelled": int(relabelled),
        "unchanged": int(both - relabelled),
        "examples": examples,
    }


def _describe(version: DatasetVersion, rows: int) -> dict:
    return {
        "id": version.id,
        "version": version.version,
        "name": version.name,
        "format": version.format,
        "rows": rows,
    }


def _first_label(db: sqlite3.Connection, table: str, key: bytes) -> str:
    row = db.execute(
        f"SELECT label_text.text FROM {table} JOIN label_text ON label_text.label = {table}.label "
        f"WHERE {table}.key = ? ORDER BY {table}.label LIMIT 1",
        (key,),
    ).fetchone()
    return row[0] if row else ""


def _examples(db: sqlite3.Connection, present: str, absent: str, *, side: str) -> list[dict]:
    keys = db.execute(
        f"SELECT {present}.key, key_text.prompt FROM {present} "
        f"JOIN key_text ON key_text.key = {present}.key "
        f"WHERE {present}.key NOT IN (SELECT key FROM {absent}) ORDER BY {present}.key LIMIT ?",
        (EXAMPLES,),
    ).fetchall()
    label_table = "b" if present == "kb" else "a"
    out = []
    for key, prompt in keys:
        label = _first_label(db, label_table, key)
        out.append(
            {
                "prompt": prompt,
                "before": label if side == "before" else "",
                "after": label if side == "after" else "",
            }
        )
    return out


def _relabelled_examples(db: sqlite3.Connection) -> list[dict]:
    keys = db.execute(
        "SELECT changed.key, key_text.prompt FROM changed JOIN key_text ON key_text.key = changed.key "
        "ORDER BY changed.key LIMIT ?",
        (EXAMPLES,),
    ).fetchall()
    return [
        {
            "prompt": prompt,
            "before": _first_label(db, "a", key),
            "after": _first_label(db, "b", key),
        }
        for key, prompt in keys
    ]
