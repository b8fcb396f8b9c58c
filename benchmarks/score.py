"""`balanceit bench score`: end-to-end scoring with explanations and what-ifs, beside the plain script.

Not timed: a labelled training population and a new batch are generated, validated and kept as
canonical Parquet frames; balanceit's additive model and the plain script's HistGradientBoosting
model are fitted once on the same training rows and features.

Timed, each in a fresh process:
  * `score_frames` (features, risk, drivers, signs, what-ifs) on the first 1,000 rows and on all N:
    marginal rows/s = (N - 1000) / (t(N) - t(1000)), fixed start-up = t(1000) - 1000 / marginal;
    after it, the features alone of the N rows (the script below starts from the feature table);
  * the bare model's `predict_proba` on the model input;
  * the plain script a data scientist would write on the same N rows' feature table: pandas
    encoding + `HistGradientBoostingClassifier.predict_proba` + `shap.TreeExplainer` top-3 features per
    row (TreeSHAP on a subset when N is large; its rows/s is then extrapolated to N).

Quality beside it: AUC against the generator's ceiling for both, and whether the explanations name
the true top factor (balanceit's drivers via `explanation_agreement`; the script's top-3 |SHAP|
catalogue features), and how often the script's top-3 are symptoms (pain, posture) rather than causes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from balanceit.benchmarks.cli import bench_app
from balanceit.benchmarks.common import (
    MEMORY_TARGET_MB, Figures, JsonOption, ProfileOption, SeedOption, ThreadsOption, WorkdirOption, fail, fmt_mb,
    fmt_rate, fmt_s, prepared, rate, run_stage, section, work_folder,
)

MARGINAL_TARGET = 25_000  # rows/s
RATIO_TARGET = 10.0  # balanceit marginal rows/s over the plain script's rows/s
KEY = ["respondent_id", "submitted_at"]
SCRIPT_DRIVERS = 3


# ---------------------------------------------------------------- preparation (child processes)

def fit_models(folder: str, model_name: str, seed: int) -> dict[str, Any]:
    """Fit balanceit's model and the plain script's HistGradientBoosting on the same training rows."""
    import time

    import joblib
    import pandas as pd
    from sklearn.base import clone
    from sklearn.ensemble import HistGradientBoostingClassifier

    from balanceit.features.catalogue import model_input
    from balanceit.models.train import candidates

    out = Path(folder)
    table = pd.read_parquet(out / "train" / "training.parquet")
    labels = table["label"].astype(int).to_numpy()
    started = time.perf_counter()
    model = clone(candidates(seed)[model_name]).fit(model_input(table), labels)
    model_seconds = time.perf_counter() - started
    joblib.dump(model, out / "model.joblib")

    categories = script_categories(table)
    started = time.perf_counter()
    booster = HistGradientBoostingClassifier().fit(script_matrix(table, categories), labels)
    script_seconds = time.perf_counter() - started
    joblib.dump({"model": booster, "categories": categories}, out / "script.joblib")
    return {"training_rows": len(table), "model": model_name, "model_fit_seconds": model_seconds,
            "script_fit_seconds": script_seconds, "script_boosting_iterations": int(booster.n_iter_)}


def prepare_batch(folder: str, small_rows: int, window_days: int) -> dict[str, int]:
    """The first `small_rows` answers (and their activity) apart, and the whole batch's feature table."""
    import pandas as pd

    from balanceit.features.build import features_for_frames

    batch = Path(folder) / "batch"
    answers = pd.read_parquet(batch / "questionnaire.parquet")
    activity = pd.read_parquet(batch / "activity.parquet")
    small = answers.iloc[:small_rows].reset_index(drop=True)
    small.to_parquet(batch / "questionnaire-small.parquet", index=False)
    small_activity = activity[activity["respondent_id"].isin(set(small["respondent_id"]))]
    small_activity.reset_index(drop=True).to_parquet(batch / "activity-small.parquet", index=False)
    features = features_for_frames(answers, activity, window_days)  # sorted by key, as the query returns it
    features.to_parquet(batch / "features.parquet", index=False)
    return {"rows": len(answers), "activity_days": len(activity), "small_rows": len(small),
            "small_activity_days": len(small_activity)}


# ---------------------------------------------------------------- the plain script's pieces

def script_categories(table) -> dict[str, list]:
    """Each categorical feature column's levels as seen in training (the script's ordinal codes)."""
    import pandas as pd

    from balanceit.features.catalogue import model_columns

    return {c.name: list(pd.Categorical(table[c.name].dropna()).categories)
            for c in model_columns() if c.encoding == "category"}


def script_matrix(features, categories: dict[str, list]):
    """The feature columns as numbers: categories as ordinal codes (unknown or missing -> NaN).

    Codes rather than HistGradientBoosting's native categorical splits, because shap's TreeExplainer
    does not follow categorical splits (its values then do not add up to the model's output).
    """
    import numpy as np
    import pandas as pd

    from balanceit.features.catalogue import model_columns

    columns = {}
    for column in model_columns():
        values = features[column.name]
        if column.name in categories:
            codes = pd.Categorical(values, categories=categories[column.name]).codes.astype(float)
            columns[column.name] = np.where(codes < 0, np.nan, codes)
        else:
            columns[column.name] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return pd.DataFrame(columns, index=features.index)


def catalogue_grouping():
    """(model columns x catalogue features) 0/1 matrix, and the catalogue feature names."""
    import numpy as np

    from balanceit.features.catalogue import CATALOGUE, model_columns

    names = [c.name for c in model_columns()]
    grouping = np.zeros((len(names), len(CATALOGUE)))
    for j, feature in enumerate(CATALOGUE):
        for column in feature.column_names:
            grouping[names.index(column), j] = 1.0
    return grouping, np.array([f.name for f in CATALOGUE], dtype=object)


# ---------------------------------------------------------------- measured stages (child processes)

def score_stage(folder: str, answers: str, activity: str, save: bool) -> dict[str, Any]:
    """Child: load the model and one partition, then time `score_frames` on it."""
    import joblib
    import pandas as pd

    from balanceit.benchmarks.child import measured
    from balanceit.config import Settings
    from balanceit.models.score import score_frames

    out = Path(folder)
    settings = Settings()
    with measured("model_load"):
        model = joblib.load(out / "model.joblib")
    frame = pd.read_parquet(out / "batch" / answers)
    days = pd.read_parquet(out / "batch" / activity)
    with measured("score"):
        scored = score_frames(model, frame, days, settings)
    shape = {"scored_rows": len(scored), "output_columns": scored.shape[1],
             "whatif_columns": sum(c.startswith("whatif_") for c in scored.columns)}
    if save:
        kept = [*KEY, "risk", "band", "driver_1", "driver_2", "driver_3"]
        scored[kept].to_parquet(out / "scored.parquet", index=False)
        del scored
        # For comparison with the script (timed from the feature table): the features alone.
        from balanceit.features.build import features_for_frames

        with measured("features_only"):
            features_for_frames(frame, days, settings.activity_window_days)
    return {"rows": len(frame), "activity_days": len(days), **shape}


def predict_stage(folder: str) -> dict[str, Any]:
    """Child: the bare model's predict_proba on the model input (built beforehand, not timed)."""
    import joblib
    import pandas as pd

    from balanceit.benchmarks.child import measured
    from balanceit.features.catalogue import model_input

    out = Path(folder)
    model = joblib.load(out / "model.joblib")
    X = model_input(pd.read_parquet(out / "batch" / "features.parquet"))
    with measured("predict"):
        model.predict_proba(X)
    return {"rows": len(X)}


def script_stage(folder: str, shap_rows: int) -> dict[str, Any]:
    """Child: the plain script on the feature table: encode + predict_proba on all rows, TreeSHAP top-3."""
    import joblib
    import numpy as np
    import pandas as pd
    import shap

    from balanceit.benchmarks.child import measured

    out = Path(folder)
    script = joblib.load(out / "script.joblib")
    booster, categories = script["model"], script["categories"]
    features = pd.read_parquet(out / "batch" / "features.parquet")
    grouping, names = catalogue_grouping()
    with measured("script_predict"):
        X = script_matrix(features, categories)
        risk = booster.predict_proba(X)[:, 1]
    subset = X.iloc[:shap_rows]
    with measured("script_shap"):
        explainer = shap.TreeExplainer(booster)
        values = np.asarray(explainer.shap_values(subset))
        per_feature = np.abs(values) @ grouping
        top = np.argsort(-per_feature, axis=1)[:, :SCRIPT_DRIVERS]
    logit = np.log(risk[:shap_rows]) - np.log1p(-risk[:shap_rows])
    additivity = float(np.max(np.abs(values.sum(axis=1) + np.ravel(explainer.expected_value)[0] - logit)))
    pd.DataFrame({**{k: features[k].to_numpy() for k in KEY}, "risk": risk}).to_parquet(
        out / "script-risk.parquet", index=False)
    drivers = {f"driver_{rank + 1}": names[top[:, rank]] for rank in range(SCRIPT_DRIVERS)}
    pd.DataFrame({**{k: features[k].to_numpy()[:shap_rows] for k in KEY}, **drivers}).to_parquet(
        out / "script-drivers.parquet", index=False)
    return {"rows": len(X), "shap_rows": len(subset), "shap_additivity_max_error": additivity}


def evaluate_stage(folder: str) -> dict[str, Any]:
    """Child: quality against the generator's truth, for balanceit and for the plain script."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from balanceit.benchmarks.inputs import read_truth
    from balanceit.features.catalogue import SIGNS
    from balanceit.models.evaluate import explanation_agreement

    out = Path(folder)
    truth = read_truth(out / "batch")
    scored = pd.read_parquet(out / "scored.parquet")
    script_risk = pd.read_parquet(out / "script-risk.parquet")
    script_drivers = pd.read_parquet(out / "script-drivers.parquet")

    def auc(frame: pd.DataFrame, column: str) -> float:
        joined = frame[[*KEY, column]].merge(truth[[*KEY, "imbalance"]], on=KEY)
        return float(roc_auc_score(joined["imbalance"].astype(int), joined[column]))

    ceiling = float(roc_auc_score(truth["imbalance"].astype(int), truth["true_risk"]))
    balanceit_auc, script_auc = auc(scored, "risk"), auc(script_risk, "risk")
    subset_keys = script_drivers[KEY]
    balanceit_subset = scored.merge(subset_keys, on=KEY)

    joined = script_drivers.merge(truth, on=KEY)
    drivers = joined[[f"driver_{rank + 1}" for rank in range(SCRIPT_DRIVERS)]]
    clear = joined["true_top_factor_clear"].astype(bool)
    top = joined["true_top_factor"]
    is_sign = drivers.isin(SIGNS)
    script_agreement = {
        "people_compared": int(len(joined)),
        "people_with_clear_top_factor": int(clear.sum()),
        "top_factor_among_drivers": float(drivers.eq(top, axis=0).any(axis=1)[clear].mean()),
        "top_factor_is_driver_1": float((joined["driver_1"] == top)[clear].mean()),
        "share_with_sign_among_drivers": float(is_sign.any(axis=1).mean()),
        "share_of_driver_slots_that_are_signs": float(np.asarray(is_sign).mean()),
        "share_with_sign_as_driver_1": float(is_sign["driver_1"].mean()),
    }
    return {
        "ceiling_roc_auc": ceiling,
        "balanceit_roc_auc": balanceit_auc, "balanceit_share_of_ceiling": balanceit_auc / ceiling,
        "script_roc_auc": script_auc, "script_share_of_ceiling": script_auc / ceiling,
        "balanceit_agreement": explanation_agreement(scored, truth),
        "balanceit_agreement_on_shap_rows": explanation_agreement(balanceit_subset, truth),
        "script_agreement": script_agreement,
    }


# ---------------------------------------------------------------- the command

@bench_app.command("score")
def score(rows: Annotated[int, typer.Option(help="Rows N of the new batch to score.")] = 1_000_000,
          small_rows: Annotated[int, typer.Option(help="Rows of the small run (start-up estimate).")] = 1_000,
          train_rows: Annotated[int, typer.Option(help="Labelled rows both models are fitted on.")] = 50_000,
          shap_rows: Annotated[int, typer.Option(
              help="Rows the script's TreeSHAP is timed on (its rows/s is extrapolated to N).")] = 20_000,
          model: Annotated[str, typer.Option(help="balanceit candidate to score with.")] = "additive_spline",
          seed: SeedOption = 0, workdir: WorkdirOption = None, profile: ProfileOption = None,
          threads: ThreadsOption = None, as_json: JsonOption = False) -> None:
    """End-to-end scoring rows/s (explanations and what-ifs included) beside the plain SHAP script.

    At the defaults (1M rows) this takes many minutes (training both models, the script's SHAP) and
    peaks near 3.7 GB; --rows 200000 peaks near 1 GB.
    """
    from balanceit.config import Settings

    figures = Figures("balanceit bench score")
    if rows <= small_rows:
        fail(f"--rows ({rows}) must be larger than --small-rows ({small_rows})", as_json)
    if model not in ("additive_spline", "logistic_linear"):
        fail("--model must be additive_spline or logistic_linear (the explainable candidates)", as_json)
    shap_rows = min(shap_rows, rows)
    window_days = Settings().activity_window_days
    name = f"score-r{rows}-k{small_rows}-t{train_rows}-{model}-s{seed}"
    with work_folder(workdir, name) as folder:
        train_folder, batch_folder = folder / "train", folder / "batch"
        prepared(folder, "generate-train", "balanceit.benchmarks.inputs:write_population",
                 folder=str(train_folder), rows=train_rows, seed=seed + 1, labelled=True)
        prepared(folder, "validate-train", "balanceit.benchmarks.inputs:validate_files", folder=str(train_folder))
        prepared(folder, "features-train", "balanceit.benchmarks.inputs:labelled_features",
                 folder=str(train_folder), window_days=window_days)
        fitted = prepared(folder, "fit", "balanceit.benchmarks.score:fit_models",
                          folder=str(folder), model_name=model, seed=seed)
        prepared(folder, "generate-batch", "balanceit.benchmarks.inputs:write_population",
                 folder=str(batch_folder), rows=rows, seed=seed + 2, labelled=False)
        prepared(folder, "validate-batch", "balanceit.benchmarks.inputs:validate_files", folder=str(batch_folder))
        batch = prepared(folder, "prepare-batch", "balanceit.benchmarks.score:prepare_batch",
                         folder=str(folder), small_rows=small_rows, window_days=window_days)

        stage = "balanceit.benchmarks.score:"
        small = run_stage(stage + "score_stage", profile=profile, threads=threads, folder=str(folder),
                          answers="questionnaire-small.parquet", activity="activity-small.parquet", save=False)
        large = run_stage(stage + "score_stage", profile=profile, threads=threads, folder=str(folder),
                          answers="questionnaire.parquet", activity="activity.parquet", save=True)
        bare = run_stage(stage + "predict_stage", profile=profile, threads=threads, folder=str(folder))
        script = run_stage(stage + "script_stage", profile=profile, threads=threads, folder=str(folder),
                           shap_rows=shap_rows)
        quality = run_stage(stage + "evaluate_stage", folder=str(folder))["result"]

    figures.title = (f"balanceit bench score: N = {rows:,} rows (and {small_rows:,}), "
                     f"models fitted on {fitted['training_rows']:,} rows")
    t_small, t_large = section(small, "score")["seconds"], section(large, "score")["seconds"]
    n_small, n_large = small["result"]["rows"], large["result"]["rows"]
    marginal = rate(n_large - n_small, t_large - t_small)
    startup = t_small - n_small / marginal
    peak = section(large, "score")["peak_mb"]
    predict_seconds = section(bare, "predict")["seconds"]
    script_predict = section(script, "script_predict")["seconds"]
    script_shap = section(script, "script_shap")["seconds"]
    shap_n = script["result"]["shap_rows"]
    script_seconds_n = script_predict + script_shap * n_large / shap_n
    script_rate = rate(n_large, script_seconds_n)
    ratio = marginal / script_rate

    figures.heading(f"balanceit score_frames (features, risk, drivers, signs, what-ifs; model {model})")
    figures.add("model load (joblib)", fmt_s(section(small, "model_load")["seconds"]))
    figures.add(f"t({n_small:,}) first call in a fresh process", fmt_s(t_small))
    figures.add(f"t({n_large:,})", fmt_s(t_large))
    figures.add("fixed start-up: t(1000) - 1000 / marginal", fmt_s(startup))
    figures.target("marginal_rows_per_second", "marginal rows/s: (N - 1000) / (t(N) - t(1000))", marginal,
                   f">= {MARGINAL_TARGET:,}", marginal >= MARGINAL_TARGET, fmt_rate(marginal))
    figures.add("end-to-end rows/s at N: N / t(N)", fmt_rate(rate(n_large, t_large)))
    features_only = section(large, "features_only")["seconds"]
    figures.add("of t(N): the features alone (separate call)", fmt_s(features_only))
    figures.add("rows/s at N without the features", fmt_rate(rate(n_large, t_large - features_only)))
    figures.add("inputs resident before the call at N", fmt_mb(section(large, "score")["rss_before_mb"]))
    figures.target("score_peak_memory_mb", "peak memory at N (inputs included)", peak, "< 4 GB",
                   peak < MEMORY_TARGET_MB, fmt_mb(peak))
    figures.add("bare model predict_proba on model input", fmt_rate(rate(bare["result"]["rows"], predict_seconds)))

    figures.heading("plain script: pandas + HistGradientBoostingClassifier + shap.TreeExplainer top-3")
    figures.add(f"encode + predict_proba, {n_large:,} rows", f"{fmt_s(script_predict)} "
                f"({fmt_rate(rate(n_large, script_predict))})")
    figures.add(f"TreeSHAP + top-3, {shap_n:,} rows", f"{fmt_s(script_shap)} ({fmt_rate(rate(shap_n, script_shap))})")
    figures.add(f"script total for N rows{' (SHAP extrapolated)' if shap_n < n_large else ''}",
                fmt_s(script_seconds_n))
    figures.add("script rows/s", fmt_rate(script_rate))
    figures.target("ratio_to_script", "balanceit marginal / script rows/s", ratio, f">= {RATIO_TARGET:.0f}x",
                   ratio >= RATIO_TARGET, f"{ratio:,.1f}x")
    figures.add("script peak memory (predict / SHAP)",
                f"{fmt_mb(section(script, 'script_predict')['peak_mb'])} / "
                f"{fmt_mb(section(script, 'script_shap')['peak_mb'])}")

    figures.heading("quality against the generator's truth (batch rows)")
    figures.add("ceiling AUC (true risk)", f"{quality['ceiling_roc_auc']:.4f}")
    figures.add("balanceit AUC (share of ceiling)",
                f"{quality['balanceit_roc_auc']:.4f} ({quality['balanceit_share_of_ceiling']:.1%})")
    figures.add("script AUC (share of ceiling)",
                f"{quality['script_roc_auc']:.4f} ({quality['script_share_of_ceiling']:.1%})")
    ours, ours_subset, theirs = (quality["balanceit_agreement"], quality["balanceit_agreement_on_shap_rows"],
                                 quality["script_agreement"])
    figures.heading(f"explanations: people with a clear true top factor ({ours['people_with_clear_top_factor']:,} "
                    f"of {ours['people_compared']:,}; {theirs['people_with_clear_top_factor']:,} of the "
                    f"{theirs['people_compared']:,} SHAP rows)")
    figures.add("balanceit: top factor among drivers / is driver 1 (all rows)",
                f"{ours['top_factor_among_drivers']:.1%} / {ours['top_factor_is_driver_1']:.1%}")
    figures.add("balanceit: the same on the SHAP rows",
                f"{ours_subset['top_factor_among_drivers']:.1%} / {ours_subset['top_factor_is_driver_1']:.1%}")
    figures.add("script: top factor among top-3 |SHAP| / is the 1st",
                f"{theirs['top_factor_among_drivers']:.1%} / {theirs['top_factor_is_driver_1']:.1%}")
    figures.add("balanceit: people with a symptom among drivers", f"{ours['share_with_sign_among_drivers']:.1%}")
    figures.add("script: share of top-3 slots that are symptoms",
                f"{theirs['share_of_driver_slots_that_are_signs']:.1%}")
    figures.add("script: people with a symptom among top-3 / as the 1st",
                f"{theirs['share_with_sign_among_drivers']:.1%} / {theirs['share_with_sign_as_driver_1']:.1%}")

    figures.data = {
        "rows": n_large, "small_rows": n_small, "train_rows": fitted["training_rows"], "model": model,
        "seed": seed, "fitted": fitted, "batch": batch,
        "balanceit": {
            "model_load_seconds": section(small, "model_load")["seconds"],
            "seconds_small": t_small, "seconds_n": t_large, "startup_seconds": startup,
            "marginal_rows_per_second": marginal, "rows_per_second_n": rate(n_large, t_large),
            "feature_query_seconds_n": features_only,
            "rows_per_second_n_without_feature_query": rate(n_large, t_large - features_only),
            "peak_mb": peak, "rss_before_mb": section(large, "score")["rss_before_mb"],
            "peak_mb_small": section(small, "score")["peak_mb"],
            "predict_proba_rows_per_second": rate(bare["result"]["rows"], predict_seconds),
            "output": large["result"],
        },
        "script": {
            "predict_seconds_n": script_predict, "shap_rows": shap_n, "shap_seconds": script_shap,
            "shap_rows_per_second": rate(shap_n, script_shap), "seconds_n": script_seconds_n,
            "rows_per_second": script_rate, "shap_extrapolated": shap_n < n_large,
            "predict_peak_mb": section(script, "script_predict")["peak_mb"],
            "shap_peak_mb": section(script, "script_shap")["peak_mb"],
            "shap_additivity_max_error": script["result"]["shap_additivity_max_error"],
        },
        "ratio_to_script": ratio,
        "quality": quality,
    }
    if shap_n < n_large:
        figures.notes.append(f"TreeSHAP timed on the first {shap_n:,} rows and extrapolated to N; the script's "
                             "explanation figures are on those rows")
    figures.notes.append("the script is timed from the feature table (its feature building is not counted); "
                         "balanceit's time includes the features")
    figures.notes.append(f"script drivers = top-3 catalogue features by summed |SHAP| (causes and symptoms alike); "
                         f"HistGradientBoosting defaults, {fitted['script_boosting_iterations']} boosting iterations")
    figures.finish(as_json, threads, profile)
