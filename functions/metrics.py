"""What a function invocation counted, written as CloudWatch metrics: one embedded
metric format (EMF) document on stdout, which Lambda's log group turns into metrics.

Each call builds its own ``EphemeralMetrics``: Powertools' ``Metrics`` keeps its metrics
in class attributes shared by every instance in the process, so where several functions
run in one process (the local stack, the tests) one would flush another's counts.
``aws_lambda_powertools.metrics`` costs about 3 ms to import, and the package's own
``__init__`` (which every Powertools import runs) imports it already.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from shared.domain.metrics import NAMESPACE


def emit_counts(service: str, counts: Mapping[str, int]) -> None:
    """Write the counts with the dimension ``service``; zeros are left out, and nothing
    is written when every count is zero."""
    counted = {name: int(value) for name, value in counts.items() if value}
    if not counted:
        return
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=service)
    for name, value in counted.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.flush_metrics()
