"""MLflow tracking and the model registry: log a training run, gate promotion, move aliases.

Tracking uses the workspace's sqlite store and artifact folder, so nothing reaches the network.
A new version becomes `champion` only when it is not worse than the current champion on its own
held-out rows and on the warehouse's reference set (within the configured tolerances); otherwise it
becomes `challenger` and the run records why.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import sqlite3
import tempfile
import warnings
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from balanceit.config import Settings, masked_uri

if TYPE_CHECKING:  # MLflow, plotting, training and pandas load only where a model is registered, not to read the registry
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

    from balanceit.models.terms import AdditiveTerms
    from balanceit.models.train import TrainingResult

CHAMPION, CHALLENGER = "champion", "challenger"
PREVIOUS_CHAMPION_TAG = "previous_champion"
TRAINING_INGESTION_PARAM = "training_ingestion"

# MLflow hints that integer columns cannot hold missing values; the feature table's counts never miss.
warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the workspace and make sure the experiment keeps artifacts there too (a tracking
    server decides where its artifacts go: `--serve-artifacts` proxies them)."""
    import mlflow

    uri = settings.mlflow_tracking_uri
    if masked_uri(uri) != uri:  # MLflow prints each run's link with the URI as given, password and all
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(settings.experiment_name) is None:
        if uri.startswith(("http://", "https://")):
            mlflow.create_experiment(settings.experiment_name)
        else:
            mlflow.create_experiment(settings.experiment_name,
                                     artifact_location=settings.mlflow_artifacts_path.as_uri())
    mlflow.set_experiment(settings.experiment_name)
    return mlflow.MlflowClient()


@dataclass
class Registration:
    run_id: str
    version: str
    alias: str
    reason: str
    metrics: dict[str, float]


def _figures(result: TrainingResult, holdout_X: pd.DataFrame, y_holdout: np.ndarray,
             bins: pd.DataFrame) -> dict[str, Figure]:
    """ROC (beside the gradient-boosted peer), calibration (of `bins`) and per-feature importance plots."""
    from matplotlib.figure import Figure
    from sklearn.metrics import RocCurveDisplay

    roc = Figure(figsize=(5, 5))
    ax = roc.subplots()
    RocCurveDisplay.from_predictions(y_holdout, result.holdout_risk, name=result.chosen, ax=ax)
    RocCurveDisplay.from_predictions(y_holdout, result.peer_holdout_risk, name="gradient_boosting", ax=ax)
    calibration = Figure(figsize=(5, 5))
    ax = calibration.subplots()
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.plot(bins["predicted_mean"], bins["observed_rate"], marker="o")
    ax.set(xlabel="predicted risk", ylabel="observed share", title="Calibration (held-out)")
    importance = Figure(figsize=(6, 7), layout="tight")
    ax = importance.subplots()
    spread = result.model.contributions(holdout_X).abs().mean().sort_values()
    ax.barh(spread.index, spread.to_numpy())
    ax.set(title="Mean |contribution| to the logit (held-out)")
    return {"roc.png": roc, "calibration.png": calibration, "importance.png": importance}


def _auc_lower_bound(auc: float, y: np.ndarray) -> float:
    """Lower end of AUC's 95% interval (Hanley & McNeil standard error)."""
    positives, negatives = float((y == 1).sum()), float((y == 0).sum())
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc ** 2) + (negatives - 1) * (q2 - auc ** 2)) / (
        positives * negatives)
    return auc - 1.96 * math.sqrt(max(variance, 0.0))


@dataclass
class Reference:
    """The gate's fixed rows (see `data.labels`): model input and the labels frozen in the set."""

    X: pd.DataFrame
    y: np.ndarray


def _comparison(where: str, candidate: dict[str, float], incumbent: dict[str, float], version: str,
                settings: Settings) -> tuple[bool, str]:
    """Whether the candidate is not worse than the champion on one set of rows, and the figures saying so."""
    auc_ok = candidate["roc_auc"] >= incumbent["roc_auc"] - settings.promotion_auc_tolerance
    brier_ok = candidate["brier"] <= incumbent["brier"] + settings.promotion_brier_tolerance
    return auc_ok and brier_ok, (f"{where}: AUC {candidate['roc_auc']:.4f} vs champion v{version} "
                                 f"{incumbent['roc_auc']:.4f}, Brier {candidate['brier']:.4f} vs {incumbent['brier']:.4f}")


def _gate(client: MlflowClient, settings: Settings, result: TrainingResult, holdout_X: pd.DataFrame,
          y: np.ndarray, reference: Reference | None) -> tuple[str, str, dict[str, float]]:
    """Decide the new version's alias: it must have skill, and not be worse than the champion on its own
    held-out rows nor on the reference set, whose labels no new file can change."""
    from mlflow.exceptions import MlflowException

    from balanceit.models.metrics import classification_metrics

    candidate = result.holdout_metrics
    lower = _auc_lower_bound(candidate["roc_auc"], y)
    if lower <= 0.5:
        return CHALLENGER, (f"kept as challenger: no skill shown (held-out AUC {candidate['roc_auc']:.4f}, "
                            f"95% interval reaches {lower:.4f} <= 0.5)"), {}
    try:
        champion = client.get_model_version_by_alias(settings.registered_model_name, CHAMPION)
    except MlflowException:
        return CHAMPION, "first model: nothing to compare with", {}
    incumbent, _ = load_model(settings, str(champion.version))
    verdicts = [_comparison("own held-out rows", candidate,
                            classification_metrics(y, incumbent.predict_proba(holdout_X)[:, 1]),
                            champion.version, settings)]
    figures: dict[str, float] = {}
    if reference is not None and len(set(reference.y.tolist())) == 2:
        on_reference = classification_metrics(reference.y, result.model.predict_proba(reference.X)[:, 1])
        champion_on_reference = classification_metrics(reference.y, incumbent.predict_proba(reference.X)[:, 1])
        verdicts.append(_comparison(f"reference set ({len(reference.y)} rows)", on_reference,
                                    champion_on_reference, champion.version, settings))
        figures = {"reference_roc_auc": on_reference["roc_auc"], "reference_brier": on_reference["brier"],
                   "champion_reference_roc_auc": champion_on_reference["roc_auc"],
                   "champion_reference_brier": champion_on_reference["brier"]}
    comparison = "; ".join(text for _, text in verdicts)
    if all(ok for ok, _ in verdicts):
        return CHAMPION, f"promoted: not worse than the champion ({comparison})", figures
    worse = " and ".join(text.split(":")[0] for ok, text in verdicts if not ok)
    return CHALLENGER, f"kept as challenger: worse than the champion on {worse} ({comparison})", figures


def log_and_register(result: TrainingResult, answers: pd.DataFrame, features: pd.DataFrame,
                     labels: pd.Series, settings: Settings, data_description: str,
                     reference: Reference | None = None, training_ingestion: str | None = None) -> Registration:
    """Log the run (params, metrics, plots, data digest, features, model) and apply the gate; with
    `training_ingestion` (the file's ingestion id), `rollback` can restore the labels this version saw."""
    import mlflow
    from mlflow.models import ModelSignature, infer_signature

    from balanceit.features.catalogue import CATALOGUE, model_input
    from balanceit.models.metrics import calibration_bins
    from balanceit.models.pyfunc import RiskModel, package_code, request_contract

    client = configure(settings)
    holdout_X = model_input(features.loc[result.holdout_index])
    y_holdout = labels.loc[result.holdout_index].astype(int).to_numpy()
    bins = calibration_bins(y_holdout, result.holdout_risk)
    dataset = mlflow.data.from_pandas(features.drop(columns=["submitted_at"]), name="training_features")
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
        mlflow.log_params({
            "chosen_model": result.chosen, "n_knots": result.model.n_knots, "C": result.model.C,
            "training_rows": len(features), "training_data": data_description,
            "training_digest": dataset.digest, "cv_folds": settings.cv_folds,
            "holdout_fraction": settings.holdout_fraction, "random_seed": settings.random_seed,
            "reference_rows": 0 if reference is None else len(reference.y),
            TRAINING_INGESTION_PARAM: training_ingestion or "",
        })
        metrics = {**result.holdout_metrics, **result.truth_metrics,
                   **{f"peer_{k}": v for k, v in result.peer_holdout_metrics.items()},
                   "fit_seconds": result.fit_seconds}
        mlflow.log_metrics({k: v for k, v in metrics.items() if k != "n"})
        cv_means = result.cross_validation.groupby("candidate")[["roc_auc", "brier", "fit_seconds"]].mean()
        for candidate, row in cv_means.iterrows():
            mlflow.log_metrics({f"cv_{candidate}_{k}": float(v) for k, v in row.items()})
        for name, figure in _figures(result, holdout_X, y_holdout, bins).items():
            mlflow.log_figure(figure, name)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            result.cross_validation.to_csv(folder / "cross_validation.csv", index=False)
            result.subgroups.to_csv(folder / "subgroup_metrics.csv", index=False)
            bins.to_csv(folder / "calibration.csv", index=False)
            (folder / "features.json").write_text(json.dumps(
                [{"name": f.name, "label": f.label, "role": f.role, "sources": f.sources,
                  "columns": f.column_names} for f in CATALOGUE], indent=2))
            mlflow.log_artifacts(tmp)
        from balanceit.reports.build import TRAINING_FIGURES, training_figures  # build reads the registry

        mlflow.log_dict(training_figures(result.model, features, settings), TRAINING_FIGURES)

        from balanceit.models.score import request_rows

        example = request_rows(answers.head(3))
        pyfunc = RiskModel(result.model, settings, warm_up_rows=example.head(1))
        with tempfile.TemporaryDirectory() as tmp:
            signature = ModelSignature(outputs=infer_signature(example, pyfunc.predict(None, example)).outputs)
            info = mlflow.pyfunc.log_model(
                name="model", python_model=pyfunc, signature=signature, input_example=example,
                metadata={"input_contract": request_contract()},
                code_paths=[str(package_code(Path(tmp)))],
                registered_model_name=settings.registered_model_name)
        version = str(info.registered_model_version)
        alias, reason, reference_figures = _gate(client, settings, result, holdout_X, y_holdout, reference)
        mlflow.log_metrics(reference_figures)
        metrics.update(reference_figures)
        mlflow.set_tags({"gate": alias, "gate_reason": reason, "model_version": version})
    _set_alias(client, settings, alias, version)
    return Registration(run.info.run_id, version, alias, reason, metrics)


def _set_alias(client: MlflowClient, settings: Settings, alias: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    name = settings.registered_model_name
    if alias == CHAMPION:
        with suppress(MlflowException):  # the first champion has no previous one
            client.set_registered_model_tag(name, PREVIOUS_CHAMPION_TAG,
                                            client.get_model_version_by_alias(name, CHAMPION).version)
    client.set_registered_model_alias(name, alias, version)


def promote(settings: Settings, version: str) -> None:
    """Make `version` the champion by hand (the previous champion is remembered for rollback)."""
    if version not in {row["version"] for row in list_versions(settings)}:
        raise LookupError(f"no version '{version}' of {settings.registered_model_name}: "
                          "`balanceit models` lists them")
    _set_alias(configure(settings), settings, CHAMPION, version)


def rollback(settings: Settings) -> str:
    """Give the champion alias back to the version that held it before."""
    client = configure(settings)
    model = client.get_registered_model(settings.registered_model_name)
    previous = model.tags.get(PREVIOUS_CHAMPION_TAG)
    if not previous:
        raise RuntimeError("no previous champion to roll back to")
    _set_alias(client, settings, CHAMPION, previous)
    return previous


def training_ingestion(settings: Settings, version: str) -> str | None:
    """The ingestion a version was trained on (None: all labelled rows of the warehouse at the time)."""
    client = configure(settings)
    run = client.get_run(client.get_model_version(settings.registered_model_name, version).run_id)
    return run.data.params.get(TRAINING_INGESTION_PARAM) or None


# One row per registered version, as MLflow's client gives them (metrics are the run's latest values).
_VERSIONS_SQL = """
    SELECT v.version, v.run_id, v.creation_time, coalesce(v.storage_location, v.source),
           (SELECT value FROM latest_metrics WHERE run_uuid = v.run_id AND key = 'roc_auc'),
           (SELECT value FROM latest_metrics WHERE run_uuid = v.run_id AND key = 'brier'),
           (SELECT value FROM tags WHERE run_uuid = v.run_id AND key = 'gate_reason'),
           (SELECT group_concat(alias) FROM registered_model_aliases a WHERE a.name = v.name AND a.version = v.version)
    FROM model_versions v WHERE v.name = ? AND v.current_stage != 'Deleted_Internal' ORDER BY v.version"""


def _versions(settings: Settings) -> list[dict[str, object]]:
    """Every version with its aliases, run, metrics, gate reason and model folder (None: not on this machine)."""
    uri = settings.mlflow_tracking_uri
    if not uri.startswith("sqlite:///"):  # a sqlite store is read directly: importing MLflow takes ~3 s
        return _versions_from_client(settings)
    store = Path(uri.removeprefix("sqlite:///")).resolve()
    if not store.exists():
        return []
    with closing(sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)) as con:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'model_versions'").fetchone():
            return []
        rows = con.execute(_VERSIONS_SQL, [settings.registered_model_name]).fetchall()
    return [{"version": str(version), "aliases": sorted(aliases.split(",")) if aliases else [], "run_id": run_id,
             "created": created, "roc_auc": roc_auc, "brier": brier, "gate_reason": gate_reason,
             "folder": Path(unquote(urlsplit(location).path)) if location.startswith("file:") else None}
            for version, run_id, created, location, roc_auc, brier, gate_reason, aliases in rows]


def _versions_from_client(settings: Settings) -> list[dict[str, object]]:
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = mlflow.MlflowClient()
    name = settings.registered_model_name
    try:
        model = client.get_registered_model(name)
    except MlflowException:
        return []
    rows = []
    for version in client.search_model_versions(f"name='{name}'"):
        run = client.get_run(version.run_id)
        rows.append({"version": str(version.version),
                     "aliases": sorted(a for a, v in model.aliases.items() if str(v) == str(version.version)),
                     "run_id": version.run_id, "created": version.creation_timestamp,
                     "roc_auc": run.data.metrics.get("roc_auc"), "brier": run.data.metrics.get("brier"),
                     "gate_reason": run.data.tags.get("gate_reason"), "folder": None})
    return sorted(rows, key=lambda r: int(r["version"]))


def list_versions(settings: Settings) -> list[dict[str, object]]:
    return [{key: value for key, value in row.items() if key != "folder"} for row in _versions(settings)]


def champion_version(settings: Settings) -> str:
    for row in _versions(settings):
        if CHAMPION in row["aliases"]:
            return row["version"]
    raise LookupError("no champion model yet: run `balanceit train` (or `balanceit demo`) first")


class _Unused:
    """A pickled object that evaluating the model never touches (MLflow's, sklearn's): its state, kept unread."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        self.__dict__.update(state if isinstance(state, dict) else {})


class _PickledBSpline(_Unused):
    """scipy's `BSpline` in a model pickled before `SplineCurve` kept its own knots: what the curve reads of it."""

    t = property(lambda self: self._t)
    c = property(lambda self: self._c)


class _ModelOnly(pickle.Unpickler):
    """Reads the pyfunc's pickle (a `RiskModel` holding the additive model) without importing MLflow, and
    with `evaluation_only` the additive model as `AdditiveTerms`, without importing sklearn or scipy either."""

    def __init__(self, file, evaluation_only: bool) -> None:
        super().__init__(file)
        self.evaluation_only = evaluation_only

    def find_class(self, module: str, name: str):
        package = module.partition(".")[0]
        if package == "mlflow" or (module, name) == ("balanceit.models.pyfunc", "RiskModel"):
            return _Unused
        if self.evaluation_only and package in ("sklearn", "scipy"):
            return _PickledBSpline if (package, name) == ("scipy", "BSpline") else _Unused
        if self.evaluation_only and module == "balanceit.models.additive":
            from balanceit.models import terms

            return terms.AdditiveTerms if name == "AdditiveRiskModel" else getattr(terms, name, _Unused)
        return super().find_class(module, name)


def load_model(settings: Settings, version: str | None = None) -> tuple[AdditiveTerms, str]:
    """A registered version (default: the champion) and its number, from the registry's own artifact.

    On this machine the pyfunc's pickle is read directly: MLflow's loading costs seconds (its imports, the
    pyfunc's warm-up prediction), sklearn's import another. Behind a tracking server MLflow downloads it.
    """
    version = version or champion_version(settings)
    row = next((row for row in _versions(settings) if row["version"] == str(version)), None)
    if row is not None and row["folder"] is not None:
        with open(row["folder"] / "python_model.pkl", "rb") as stored:
            model = _ModelOnly(stored, evaluation_only=True).load().model
            if "_column_terms" not in model.__dict__:  # pickled before its first prediction: sklearn builds them
                stored.seek(0)
                model = _ModelOnly(stored, evaluation_only=False).load().model
        return model, str(version)
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{settings.registered_model_name}/{version}")
    return loaded.unwrap_python_model().model, str(version)
