"""The CloudWatch metrics a function wrote: embedded metric format (EMF) documents on
stdout, each checked for the shape CloudWatch Logs extracts metrics from."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from shared.domain.metrics import NAMESPACE


def emf_documents(out: str) -> list[dict[str, Any]]:
    """The EMF documents among the lines of captured stdout (log lines are skipped)."""
    documents = []
    for line in out.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            documents.append(document)
    return documents


def metric_counts(out: str) -> dict[tuple[str, str], float]:
    """The counts in the EMF documents of captured stdout, summed by (service, metric)."""
    totals: Counter[tuple[str, str]] = Counter()
    for document in emf_documents(out):
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == NAMESPACE
        # One dimension, the function: CloudWatch bills each name and dimension set.
        assert directive["Dimensions"] == [["service"]]
        assert isinstance(document["_aws"]["Timestamp"], int)
        for metric in directive["Metrics"]:
            assert metric["Unit"] == "Count"
            values = document[metric["Name"]]
            for value in values if isinstance(values, list) else [values]:
                totals[document["service"], metric["Name"]] += value
    return dict(totals)
