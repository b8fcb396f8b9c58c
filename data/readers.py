"""Read an input file into a frame of text, whatever its format (contract section 4), so validation sees
what the user wrote (`007`, `3.50`), not what a reader guessed; an unparseable file is refused whole."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

TEXT = pd.StringDtype()
# pandas keeps "string" as Arrow large_string: text read so needs no cast (~0.4 s per million rows).
ARROW_TEXT = pa.large_string()
TEXT_TYPES = {ARROW_TEXT: TEXT}.get  # Arrow's text as pandas' (a `types_mapper`)


class FileRefused(Exception):
    """A file refused whole (contract section 4): nothing from it is written."""

    def __init__(self, file: str, problem: str, column: str | None = None):
        super().__init__(f"{file}: {problem}")
        self.file = file
        self.problem = problem
        self.column = column


@contextmanager
def system_allocator() -> Iterator[None]:
    """Arrow buffers allocated inside come from the C library's allocator, not mimalloc, which returns the
    column-sized buffers validation frees to the system and faults them in again (~0.3 s per million answers).
    Process-wide while it lasts, which is harmless: each buffer frees itself through its own allocator.
    """
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV (`.csv`, `.csv.gz`), Parquet or JSON Lines, chosen by extension, into text columns with
    normalised names, rows in file order."""
    path = Path(path)
    source = str(path)
    reader = next((read for suffix, read in _READERS.items() if path.name.lower().endswith(suffix)), None)
    if reader is None:
        raise FileRefused(source, f"unsupported file type (expected one of {', '.join(_READERS)})")
    try:
        if path.stat().st_size == 0:
            raise FileRefused(source, "file is empty")
        frame = reader(path, source)
    except (OSError, ValueError, UnicodeError, csv.Error, pa.ArrowException) as error:
        raise FileRefused(source, f"cannot be read: {error}") from error
    return normalise_column_names(frame, source)


def normalise_column_names(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Trim and lowercase column names (contract: names match case-insensitively); refuse clashes."""
    names = pd.Index([str(name).strip().lower() for name in frame.columns])
    clashes = names[names.duplicated()].unique()
    if len(clashes):
        raise FileRefused(source, f"column '{clashes[0]}' appears more than once", clashes[0])
    return frame.set_axis(names, axis=1)


def _read_csv(path: Path, source: str) -> pd.DataFrame:
    """Comma-separated UTF-8 (BOM allowed), optionally gzipped, every column read as text; on one thread,
    since with quoted newlines Arrow's parallel reader spends 1.5-3x the CPU."""
    compression = "gzip" if path.name.lower().endswith(".gz") else None
    # The header row first, so that every column can be declared text before parsing.
    with pa.input_stream(path, compression=compression) as stream:
        header = next(csv.reader(io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")), None)
    if not header:
        raise FileRefused(source, "file is empty")
    if any("\x00" in name for name in header):
        raise FileRefused(source, "binary data, not CSV text")
    with pa.input_stream(path, compression=compression) as stream:
        table = pa_csv.read_csv(
            stream,
            read_options=pa_csv.ReadOptions(use_threads=False),
            parse_options=pa_csv.ParseOptions(delimiter=",", newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: ARROW_TEXT for name in header},
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    return table.to_pandas(types_mapper=TEXT_TYPES)


def _read_parquet(path: Path, source: str) -> pd.DataFrame:
    """Parquet columns cast to text, so typed and text Parquet files are validated alike."""
    table = pq.read_table(path)
    columns = []
    for name, column in zip(table.column_names, table.columns):
        try:
            columns.append(pc.cast(column, ARROW_TEXT))
        except pa.ArrowException as error:
            raise FileRefused(source, f"column '{name}' cannot be read as text ({column.type})", name) from error
    return pa.Table.from_arrays(columns, names=table.column_names).to_pandas(types_mapper=TEXT_TYPES)


def _read_json_lines(path: Path, source: str) -> pd.DataFrame:
    """One JSON object per line; values of any JSON type become their text."""
    text = path.read_bytes().decode("utf-8-sig")
    frame = pd.read_json(io.StringIO(text), lines=True, dtype=False, precise_float=True)
    if not all(isinstance(name, str) for name in frame.columns):
        raise FileRefused(source, "not JSON Lines: each line must be a JSON object")
    return frame.astype(TEXT)


def visible_files(folder: Path) -> list[Path]:
    """The files a person put in `folder`, sorted; hidden ones (.DS_Store, an editor's swap file) left out,
    and none when there is no such folder."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


_READERS: dict[str, Callable[[Path, str], pd.DataFrame]] = {
    ".csv": _read_csv, ".csv.gz": _read_csv, ".parquet": _read_parquet,
    ".jsonl": _read_json_lines, ".ndjson": _read_json_lines, ".json": _read_json_lines,
}
