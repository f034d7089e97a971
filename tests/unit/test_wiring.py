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
