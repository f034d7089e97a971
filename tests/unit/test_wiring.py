"""Every function in the wiring can be built on a given clock and invoked with it.

The local stack relies on this contract to run the same handlers on its movable clock.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

from infra.wiring import FUNCTIONS, FunctionSpec


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.name)
def test_each_function_module_offers_build_and_a_handler_taking_the_app(
    spec: FunctionSpec,
) -> None:
    module_name, _, handler_name = spec.handler.rpartition(".")
    module = importlib.import_module(module_name)

    handler = getattr(module, handler_name)
    build = module.build

    assert list(inspect.signature(handler).parameters) == ["event", "context", "app"]
    assert list(inspect.signature(build).parameters) == ["clock"]


def test_function_names_and_routes_are_unique() -> None:
    names = [spec.name for spec in FUNCTIONS]
    routes = [(r.method, r.path) for spec in FUNCTIONS for r in spec.routes]

    assert len(set(names)) == len(names)
    assert len(set(routes)) == len(routes)


@pytest.mark.parametrize(
    "spec", [s for s in FUNCTIONS if s.stream is not None], ids=lambda s: s.name
)
def test_stream_sources_are_ones_lambda_accepts(spec: FunctionSpec) -> None:
    # The local stack runs whatever is declared; outside these AWS refuses the mapping.
    source = spec.stream
    assert source is not None

    assert 1 <= source.batch_size <= 10_000
    assert 0 <= source.retry_attempts <= 10_000
    assert 60 <= source.max_record_age_s <= 7 * 24 * 60 * 60
    assert source.failure_queue
    assert spec.consumes_stream
    assert spec.stream_filter is source.filter
