"""Benchmark inputs from the project's generator, written once before anything is timed.

These functions run in child processes (`common.run_stage`), so the generated frames never sit in
the parent's memory. Files: `questionnaire.csv` and `activity.csv` as a user exports them,
`truth.parquet` (what generated them), and after `validate_files` the canonical accepted frames as
`questionnaire.parquet` and `activity.parquet`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SHIFT_DAYS = 64  # > the longest stretch of one person's wearable days, so shifted copies never collide
TRUTH_COLUMNS = ("respondent_id", "submitted_at", "imbalance", "true_risk", "true_top_factor",
                 "true_top_factor_clear")


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """CSV with empty cells for missing values, written by Arrow (much faster than pandas at 10M rows)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    table = pa.Table.from_pandas(frame, preserve_index=False)
    pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(quoting_style="needed"))


def sized_activity(activity: pd.DataFrame, days: int | None) -> pd.DataFrame:
    """Exactly `days` activity rows: the first ones, or the frame tiled with dates shifted back.

    A shifted copy keeps (respondent_id, date) unique and looks like earlier months of the same
    wearers, so the wearable window joins it and then drops it as outside the window.
    """
    if days is None:
        return activity
    if days <= len(activity):
        return activity.iloc[:days].reset_index(drop=True)
    if activity.empty:
        raise ValueError("the generated population has no wearable days to tile")
    dates = pd.to_datetime(activity["date"], format="%Y-%m-%d")
    pieces = [activity]
    for copy in range(1, -(-days // len(activity))):
        shifted = (dates - pd.Timedelta(days=SHIFT_DAYS * copy)).dt.strftime("%Y-%m-%d")
        pieces.append(activity.assign(date=shifted.astype(activity["date"].dtype)))
    return pd.concat(pieces, ignore_index=True).iloc[:days].reset_index(drop=True)


def write_population(folder: str, rows: int, seed: int, labelled: bool,
                     activity_days: int | None = None) -> dict[str, int]:
    """Generate `rows` people and write questionnaire.csv, activity.csv and truth.parquet into `folder`."""
    from balanceit.data.synthetic import generate

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    population = generate(rows, seed=seed, labelled=labelled)
    generated_days = len(population.activity)
    activity = sized_activity(population.activity, activity_days)
    write_csv(population.questionnaire, out / "questionnaire.csv")
    write_csv(activity, out / "activity.csv")
    population.truth[list(TRUTH_COLUMNS)].to_parquet(out / "truth.parquet", index=False)
    return {"questionnaire_rows": len(population.questionnaire), "activity_days": len(activity),
            "generated_activity_days": generated_days,
            "questionnaire_csv_mb": (out / "questionnaire.csv").stat().st_size / 2**20,
            "activity_csv_mb": (out / "activity.csv").stat().st_size / 2**20}


def validate_files(folder: str) -> dict[str, int]:
    """Validate questionnaire.csv and activity.csv once; keep the accepted canonical frames as Parquet."""
    from balanceit.data.validation import load_activity, load_questionnaire

    out = Path(folder)
    counts = {}
    for name, load in (("questionnaire", load_questionnaire), ("activity", load_activity)):
        validated = load(out / f"{name}.csv")
        validated.accepted.to_parquet(out / f"{name}.parquet", index=False)
        counts[f"{name}_accepted"] = len(validated.accepted)
        counts[f"{name}_quarantined_rows"] = validated.quarantined_rows
        del validated
    return counts


def labelled_features(folder: str, window_days: int) -> dict[str, int]:
    """Features of the validated frames with the label and the generator's true risk, row for row.

    Writes `training.parquet`: the feature table plus `label` and `true_risk`.
    """
    from balanceit.data.contract import LABEL, QUESTIONNAIRE_KEY
    from balanceit.features.build import features_for_frames

    out = Path(folder)
    answers = pd.read_parquet(out / "questionnaire.parquet")
    activity = pd.read_parquet(out / "activity.parquet")
    features = features_for_frames(answers, activity, window_days)
    key = list(QUESTIONNAIRE_KEY)
    truth = read_truth(out)
    aligned = (features[key]
               .merge(answers[[*key, LABEL]], on=key, how="left")
               .merge(truth[[*key, "true_risk"]], on=key, how="left"))
    features["label"] = aligned[LABEL].to_numpy()
    features["true_risk"] = aligned["true_risk"].to_numpy()
    labelled = features[features["label"].notna()].reset_index(drop=True)
    labelled.to_parquet(out / "training.parquet", index=False)
    return {"rows": len(labelled), "positive_rate": float(labelled["label"].astype(float).mean())}


def read_truth(folder: Path) -> pd.DataFrame:
    """The generator's truth with `submitted_at` as a timestamp, ready to join on the key."""
    truth = pd.read_parquet(Path(folder) / "truth.parquet")
    truth["submitted_at"] = pd.to_datetime(truth["submitted_at"]).astype("datetime64[us]")
    return truth
