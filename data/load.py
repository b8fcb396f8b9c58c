"""Loading validated files into the warehouse, with lineage, all or nothing, never twice: the ingestion id is
the content's, so the same content again is a no-op that says so, and a load interrupted runs again."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from balanceit.data.contract import ACTIVITY_KEY, OPTIONAL_ANSWERS, QUESTIONNAIRE_KEY
from balanceit.data.labels import label_conflicts, record_labels
from balanceit.data.nhanes import load_nhanes
from balanceit.data.validation import FileRefused, Validated, load_activity, load_questionnaire
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
    for file in sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]:
        if file != path:  # a folder's files by name, so renaming one is other content
            digest.update(file.name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def ingestion_id_for(kind: str, sha: str) -> str:
    """The same content of the same kind always gets the same id: that makes a re-ingest a no-op."""
    return f"{kind}-{sha[:16]}"


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def ingest(con: duckdb.DuckDBPyConnection, path: Path, kind: Kind,
           not_asked: Sequence[str] = ()) -> IngestionSummary:
    """Validate one file and load it: accepted rows, quarantined rows, lineage, and its batch."""
    path = Path(path)
    refusal = refused_unread(path, kind, not_asked)
    if refusal:
        return refusal
    sha = content_sha256(path, not_asked)
    started = now()
    return (loaded_before(con, path, kind, sha)
            or store_validated(con, validate(path, kind, not_asked), path, kind, sha, started))


def refused_unread(path: Path, kind: Kind, not_asked: Sequence[str]) -> IngestionSummary | None:
    """The refusal of an input missing, or declaring not asked what is not an optional answer; else None."""
    unknown = [repr(name) for name in not_asked if name not in OPTIONAL_ANSWERS]
    if not path.exists():
        message = f"{path}: no such file or folder"
    elif unknown:
        message = (f"cannot be declared not asked: {', '.join(unknown)} "
                   f"(a survey may leave out {', '.join(OPTIONAL_ANSWERS)})")
    else:
        return None
    return IngestionSummary(str(path), kind, "refused", message=message)


def loaded_before(con: duckdb.DuckDBPyConnection, path: Path, kind: Kind, sha: str) -> IngestionSummary | None:
    """The answer when this content was loaded before, else None: a re-ingest is a no-op only while every
    row this content brought is still its own (a later file with the same keys, say other labels, replaced
    some, and loading this content again restores them)."""
    ingestion_id = ingestion_id_for(kind, sha)
    table = "activity" if kind == "activity" else "questionnaire"
    previous = con.execute(
        "SELECT rows_read, accepted, quarantined FROM ingestions WHERE ingestion_id = $id "
        f"AND status = 'loaded' AND accepted = (SELECT count(*) FROM {table} WHERE ingestion_id = $id)",
        {"id": ingestion_id}).fetchone()
    if previous:
        return IngestionSummary(str(path), kind, "already_loaded", ingestion_id, *previous,
                                message=f"{path.name}: this content was loaded before "
                                        f"(ingestion {ingestion_id}); nothing to do")
    return None


def validate(path: Path, kind: Kind, not_asked: Sequence[str] = ()) -> Validated | str:
    """Read and validate one file (no warehouse needed, so a Dask worker can do it); a refused file gives
    the reason, an answer rather than an error."""
    # Full garbage collections walk only the objects the load creates, not the imported libraries'
    # ~100k (~75 ms in a million-row validation, ~5 ms frozen); they are handed back after, still collected.
    gc.freeze()
    try:
        if kind == "activity":
            return load_activity(path)
        return (load_nhanes if kind == "nhanes" else load_questionnaire)(path, not_asked=not_asked)
    except FileRefused as refused:
        return str(refused)
    finally:
        gc.unfreeze()


def store_validated(con: duckdb.DuckDBPyConnection, validated: Validated | str, path: Path, kind: Kind,
                    sha: str, started: datetime) -> IngestionSummary:
    """Accepted rows, quarantined rows, the batch and the lineage row, in one transaction."""
    ingestion_id = ingestion_id_for(kind, sha)
    if isinstance(validated, str):
        return IngestionSummary(str(path), kind, "refused", ingestion_id, message=validated)
    questionnaire = kind != "activity"
    accepted = validated.accepted.assign(ingestion_id=ingestion_id)
    quarantine = validated.quarantined.assign(ingestion_id=ingestion_id, file=str(path))
    conflicts = label_conflicts(con, accepted)  # none for activity, which has no label
    with transaction(con):
        upsert_frame(con, "questionnaire" if questionnaire else "activity", accepted,
                     QUESTIONNAIRE_KEY if questionnaire else ACTIVITY_KEY)
        con.execute("DELETE FROM quarantine WHERE ingestion_id = ?", [ingestion_id])
        columns = ["ingestion_id", "file", "row_number", "column", "rule", "raw_value"]
        con.from_df(quarantine[columns]).insert_into("quarantine")
        if questionnaire:
            _record_batch(con, ingestion_id, str(path), kind, len(accepted))
            record_labels(con, accepted, ingestion_id)
        con.execute("DELETE FROM ingestions WHERE ingestion_id = ?", [ingestion_id])
        con.execute("INSERT INTO ingestions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'loaded', NULL)",
                    [ingestion_id, str(path), sha, kind, validated.rows_read, len(validated.accepted),
                     validated.quarantined_rows, started, now()])
    return IngestionSummary(str(path), kind, "loaded", ingestion_id, validated.rows_read,
                            len(validated.accepted), validated.quarantined_rows, validated.reasons(),
                            validated.skipped, _conflict_message(conflicts), len(conflicts),
                            first_rows=validated.first_rows())


def _conflict_message(conflicts: pd.DataFrame, shown: int = 5) -> str:
    """Name the keys whose label this file changed (both labels stay in `label_history`)."""
    if conflicts.empty:
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
