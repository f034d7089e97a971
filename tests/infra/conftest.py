"""Synthesize the CDK app once per session, in-process and with cdk-nag attached.

The app is built by ``infra.app.build_app`` with the context of ``cdk.json``, as the
CDK CLI would pass it, so the tests see the template a ``cdk synth`` produces.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aws_cdk.assertions import Template

    from infra.stack import LeadNurtureStack

ROOT = Path(__file__).resolve().parents[2]


def cdk_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return context


@dataclass(frozen=True)
class Synthesized:
    stack: LeadNurtureStack
    template: Template
    template_json: dict[str, Any]
    assembly_dir: Path


def synthesize(context: dict[str, Any], outdir: Path) -> Synthesized:
    """Build and synthesize the app; raises if cdk-nag reports anything unacknowledged."""
    from aws_cdk.assertions import Template

    from infra.app import build_app

    app, stack = build_app(context=context, outdir=str(outdir))
    app.synth()
    template = Template.from_stack(stack)
    return Synthesized(stack, template, dict(template.to_json()), outdir)


def pytest_configure(config: pytest.Config) -> None:
    # jsii prints a Node.js support banner on every start; it only clutters the output.
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(cdk_context(), tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def template(synthesized: Synthesized) -> Template:
    return synthesized.template


@pytest.fixture(scope="session")
def template_json(synthesized: Synthesized) -> dict[str, Any]:
    return synthesized.template_json
