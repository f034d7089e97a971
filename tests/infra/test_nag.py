"""cdk-nag (AwsSolutions) and cfn-lint find nothing unexplained in the template."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Validations
from cdk_nag import AwsSolutionsChecks

from tests.infra.conftest import Synthesized, cdk_context, synthesize

pytestmark = pytest.mark.infra

# Each acknowledgement is a reviewed decision: adding one means adding it here too.
EXPECTED_ACKNOWLEDGEMENTS = {
    # Every function: python3.13 is pinned with the layer.
    *(
        (f"Functions/{name}/Function/Resource", "AwsSolutions-L1")
        for name in (
            "capture",
            "unsubscribe",
            "scheduler",
            "sender",
            "engagement",
            "handoff",
            "visits",
            "admin",
        )
    ),
    # The stream consumer: dynamodb:ListStreams needs Resource "*".
    ("Functions/handoff/Role/DefaultPolicy", "AwsSolutions-IAM5[Resource::*]"),
    (
        "Api/AccountLogging/Role/Resource",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
        "<AWS::AccountId>:log-group:*]",
    ),
    ("Api/RestApi/Resource", "AwsSolutions-APIG2"),
    # Public routes: a form posted by visitors, and links opened from emails.
    ("Api/RestApi/Default/leads/POST/Resource", "AwsSolutions-APIG4"),
    ("Api/RestApi/Default/leads/POST/Resource", "AwsSolutions-COG4"),
    ("Api/RestApi/Default/leads/OPTIONS/Resource", "AwsSolutions-APIG4"),
    ("Api/RestApi/Default/unsubscribe/GET/Resource", "AwsSolutions-APIG4"),
    ("Api/RestApi/Default/unsubscribe/GET/Resource", "AwsSolutions-COG4"),
    ("Api/RestApi/Default/unsubscribe/POST/Resource", "AwsSolutions-APIG4"),
    ("Api/RestApi/Default/unsubscribe/POST/Resource", "AwsSolutions-COG4"),
    # An event email's cancellation link: signed, like the unsubscribe link.
    ("Api/RestApi/Default/events/cancel/GET/Resource", "AwsSolutions-APIG4"),
    ("Api/RestApi/Default/events/cancel/GET/Resource", "AwsSolutions-COG4"),
    ("Api/RestApi/Default/events/cancel/POST/Resource", "AwsSolutions-APIG4"),
    ("Api/RestApi/Default/events/cancel/POST/Resource", "AwsSolutions-COG4"),
    # The first-party tracking snippet and its beacons, from visitors' browsers.
    ("Api/RestApi/Default/visits/POST/Resource", "AwsSolutions-APIG4"),
    ("Api/RestApi/Default/visits/POST/Resource", "AwsSolutions-COG4"),
    ("Api/RestApi/Default/visits/OPTIONS/Resource", "AwsSolutions-APIG4"),
    ("Api/RestApi/Default/tracker.js/GET/Resource", "AwsSolutions-APIG4"),
    ("Api/RestApi/Default/tracker.js/GET/Resource", "AwsSolutions-COG4"),
    # Admin routes: IAM (SigV4) authorised, so APIG4 passes; COG4 wants Cognito.
    ("Api/RestApi/Default/leads/{lead_id}/GET/Resource", "AwsSolutions-COG4"),
    ("Api/RestApi/Default/leads/{lead_id}/export/GET/Resource", "AwsSolutions-COG4"),
    ("Api/RestApi/Default/leads/{lead_id}/DELETE/Resource", "AwsSolutions-COG4"),
    ("Api/RestApi/Default/leads/{lead_id}/disposition/POST/Resource", "AwsSolutions-COG4"),
    ("Api/RestApi/Default/leads/{lead_id}/purchases/POST/Resource", "AwsSolutions-COG4"),
    # The stream event source's on-failure queue is a dead-letter queue itself.
    ("Functions/handoff/StreamFailures/Resource", "AwsSolutions-SQS3"),
    # Rotating the link-signing key would break unsubscribe links already sent.
    ("Email/SigningSecret/Resource", "AwsSolutions-SMG4"),
}

# cfn-lint warnings that come from CDK itself, not from this app.
ACCEPTED_LINT_WARNINGS = {
    # CDK adds an explicit DependsOn on a function's role next to the GetAtt, so that
    # the role's default policy exists before the function: redundant, not wrong.
    "W3005",
}


def acknowledgements(synthesized: Synthesized) -> dict[tuple[str, str], str]:
    """(construct path below the stack, rule id) -> reason, as recorded in metadata."""
    stack_path = synthesized.stack.node.path
    found: dict[tuple[str, str], str] = {}
    for construct in synthesized.stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                continue
            for rule, reason in entry.data.items():
                path = construct.node.path.removeprefix(f"{stack_path}/")
                found[path, re.sub(r"^annotation::", "", rule, flags=re.IGNORECASE)] = reason
    return found


# The app's own warning (a local run's origins, tests/infra/test_config.py), which the
# report lists with cdk-nag's findings.
OWN_WARNINGS = {"Annotation::lead-nurture:local-origins"}


def findings(assembly_dir: Path) -> list[dict[str, Any]]:
    report = json.loads((assembly_dir / "validation-report.json").read_text())
    return [
        violation
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        if violation["ruleName"] not in OWN_WARNINGS
    ]


def test_synth_with_cdk_nag_leaves_no_finding(synthesized: Synthesized) -> None:
    # The report exists only when a validation plugin ran, so this also shows cdk-nag is on.
    assert findings(synthesized.assembly_dir) == []


def test_nag_pack_run_directly_agrees(synthesized: Synthesized) -> None:
    report = AwsSolutionsChecks().validate_scope(synthesized.stack)
    assert [violation.rule_name for violation in report.violations] == []
    assert report.success


def test_acknowledgements_are_the_reviewed_ones_with_reasons(synthesized: Synthesized) -> None:
    recorded = acknowledgements(synthesized)
    assert set(recorded) == EXPECTED_ACKNOWLEDGEMENTS
    for (path, rule), reason in recorded.items():
        assert len(reason) >= 40, f"{rule} on {path}: say why, specifically"


def test_every_acknowledgement_silences_a_real_finding(
    synthesized: Synthesized, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the acknowledgements the synth fails, on exactly the acknowledged findings."""
    monkeypatch.setattr(Validations, "acknowledge", lambda self, *rules: None)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        synthesize(cdk_context(), tmp_path)

    stack = synthesized.stack.node.path
    raised = {
        (resource["constructPath"].removeprefix(f"{stack}/"), violation["ruleName"])
        for violation in findings(tmp_path)
        for resource in violation["violatingConstructs"]
    }
    for path, rule in acknowledgements(synthesized):
        assert any(
            rule == raised_rule and (raised_path == path or raised_path.startswith(f"{path}/"))
            for raised_path, raised_rule in raised
        ), f"stale acknowledgement {rule} on {path}"
    acknowledged_rules = {rule for _, rule in acknowledgements(synthesized)}
    assert {rule for _, rule in raised} == acknowledged_rules


def test_cfn_lint_finds_no_errors(synthesized: Synthesized) -> None:
    from cfnlint.api import ManualArgs, lint

    matches = lint(
        json.dumps(synthesized.template_json),
        config=ManualArgs(regions=["ap-northeast-1", "us-east-1"]),
    )
    problems = [
        f"{match.rule.id} {match.message} at {'/'.join(map(str, match.path))}"
        for match in matches
        if match.rule.id not in ACCEPTED_LINT_WARNINGS or match.rule.severity == "error"
    ]
    assert problems == []
