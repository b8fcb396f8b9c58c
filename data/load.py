"""Loading validated files into the warehouse, with lineage, all or nothing, never twice.

The ingestion id is derived from the file's content, so the same content ingested again is a
no-op that says so, and a load interrupted half-way (nothing was committed) simply runs again.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from balanceit.data.contract import ACTIVITY_KEY, QUESTIONNAIRE_KEY
from balanceit.data.labels import label_conflicts, record_labels
from balanceit.data.validation import FileRefused, Validated, load_activity, load_questionnaire
from balanceit.features.build import OPTIONAL_ANSWERS
from balanceit.warehouse import transaction, upsert_frame

Kind = Literal["questionnaire", "activity", "nhanes"]


@dataclass
class IngestionSummary:
    file: str
    kind: str
    status: str  # "loaded" | "already_loaded" | "refused"
    ingestion_id: str | None = None
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    message: str = ""
    label_conflicts: int = 0
    first_rows: dict[str, list[int]] = field(default_factory=dict)  # per reason, its first row numbers

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def content_sha256(path: Path, not_asked: Sequence[str] = ()) -> str:
    """The content's digest with the questions declared not asked: declared otherwise, it is another ingestion."""
    digest = hashlib.sha256()
    if not_asked:
        digest.update(f"not asked: {','.join(sorted(set(not_asked)))}".encode())
    if path.is_dir():
        for child in sorted(p for p in path.iterdir() if p.is_file()):
            digest.update(child.name.encode())
            digest.update(child.read_bytes())
        return digest.hexdigest()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ingestion_id_for(kind: str, sha: str) -> str:
    """The same content of the same kind always gets the same id: that makes a re-ingest a no-op."""
    return f"{kind}-{sha[:16]}"


def _validate(path: Path, kind: Kind, not_asked: Sequence[str]) -> Validated:
    if kind == "activity":
        return load_activity(path)
    if kind == "nhanes":
        from balanceit.data.nhanes import load_nhanes

        return load_nhanes(path, not_asked=not_asked)
    return load_questionnaire(path, not_asked=not_asked)


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def ingest(con: duckdb.DuckDBPyConnection, path: Path, kind: Kind,
           not_asked: Sequence[str] = ()) -> IngestionSummary:
    """Validate one file and load it: accepted rows, quarantined rows, lineage, and its batch."""
    path = Path(path)
    if not path.exists():
        return IngestionSummary(str(path), kind, "refused", message=f"{path}: no such file or folder")
    refusal = not_askable(not_asked)
    if refusal:
        return IngestionSummary(str(path), kind, "refused", message=refusal)
    sha = content_sha256(path, not_asked)
    started = now()
    return (loaded_before(con, path, kind, sha)
            or store_validated(con, validate(path, kind, not_asked), path, kind, sha, started))


def not_askable(not_asked: Sequence[str]) -> str | None:
    """Why these names cannot be declared not asked (only optional answers can), else None."""
    unknown = [repr(name) for name in not_asked if name not in OPTIONAL_ANSWERS]
    if not unknown:
        return None
    return f"cannot be declared not asked: {', '.join(unknown)} (a survey may leave out {', '.join(OPTIONAL_ANSWERS)})"


def loaded_before(con: duckdb.DuckDBPyConnection, path: Path, kind: Kind, sha: str) -> IngestionSummary | None:
    """The answer when this content was loaded before (a re-ingest is a no-op), else None."""
    ingestion_id = ingestion_id_for(kind, sha)
    previous = con.execute(
        "SELECT rows_read, accepted, quarantined FROM ingestions WHERE ingestion_id = ? AND status = 'loaded'",
        [ingestion_id]).fetchone()
    if previous and _rows_still_there(con, kind, ingestion_id, previous[1]):
        return IngestionSummary(str(path), kind, "already_loaded", ingestion_id, *previous,
                                message=f"{path.name}: this content was loaded before "
                                        f"(ingestion {ingestion_id}); nothing to do")
    return None


def validate(path: Path, kind: Kind, not_asked: Sequence[str] = ()) -> Validated | str:
    """Read and validate one file (no warehouse needed, so a Dask worker can do it); a refused file gives
    the reason, an answer rather than an error."""
    with _collector_spares_older_objects():
        try:
            return _validate(path, kind, not_asked)
        except FileRefused as refused:
            return str(refused)


def _rows_still_there(con: duckdb.DuckDBPyConnection, kind: Kind, ingestion_id: str, accepted: int) -> bool:
    """A re-ingest is a no-op only while every row this content brought is still its own: a later file
    with the same keys (say, other labels) replaced some, and loading this content again restores them."""
    table = "activity" if kind == "activity" else "questionnaire"
    held = con.execute(f"SELECT count(*) FROM {table} WHERE ingestion_id = ?", [ingestion_id]).fetchall()[0][0]
    return held == accepted


@contextmanager
def _collector_spares_older_objects() -> Iterator[None]:
    """Full garbage collections during a load walk only the objects it creates.

    A full pass walks every live object, ~100k of them from the imported libraries alone: the one a
    million-row validation triggers took ~75 ms, ~5 ms with them frozen. The older objects are handed
    back afterwards, so cycles among them are still collected.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def store_validated(con: duckdb.DuckDBPyConnection, validated: Validated | str, path: Path, kind: Kind,
                    sha: str, started: datetime) -> IngestionSummary:
    """Accepted rows, quarantined rows, the batch and the lineage row, in one transaction."""
    ingestion_id = ingestion_id_for(kind, sha)
    if isinstance(validated, str):
        return IngestionSummary(str(path), kind, "refused", ingestion_id, message=validated)
    table_kind = "activity" if kind == "activity" else "questionnaire"
    accepted = validated.accepted.assign(ingestion_id=ingestion_id)
    quarantine = validated.quarantined.assign(ingestion_id=ingestion_id, file=str(path))
    key = ACTIVITY_KEY if table_kind == "activity" else QUESTIONNAIRE_KEY
    conflicts = label_conflicts(con, accepted) if table_kind == "questionnaire" else None
    with transaction(con):
        upsert_frame(con, table_kind, accepted, key)
        con.execute("DELETE FROM quarantine WHERE ingestion_id = ?", [ingestion_id])
        if len(quarantine):
            con.register("_quarantine", quarantine[["ingestion_id", "file", "row_number", "column", "rule",
                                                    "raw_value"]])
            con.execute("INSERT INTO quarantine SELECT * FROM _quarantine")
            con.unregister("_quarantine")
        if table_kind == "questionnaire":
            _record_batch(con, ingestion_id, str(path), kind, len(accepted))
            record_labels(con, accepted, ingestion_id)
        con.execute("DELETE FROM ingestions WHERE ingestion_id = ?", [ingestion_id])
        con.execute("INSERT INTO ingestions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'loaded', NULL)",
                    [ingestion_id, str(path), sha, kind, validated.rows_read, len(validated.accepted),
                     validated.quarantined_rows, started, now()])
    return IngestionSummary(str(path), kind, "loaded", ingestion_id, validated.rows_read,
                            len(validated.accepted), validated.quarantined_rows, validated.reasons(),
                            validated.skipped, _conflict_message(conflicts),
                            0 if conflicts is None else len(conflicts),
                            first_rows=validated.first_rows())


def _conflict_message(conflicts: pd.DataFrame | None, shown: int = 5) -> str:
    """Name the keys whose label this file changed (both labels stay in `label_history`)."""
    if conflicts is None or conflicts.empty:
        return ""
    listed = "; ".join(f"{row.respondent_id} {row.submitted_at:%Y-%m-%d %H:%M:%S} was {row.imbalance} "
                       f"(ingestion {row.ingestion_id})" for row in conflicts.head(shown).itertuples())
    more = f"; and {len(conflicts) - shown} more" if len(conflicts) > shown else ""
    return (f"label conflicts: {len(conflicts)} keys already labelled otherwise now carry this file's label "
            f"(both kept in label_history): {listed}{more}")


def _record_batch(con: duckdb.DuckDBPyConnection, batch_id: str, file: str, kind: str, rows: int) -> None:
    """A questionnaire ingestion is a batch: the rows it brought (just upserted, so they carry its
    ingestion id), to feature, score and report on."""
    con.execute("DELETE FROM batch_members WHERE batch_id = ?", [batch_id])
    con.execute("DELETE FROM batches WHERE batch_id = ?", [batch_id])
    con.execute("INSERT INTO batches VALUES (?, ?, ?, ?, NULL, ?, ?)", [batch_id, batch_id, file, kind, rows, now()])
    con.execute("INSERT INTO batch_members SELECT ?, respondent_id, submitted_at FROM questionnaire "
                "WHERE ingestion_id = ?", [batch_id, batch_id])
