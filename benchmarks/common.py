"""Shared pieces of the benchmark commands: stages in fresh processes, work folders, printed figures.

This module is imported by the command modules at start-up, so it imports nothing heavy: the
parent process stays small and every measured stage runs in its own interpreter (see `child`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from balanceit.benchmarks.child import PROFILE_ENV

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")]
WorkdirOption = Annotated[Path | None, typer.Option(
    "--workdir", help="Keep generated inputs in this folder and reuse them on the next run "
                      "(default: a temporary folder, removed afterwards).")]
ProfileOption = Annotated[Path | None, typer.Option(
    "--profile", help="Write a cProfile of each measured section (<name>.prof, <name>.txt) into this folder.")]
SeedOption = Annotated[int, typer.Option(help="Seed of the generated population.")]
ThreadsOption = Annotated[int | None, typer.Option(
    "--threads", help="Cap OpenMP/BLAS threads in the measured processes (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, "
                      "MKL_NUM_THREADS); default: the libraries' own choice (all cores).")]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

GB = 1024.0  # MB per GB
MEMORY_TARGET_MB = 4 * GB


class StageFailed(RuntimeError):
    """A benchmark stage's child process failed; the message ends with its stderr."""


def run_stage(function: str, profile: Path | None = None, threads: int | None = None,
              **kwargs: Any) -> dict[str, Any]:
    """Run `module:function(**kwargs)` in a fresh interpreter and return what the child reports.

    The answer has `result` (the function's return value), `sections` (seconds and peak memory of
    each `measured` section) and `process_peak_mb` (the child's peak over its whole life).
    """
    env = dict(os.environ)
    if threads is not None:
        env.update({name: str(threads) for name in THREAD_VARIABLES})
    if profile is not None:
        env[PROFILE_ENV] = str(Path(profile).resolve())
    with tempfile.TemporaryDirectory(prefix="balanceit-bench-") as folder:
        out = Path(folder) / "result.json"
        spec = json.dumps({"function": function, "kwargs": kwargs, "out": str(out)}, default=str)
        done = subprocess.run([sys.executable, "-m", "balanceit.benchmarks.child", spec],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0 or not out.exists():
            raise StageFailed(f"stage {function} failed (exit code {done.returncode}):\n{done.stderr[-4000:]}")
        return json.loads(out.read_text())


@contextmanager
def work_folder(workdir: Path | None, name: str) -> Iterator[Path]:
    """`workdir/name` kept for reuse when a workdir is given, else a temporary folder removed afterwards."""
    if workdir is not None:
        folder = Path(workdir).resolve() / name
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    folder = Path(tempfile.mkdtemp(prefix=f"balanceit-bench-{name}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def prepared(where: Path, step: str, function: str, **kwargs: Any) -> dict[str, Any]:
    """Run a preparation stage once per work folder: its result is kept in `where/.step.json` and reused."""
    marker = where / f".{step}.json"
    if marker.exists():
        return json.loads(marker.read_text())
    result = run_stage(function, **kwargs)["result"]
    marker.write_text(json.dumps(result, default=str))
    return result


def section(answer: dict[str, Any], name: str) -> dict[str, float]:
    return answer["sections"][name]


@dataclass
class Figures:
    """The rows of one benchmark's table and the JSON object behind it."""

    title: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    load_at_start: float = field(default_factory=lambda: _load_average())

    def machine(self, threads: int | None) -> None:
        """Note the CPUs, the thread cap and the load average: other jobs on the machine skew timings."""
        load_now = _load_average()
        self.data["machine"] = {"cpus": os.cpu_count(), "threads": threads,
                                "load_average_at_start": self.load_at_start, "load_average_at_end": load_now}
        cap = f"OpenMP/BLAS threads capped at {threads}" if threads else "library default threads"
        busy = " (above the CPU count: other jobs were competing for the CPUs)" if max(
            self.load_at_start, load_now) > (os.cpu_count() or 1) else ""
        self.notes.append(f"{os.cpu_count()} CPUs, {cap}; 1-minute load average {self.load_at_start:.1f} at start, "
                          f"{load_now:.1f} at end{busy}")

    def add(self, label: str, value: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append((label, value, target, "" if met is None else ("yes" if met else "NO")))

    def target(self, key: str, label: str, value: float, text: str, met: bool, shown: str) -> None:
        self.targets[key] = {"value": value, "target": text, "met": bool(met)}
        self.add(label, shown, text, met)

    def heading(self, label: str) -> None:
        self.rows.append((f"[bold]{label}[/]", "", "", ""))

    def finish(self, as_json: bool, threads: int | None = None, profile: Path | None = None) -> None:
        """Note where profiles went and what the machine was doing, then print."""
        if profile is not None:
            self.notes.append(f"profiles written to {profile}")
        self.machine(threads)
        self.emit(as_json)

    def emit(self, as_json: bool) -> None:
        if as_json:
            print(json.dumps({**self.data, "targets": self.targets, "notes": self.notes}, default=_plain))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=self.title, title_justify="left", show_lines=False)
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_column("target", justify="right")
        table.add_column("met", justify="center")
        for label, value, target, met in self.rows:
            style = "red" if met == "NO" else None
            table.add_row(label, value, target, met, style=style)
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)  # piped or captured: wide enough that labels do not wrap
        console.print(table)
        for note in self.notes:
            console.print(f"  note: {note}", highlight=False, soft_wrap=True)


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def rate(rows: float, seconds: float) -> float:
    return rows / seconds if seconds > 0 else float("inf")


def fmt_rate(value: float) -> str:
    return f"{value:,.0f} rows/s"


def fmt_mb(mb: float) -> str:
    return f"{mb / GB:.2f} GB" if mb >= GB else f"{mb:,.0f} MB"


def fmt_s(seconds: float) -> str:
    return f"{seconds:,.2f} s"


def fail(message: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"status": "error", "message": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
