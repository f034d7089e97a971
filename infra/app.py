"""CDK entry point: ``cdk synth`` runs ``python -m infra.app`` (see cdk.json)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import Annotations, App, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from infra.config import CONTEXT_KEY, PRODUCTION, STAGE_KEY, DeploymentConfig
from infra.packaging import code_asset_dir, dependency_layer_dir
from infra.stack import LeadNurtureStack

STACK_NAME = "LeadNurture"
CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


class DeploymentRefused(ValueError):
    """The deployment config cannot go to production as it is."""


def build_app(
    *, context: Mapping[str, Any] | None = None, outdir: str | None = None
) -> tuple[App, LeadNurtureStack]:
    """The app with its one stack and cdk-nag attached, ready to synthesize.

    ``context`` stands in for cdk.json when the app is built in-process (tests).
    """
    app = App(context=dict(context) if context else None, outdir=outdir)
    config = DeploymentConfig.from_context(app.node.try_get_context(CONTEXT_KEY))
    problems = config.not_for_production()
    if problems and app.node.try_get_context(STAGE_KEY) == PRODUCTION:
        raise DeploymentRefused(
            "A production deployment (-c stage=production) keeps settings for this "
            f"machine; set them in cdk.json's {CONTEXT_KEY!r} block:\n  " + "\n  ".join(problems)
        )
    stack = LeadNurtureStack(
        app,
        STACK_NAME,
        config=config,
        code_dir=code_asset_dir(),
        layer_dir=dependency_layer_dir(),
        description="Serverless B2B lead nurturing: capture, nurture, score, hand off",
    )
    if problems:
        Annotations.of(stack).add_warning_v2(
            "lead-nurture:local-origins",
            "Settings for a local run, refused with -c stage=production: " + "; ".join(problems),
        )
    Tags.of(app).add("project", "lead-nurture")
    # cdk-nag 3 is a validation plugin: unacknowledged findings make synth raise.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def cdk_json_context() -> dict[str, Any]:
    """The context block of cdk.json (feature flags and the ``lead-nurture`` settings)."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
    return context


def main() -> None:
    # Under the CDK CLI, its context (cdk.json plus any -c) overrides this default and
    # CDK_OUTDIR names the output; run directly, the app still gets cdk.json's flags
    # and writes to cdk.out, so `python -m infra.app` and `cdk synth` agree.
    outdir = None if os.environ.get("CDK_OUTDIR") else "cdk.out"
    app, _ = build_app(context=cdk_json_context(), outdir=outdir)
    app.synth()


if __name__ == "__main__":
    main()
