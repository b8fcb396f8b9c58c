"""`balanceit bench ...`: each benchmark prints its figures (and --json for scripts)."""

from __future__ import annotations

import typer

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print speed and quality figures. Most default to 1M rows: "
                                                      "minutes and several GB each (see each --help); "
                                                      "pass --rows to start small.")

# Each benchmark module registers its command on `bench_app` when imported; their heavy imports
# stay inside the commands, so `balanceit --help` stays fast.
from balanceit.benchmarks import features, ingest, score, serve, train  # noqa: E402,F401
from balanceit.benchmarks import cluster, interactive  # noqa: E402,F401
