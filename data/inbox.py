"""Sorting files dropped into the inbox by what they hold."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from balanceit.data.readers import FileRefused, read_table

InboxFile = Literal["activity", "labelled", "unlabelled", "unreadable"]


def classify(path: Path) -> InboxFile:
    """Wearable days, a labelled questionnaire (training data) or an unlabelled one (to score)."""
    try:
        frame = read_table(path)
    except FileRefused:
        return "unreadable"
    if {"date", "activitydate"} & set(frame.columns):
        return "activity"
    if "imbalance" in frame.columns and frame["imbalance"].notna().any():
        return "labelled"
    return "unlabelled"
