"""`balanceit bench ...`: each benchmark prints its figures (and --json for scripts)."""

from __future__ import annotations

import typer

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print speed and quality figures.")
