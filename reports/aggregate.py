"""Population figures for the reports, as pure pandas functions of a scored frame (a row per person:
`risk`, `band`, the answers segments group by, `driver_1..3`, maybe `survey_weight`).

Shares and means are weighted when every row has a positive weight; counts (`n`) are always people. A
segment with fewer than `min_group_size` people is never shown (see `segment_table`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WEIGHT = "survey_weight"
BANDS = ("low", "moderate", "high")
NOT_ANSWERED = "not answered"
DRIVER_COLUMNS = ("driver_1", "driver_2", "driver_3")
PSI_EPSILON = 1e-4
PSI_WATCH_FROM = 0.1
PSI_DRIFT_ABOVE = 0.25

# Segment dimensions: key -> heading shown in the report.
SEGMENT_DIMENSIONS = {"occupation": "Occupation", "sitting": "Sitting per day", "exercise_type": "Exercise type",
                      "stretching": "Stretching", "strength": "Strength training", "age_band": "Age", "sex": "Sex"}
SITTING_BANDS = ("under 4 h", "4–6 h", "6–8 h", "over 8 h")
STRETCHING_HABITS = ("never", "1–2 days a week", "3+ days a week")
AGE_BANDS = ("16–34", "35–44", "45–64", "65+")
STRENGTH_LABELS = {"none": "no strength training", "balanced": "balanced", "unbalanced": "unbalanced"}
EXERCISE_LABELS = {"none": "no exercise"}
SEGMENT_FIGURES = ("mean_risk", "mean_risk_ci_low", "mean_risk_ci_high",
                   "share_high", "share_high_ci_low", "share_high_ci_high")


def survey_weights(frame: pd.DataFrame) -> np.ndarray | None:
    """The frame's survey weights when every row has a finite positive one, else None: unweighted."""
    if WEIGHT not in frame or not len(frame):
        return None
    weights = pd.to_numeric(frame[WEIGHT], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return weights if np.isfinite(weights).all() and (weights > 0).all() else None


def band_counts(scored: pd.DataFrame) -> pd.DataFrame:
    """People per risk band (all three bands, in order) with their (weighted) share."""
    weights = weights_or_ones(scored)
    people = scored["band"].value_counts().reindex(BANDS, fill_value=0)
    share = weights.groupby(scored["band"]).sum().reindex(BANDS, fill_value=0) / weights.sum()
    return pd.DataFrame({"band": BANDS, "n": people.to_numpy(), "share": share.to_numpy()})


def mean_risk(scored: pd.DataFrame) -> float:
    """The population's (weighted) mean risk."""
    return float(np.average(scored["risk"].astype(float), weights=weights_or_ones(scored)))


def risk_histogram(scored: pd.DataFrame, min_group_size: int, bins: int = 20) -> dict[str, list]:
    """People per risk bin over 0-1 ({"bin_edges", "counts"}): equal-width bins, a bin joined to the next until
    it holds `min_group_size` people and the rest can too, so no bar describes fewer (the tails are sparse)."""
    counts, edges = np.histogram(scored["risk"].clip(0, 1), bins=bins, range=(0.0, 1.0))
    cuts = [0]
    for end in range(1, bins):
        if counts[cuts[-1]:end].sum() >= min_group_size and counts[end:].sum() >= min_group_size:
            cuts.append(end)
    return {"bin_edges": edges[[*cuts, bins]].tolist(), "counts": np.add.reduceat(counts, cuts).tolist()}


def suppressed_groups(counts: pd.Series, min_group_size: int) -> pd.Series:
    """Groups of one breakdown to hide: those under `min_group_size` people, then the next-smallest until two
    or more hidden hold `min_group_size` between them (else the total minus the shown gives one away)."""
    hidden = counts < min_group_size
    while hidden.any() and not hidden.all() and (hidden.sum() < 2 or counts[hidden].sum() < min_group_size):
        hidden[counts[~hidden].idxmin()] = True
    return hidden


def segment_table(scored: pd.DataFrame, dimension: str, min_group_size: int) -> pd.DataFrame:
    """Mean risk and high-band share with 95% intervals per group of one of SEGMENT_DIMENSIONS, missing
    answers a "not answered" group. Groups `suppressed_groups` hides show no figure and n_shown "< {min}"
    (too small) or "≥ {min}" (hidden beside them)."""
    people = scored.reset_index(drop=True)
    table = _order_groups(_segment_figures(people, _segment_labels(people, dimension)).set_index("label"))
    table = table.rename_axis("label").reset_index()
    table["label"] = table["label"].astype(str)

    too_small = table["n"] < min_group_size
    hidden = suppressed_groups(table["n"], min_group_size)
    table["suppressed"] = hidden
    table["n_shown"] = table["n"].map("{:,}".format)
    table.loc[hidden & ~too_small, "n_shown"] = f"≥ {min_group_size}"
    table.loc[too_small, "n_shown"] = f"< {min_group_size}"
    table["n"] = table["n"].astype("Int64").mask(table["suppressed"])
    table[list(SEGMENT_FIGURES)] = table[list(SEGMENT_FIGURES)].mask(table["suppressed"])
    return table[["label", "n", "n_shown", *SEGMENT_FIGURES, "suppressed"]]


def _segment_figures(people: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """`estimates.segment_estimates` per group; a dimension where one person can be in several groups
    (exercise types) is estimated group by group, each group a domain of the whole sample."""
    from balanceit.reports.estimates import segment_estimates  # the survey libraries, only where estimated

    if not labels.index.has_duplicates:
        figures = segment_estimates(people, labels)
        if isinstance(labels.dtype, pd.CategoricalDtype):  # bands keep their order (`_order_groups`)
            figures["label"] = pd.Categorical(figures["label"], categories=labels.cat.categories)
        return figures
    groups = [segment_estimates(people, labels[labels == label].groupby(level=0).first().reindex(people.index))
              for label in labels.unique()]
    return pd.concat(groups, ignore_index=True)


def segment_tables(scored: pd.DataFrame, min_group_size: int) -> list[dict]:
    """Every segment dimension someone answered as {"key", "title", "rows"}: the report context's `segments`.

    A question nobody answered (a survey that did not ask it) would be one "not answered" group of
    everyone: the report's summary names such questions once instead."""
    tables = {key: segment_table(scored, key, min_group_size) for key in SEGMENT_DIMENSIONS}
    return [{"key": key, "title": SEGMENT_DIMENSIONS[key], "rows": table.to_dict("records")}
            for key, table in tables.items() if not (table["label"] == NOT_ANSWERED).all()]


def segments_json(segments: list[dict]) -> list[dict]:
    """`segment_tables` for `report population --json`: per group its label, people (as shown when hidden)
    and each figure as {"value", "ci_low", "ci_high"}, null where hidden or unknown."""
    def figure(row: dict, name: str) -> dict[str, float | None]:
        values = (row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"])
        return dict(zip(("value", "ci_low", "ci_high"), (None if pd.isna(v) else float(v) for v in values)))

    return [{"key": segment["key"], "title": segment["title"],
             "groups": [{"label": row["label"], "people": row["n_shown"] if row["suppressed"] else int(row["n"]),
                         "suppressed": bool(row["suppressed"]),
                         "mean_risk": figure(row, "mean_risk"), "share_high_risk": figure(row, "share_high")}
                        for row in segment["rows"]]}
            for segment in segments]


def top_drivers(scored: pd.DataFrame) -> pd.DataFrame:
    """Per feature, the (weighted) share of people with it among their drivers and first: most common first."""
    people = scored.reset_index(drop=True)
    weights = weights_or_ones(people)
    pairs = (people[list(DRIVER_COLUMNS)].melt(ignore_index=False, value_name="feature")["feature"]
             .dropna().rename_axis("person").reset_index().drop_duplicates())
    total = weights.sum()
    in_top3 = weights.reindex(pairs["person"]).groupby(pairs["feature"].to_numpy()).sum() / total
    first = weights.groupby(people["driver_1"]).sum() / total
    table = pd.DataFrame({"share_top3": in_top3, "share_first": first}).fillna(0.0).rename_axis("feature")
    return table.reset_index().sort_values(["share_top3", "feature"], ascending=[False, True], ignore_index=True)


def psi(expected: pd.Series, actual: pd.Series, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected` (0: same distribution): numbers cut at
    quantiles of `expected`, categories (and booleans) by their shares. Missing values are a bin of their
    own, so a jump in unanswered questions shows as drift; an empty bin counts as epsilon (a finite log)."""
    e, a = (np.clip(shares, PSI_EPSILON, None) for shares in _bin_shares(expected, actual, bins))
    return float(np.sum((a - e) * np.log(a / e)))


def drift_table(train_features: pd.DataFrame, batch_features: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """PSI of each feature in the batch against training, with a level: ok, watch or drift."""
    values = [psi(train_features[column], batch_features[column]) for column in columns]
    levels = ["drift" if v > PSI_DRIFT_ABOVE else "watch" if v >= PSI_WATCH_FROM else "ok" for v in values]
    return pd.DataFrame({"feature": list(columns), "psi": values, "level": levels})


def weights_or_ones(scored: pd.DataFrame) -> pd.Series:
    """`survey_weights`, or 1 for everyone when the frame is unweighted."""
    weights = survey_weights(scored)
    return pd.Series(1.0 if weights is None else weights, index=scored.index)


def _segment_labels(people: pd.DataFrame, dimension: str) -> pd.Series:
    """Each person's group label for one dimension; a person may appear once per exercise type."""
    if dimension in ("occupation", "sex"):
        return _answer_labels(people[dimension])
    if dimension == "strength":
        return _answer_labels(people["strength_training"].replace(STRENGTH_LABELS))
    if dimension == "exercise_type":
        types = people["exercise_types"].astype("string").str.split(r"[;|]", regex=True).explode()
        return _answer_labels(types.str.strip().replace(EXERCISE_LABELS).str.replace("_", " "))
    if dimension == "sitting":
        hours = _numbers(people["sitting_hours_per_day"])
        return _banded(hours, [hours < 4, hours < 6, hours <= 8, hours > 8], SITTING_BANDS)
    if dimension == "stretching":
        days = _numbers(people["stretching_days_per_week"])
        return _banded(days, [days == 0, days < 3, days >= 3], STRETCHING_HABITS)
    if dimension == "age_band":
        age = _numbers(people["age"])
        return _banded(age, [age < 35, age < 45, age < 65, age >= 65], AGE_BANDS)
    raise ValueError(f"unknown segment dimension {dimension!r}; expected one of {list(SEGMENT_DIMENSIONS)}")


def _numbers(answers: pd.Series) -> pd.Series:
    """Answers as plain floats: missing (or unreadable) becomes NaN, which compares False everywhere."""
    return pd.to_numeric(answers, errors="coerce").astype(float)


def _answer_labels(answers: pd.Series) -> pd.Series:
    labels = answers.astype("string").str.strip()
    return labels.mask(labels.isna() | (labels == ""), NOT_ANSWERED).astype(str)


def _banded(values: pd.Series, conditions: list[pd.Series], labels: tuple[str, ...]) -> pd.Series:
    """The first matching band's label; values that match none (missing) are "not answered"."""
    chosen = np.select([c.to_numpy() for c in conditions], labels, default=NOT_ANSWERED)
    return pd.Series(pd.Categorical(chosen, categories=[*labels, NOT_ANSWERED]), index=values.index)


def _order_groups(table: pd.DataFrame) -> pd.DataFrame:
    """Banded dimensions keep their natural order; others go largest first; "not answered" last."""
    if isinstance(table.index, pd.CategoricalIndex):
        return table.sort_index()
    unanswered = table.index == NOT_ANSWERED
    ranked = table[~unanswered].sort_values("n", ascending=False, kind="stable")
    return pd.concat([ranked, table[unanswered]])


def _bin_shares(expected: pd.Series, actual: pd.Series, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Shares of each series per bin, with missing values as the last bin."""
    if pd.api.types.is_numeric_dtype(expected) and not pd.api.types.is_bool_dtype(expected):
        known = _numbers(expected).dropna()
        inner_edges = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)))[1:-1] if len(known) else []

        def shares(values: pd.Series) -> np.ndarray:
            numbers = _numbers(values)
            positions = np.searchsorted(inner_edges, numbers.dropna(), side="left")
            counts = np.bincount(positions, minlength=len(inner_edges) + 1)
            return np.append(counts, numbers.isna().sum()) / max(len(values), 1)

        return shares(expected), shares(actual)

    def labelled(values: pd.Series) -> pd.Series:
        return values.astype("string").fillna("\0missing")

    categories = sorted(set(labelled(expected)) | set(labelled(actual)))
    return tuple(labelled(values).value_counts().reindex(categories, fill_value=0).to_numpy() / max(len(values), 1)
                 for values in (expected, actual))
