"""`balanceit bench train`: training with cross-validation on labelled rows, and its quality.

The labelled population is generated, validated and turned into features once (not timed). A fresh
process loads the feature table and times `train_model` with default settings: every candidate on
the same folds, the chosen one refit and measured on held-out rows beside the gradient-boosted peer,
and both measured against the generator's true risk (the ceiling).
"""

from __future__ import annotations

from typing import Annotated

import typer

from balanceit.benchmarks.cli import bench_app
from balanceit.benchmarks.common import (
    Figures, JsonOption, ProfileOption, SeedOption, ThreadsOption, WorkdirOption, fmt_mb, fmt_s, prepared, run_stage,
    section, work_folder,
)

SECONDS_TARGET = 180.0
HOLDOUT_METRICS = ("roc_auc", "brier", "ece")


def train_stage(folder: str) -> dict[str, object]:
    """Child: load the labelled feature table and time `train_model` with default settings."""
    from pathlib import Path

    import pandas as pd

    from balanceit.benchmarks.child import measured
    from balanceit.config import Settings
    from balanceit.models.train import train_model

    table = pd.read_parquet(Path(folder) / "training.parquet")
    labels = table.pop("label").astype(bool)
    true_risk = table.pop("true_risk")
    settings = Settings()
    with measured("train"):
        result = train_model(table, labels, settings, true_risk)
    cv = result.cross_validation.groupby("candidate").agg(
        cv_roc_auc=("roc_auc", "mean"), cv_roc_auc_sd=("roc_auc", "std"),
        fit_seconds_per_fold=("fit_seconds", "mean"), fit_seconds_total=("fit_seconds", "sum"))
    return {
        "rows": len(table), "cv_folds": settings.cv_folds, "holdout_fraction": settings.holdout_fraction,
        "chosen": result.chosen, "chosen_refit_seconds": result.fit_seconds,
        "candidates": cv.to_dict(orient="index"),
        "chosen_holdout": result.holdout_metrics, "peer_holdout": result.peer_holdout_metrics,
        "truth": result.truth_metrics,
    }


@bench_app.command("train")
def train(rows: Annotated[int, typer.Option(help="Labelled respondents to train on.")] = 200_000,
          seed: SeedOption = 0, workdir: WorkdirOption = None, profile: ProfileOption = None,
          threads: ThreadsOption = None, as_json: JsonOption = False) -> None:
    """Training with cross-validation (train_model, default settings): seconds, CV and held-out quality.

    At the defaults (200,000 rows) training takes about a minute after the data are generated.
    """
    from balanceit.config import Settings

    figures = Figures("balanceit bench train")
    window_days = Settings().activity_window_days
    name = f"train-r{rows}-s{seed}"
    with work_folder(workdir, name) as folder:
        prepared(folder, "generate", "balanceit.benchmarks.inputs:write_population",
                 folder=str(folder), rows=rows, seed=seed, labelled=True)
        prepared(folder, "validate", "balanceit.benchmarks.inputs:validate_files", folder=str(folder))
        labelled = prepared(folder, "features", "balanceit.benchmarks.inputs:labelled_features",
                            folder=str(folder), window_days=window_days)
        answer = run_stage("balanceit.benchmarks.train:train_stage", profile=profile, threads=threads,
                           folder=str(folder))

    result = answer["result"]
    measured_section = section(answer, "train")
    seconds = measured_section["seconds"]
    figures.title = (f"balanceit bench train: {result['rows']:,} labelled rows, "
                     f"{result['cv_folds']}-fold CV, {len(result['candidates'])} candidates")
    figures.target("train_seconds", "total seconds (train_model)", seconds, f"<= {SECONDS_TARGET:.0f} s",
                   seconds <= SECONDS_TARGET, fmt_s(seconds))
    figures.add("peak memory", fmt_mb(measured_section["peak_mb"]))
    figures.heading("cross-validation (training part, mean over folds)")
    for candidate, cv in result["candidates"].items():
        chosen = " (chosen)" if candidate == result["chosen"] else ""
        figures.add(f"{candidate}{chosen}: CV AUC", f"{cv['cv_roc_auc']:.4f} ± {cv['cv_roc_auc_sd']:.4f}")
        figures.add(f"{candidate}: fit s per fold / all folds",
                    f"{cv['fit_seconds_per_fold']:.2f} / {cv['fit_seconds_total']:.1f}")
    figures.add(f"{result['chosen']}: refit on the training part", fmt_s(result["chosen_refit_seconds"]))
    fitting = sum(cv["fit_seconds_total"] for cv in result["candidates"].values()) + result["chosen_refit_seconds"]
    figures.add("rest (CV predictions, peer refit, held-out metrics)", fmt_s(seconds - fitting))
    holdout_rows = int(result["chosen_holdout"].get("n", 0))
    figures.heading(f"held-out rows ({holdout_rows:,})")
    for label, metrics in ((f"chosen ({result['chosen']})", result["chosen_holdout"]),
                           ("peer (plain HistGradientBoosting)", result["peer_holdout"])):
        shown = " / ".join(f"{metrics[m]:.4f}" for m in HOLDOUT_METRICS)
        figures.add(f"{label}: AUC / Brier / ECE", shown)
    truth = result["truth"]
    if truth:
        figures.heading("against the generator's truth (held-out rows)")
        figures.add("ceiling AUC (true risk)", f"{truth['ceiling_roc_auc']:.4f}")
        figures.add(f"chosen ({result['chosen']}): share of ceiling", f"{truth['share_of_ceiling']:.2%}")
        figures.add("peer (HistGradientBoosting): share of ceiling", f"{truth['peer_share_of_ceiling']:.2%}")
    figures.data = {"rows": rows, "seed": seed, "input": labelled, **result, "seconds": seconds,
                    "peak_mb": measured_section["peak_mb"]}
    figures.notes.append("train_model runs in a fresh process on a feature table built beforehand (not timed)")
    figures.finish(as_json, threads, profile)
