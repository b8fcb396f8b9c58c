"""`balanceit bench cli`: the command line as a new user meets it, each command in a fresh process.

Not timed: a workspace with a champion (`balanceit demo`), and two generated batches (1,000 rows and
`--large-rows`), each copied once per run with its respondent ids prefixed, so every first scoring
scores people the warehouse has never seen.

Timed (wall clock of the whole `balanceit` process, the median of `--repeats` runs):
  * `balanceit explain ID` and `balanceit models`;
  * `balanceit score FILE --output FILE` of 1,000 rows and of the large batch: marginal rows/s =
    (large - 1000) / (t(large) - t(1000));
  * the same large batch scored again (its rows, scores and explanations already in the warehouse),
    beside its first scoring.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from balanceit.benchmarks.cli import bench_app
from balanceit.benchmarks.common import Figures, JsonOption, WorkdirOption, fail, fmt_rate, fmt_s, work_folder

INTERACTIVE_TARGET_S = 1.5  # explain, models
SMALL_ROWS = 1000
SMALL_SCORE_TARGET_S = 6.0
MARGINAL_TARGET = 40_000  # rows/s
RESCORE_ALLOWANCE = 1.1  # a re-scoring within 10% of the first counts as no slower (timing noise)


def _balanceit(home: Path, *arguments: str) -> float:
    """Seconds one `balanceit` command takes in a fresh process (it must succeed)."""
    command = [str(Path(sys.executable).with_name("balanceit")), "--home", str(home), *arguments]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments)} failed (exit code {done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def _batch_copy(source: Path, target: Path, prefix: str) -> Path:
    """The batch with every respondent id prefixed: the same answers, people new to the warehouse."""
    import duckdb

    if not target.exists():
        duckdb.execute(f"""COPY (SELECT * REPLACE ('{prefix}' || respondent_id AS respondent_id)
                               FROM read_csv('{source}', all_varchar = true))
                           TO '{target}' (FORMAT csv, HEADER)""")
    return target


def _generated(folder: Path, rows: int, seed: int) -> Path:
    out = folder / f"batch-{rows}"
    if not (out / "questionnaire.csv").exists():
        _balanceit(folder / "generator-home", "generate", "--rows", str(rows), "--seed", str(seed), "--out", str(out))
    return out / "questionnaire.csv"


@bench_app.command("cli")
def bench_cli(large_rows: Annotated[int, typer.Option(help="Rows of the large batch.")] = 100_000,
              repeats: Annotated[int, typer.Option(help="Fresh-process runs per figure (the median is shown).")] = 5,
              demo_rows: Annotated[int, typer.Option(help="Rows of the demo that makes the champion.")] = 3000,
              workdir: WorkdirOption = None, as_json: JsonOption = False) -> None:
    """Seconds of explain, models and a 1,000-row score; the marginal scoring rate; re-scoring a batch."""
    figures = Figures(f"balanceit bench cli: fresh processes, median of {repeats}")
    with work_folder(workdir, "cli") as folder:
        home = folder / "workspace"
        try:
            if not (home / "exports" / "demo-scores.csv").exists():
                _balanceit(home, "demo", "--rows", str(demo_rows))
            with open(home / "exports" / "demo-scores.csv") as scores:
                header = scores.readline().rstrip("\n").split(",")
                person = scores.readline().split(",")[header.index("respondent_id")]
            small, large = _generated(folder, SMALL_ROWS, 101), _generated(folder, large_rows, 102)
            explain = [_balanceit(home, "explain", person) for _ in range(repeats)]
            models = [_balanceit(home, "models") for _ in range(repeats)]
            small_runs, large_runs, again_runs = [], [], []
            for run in range(repeats):
                stamp = f"r{run}-{time.time_ns()}-"
                small_runs.append(_balanceit(home, "score", str(_batch_copy(small, folder / f"{stamp}small.csv", stamp)),
                                             "--output", str(folder / "small-scores.csv")))
                batch = _batch_copy(large, folder / f"{stamp}large.csv", stamp)
                large_runs.append(_balanceit(home, "score", str(batch), "--output", str(folder / "large-scores.csv")))
                again_runs.append(_balanceit(home, "score", str(batch), "--output", str(folder / "large-scores.csv")))
        except RuntimeError as problem:
            fail(str(problem), as_json)
    seconds = {name: statistics.median(runs) for name, runs in
               (("explain", explain), ("models", models), ("score_small", small_runs),
                ("score_large", large_runs), ("score_again", again_runs))}
    marginal = (large_rows - SMALL_ROWS) / max(seconds["score_large"] - seconds["score_small"], 1e-9)
    figures.data.update({"seconds": seconds, "runs": {"explain": explain, "models": models, "score_small": small_runs,
                                                      "score_large": large_runs, "score_again": again_runs},
                         "large_rows": large_rows, "marginal_rows_per_s": marginal})
    for key, label in (("explain", "balanceit explain ID"), ("models", "balanceit models")):
        figures.target(key, label, seconds[key], f"< {INTERACTIVE_TARGET_S} s",
                       seconds[key] < INTERACTIVE_TARGET_S, fmt_s(seconds[key]))
    figures.target("score_small", f"balanceit score of {SMALL_ROWS:,} rows --output", seconds["score_small"],
                   f"< {SMALL_SCORE_TARGET_S:.0f} s", seconds["score_small"] < SMALL_SCORE_TARGET_S,
                   fmt_s(seconds["score_small"]))
    figures.add(f"balanceit score of {large_rows:,} rows --output", fmt_s(seconds["score_large"]))
    figures.target("marginal", f"marginal rate between {SMALL_ROWS:,} and {large_rows:,} rows", marginal,
                   f">= {fmt_rate(MARGINAL_TARGET)}", marginal >= MARGINAL_TARGET, fmt_rate(marginal))
    ratio = seconds["score_again"] / seconds["score_large"]
    figures.target("rescore", f"the {large_rows:,} rows scored again, beside the first scoring", ratio,
                   f"<= {RESCORE_ALLOWANCE:.1f}x", ratio <= RESCORE_ALLOWANCE,
                   f"{fmt_s(seconds['score_again'])} ({ratio:.2f}x)")
    figures.finish(as_json)
