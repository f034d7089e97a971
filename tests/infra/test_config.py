"""The deployment config: defaults, cdk.json and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from infra.config import (
    CONTEXT_KEY,
    LOG_RETENTION_DAYS,
    DeploymentConfig,
    Resources,
    function_environment,
)
from infra.wiring import FUNCTIONS, QUEUES, SENDER, TOPICS
from tests.infra.conftest import cdk_context

pytestmark = pytest.mark.infra


def test_cdk_json_spells_out_the_defaults() -> None:
    assert cdk_context()[CONTEXT_KEY] == DeploymentConfig().model_dump()


def test_a_cdk_json_file_is_read_for_its_settings_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "cdk.json"
    assert DeploymentConfig.from_cdk_json(path) == DeploymentConfig()  # no file: defaults
    settings = {"sender": {**DeploymentConfig().sender.model_dump(), "product_name": "SalesFlow"}}
    path.write_text(json.dumps({"app": "x", "context": {CONTEXT_KEY: settings}}), "utf-8")
    assert DeploymentConfig.from_cdk_json(path).sender.product_name == "SalesFlow"
    path.write_text(json.dumps({"context": {CONTEXT_KEY: {"frequency_cap": -1}}}), "utf-8")
    with pytest.raises(ValidationError):
        DeploymentConfig.from_cdk_json(path)


def test_defaults() -> None:
    config = DeploymentConfig.from_context(None)
    assert config.cors_origins == ["http://localhost:3000"]
    assert config.redirect_origins == ["http://localhost:3000"]
    throttling = config.throttling
    assert (throttling.forms.rate_limit, throttling.forms.burst_limit) == (20, 40)
    assert (throttling.opt_out.rate_limit, throttling.opt_out.burst_limit) == (50, 100)
    assert config.consent_required_forms == ["newsletter", "download", "trial"]
    assert config.consent_version == "2026-01"
    assert config.max_body_bytes == 32768
    assert config.default_timezone == "Asia/Tokyo"
    assert config.log_retention_days == 30
    assert config.sender.product_name == "Flowlane"
    # below SES's review rates (5% bounces, 0.1% complaints), over a day of enough sends
    reputation = config.reputation
    assert (reputation.bounce_rate_percent, reputation.complaint_rate_percent) == (4, 0.08)
    assert (reputation.window_hours, reputation.min_sends) == (24, 500)


@pytest.mark.parametrize(
    "override",
    [
        {"cors_origins": ["https://www.example.co.jp/contact"]},  # a URL, not an origin
        {"redirect_origins": ["www.example.co.jp"]},
        {"cors_origins": []},
        {"consent_required_forms": ["newsletter,trial"]},
        {"throttling": {"opt_out": {"rate_limit": 50, "burst_limit": 40}}},
        {"throttling": {"forms": {"rate_limit": 0, "burst_limit": 40}}},
        {"throttle_rate_limit": 20},  # the old key
        {"log_retention_days": 31},
        {"max_body_bytes": 0},
        {"cors_origin": ["https://www.example.co.jp"]},  # misspelt key
        {"sender": {"product_name": ""}},
        {"sender": {"product_name": "Tsumiki\r\nBcc: x@example.com"}},  # would end the subject
        {"sender": {"product_name": " Tsumiki"}},
        # an alarm at or above the rate SES reviews an account at comes too late
        {"reputation": {"bounce_rate_percent": 5}},
        {"reputation": {"complaint_rate_percent": 0.1}},
        {"reputation": {"window_hours": 48}},
        {"reputation": {"min_sends": 0}},
    ],
)
def test_refuses_what_would_deploy_wrong(override: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DeploymentConfig.from_context(override)


def test_every_accepted_retention_maps_to_a_cdk_value() -> None:
    from infra.constructs.observability import RETENTION_BY_DAYS

    assert set(RETENTION_BY_DAYS) == LOG_RETENTION_DAYS


RESOURCES = Resources(
    table_name="leads",
    api_url="https://api.example.co.jp/v1/",
    configuration_set="nurture",
    queue_urls={q.name: f"https://sqs.example/{q.name}" for q in QUEUES},
    topic_arns={t: f"arn:aws:sns:ap-northeast-1:123456789012:{t}" for t in TOPICS},
    signing_secret_arn="arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:s",
)


def test_the_product_name_reaches_the_sender_and_its_templates() -> None:
    from functions.sender.handler import SenderSettings

    config = DeploymentConfig.from_context({"sender": {"product_name": "Tsumiki クラウド"}})
    environment = function_environment(SENDER, config, RESOURCES)
    assert environment["SENDER_PRODUCT_NAME"] == "Tsumiki クラウド"
    profile = SenderSettings.from_env(environment).profile()
    assert profile.product_name == "Tsumiki クラウド"
    assert profile.company_name == config.sender.company_name


def test_only_functions_that_send_email_learn_the_sender() -> None:
    for spec in FUNCTIONS:
        environment = function_environment(spec, DeploymentConfig(), RESOURCES)
        assert ("SENDER_PRODUCT_NAME" in environment) == spec.sends_email, spec.name


def test_the_local_defaults_are_not_for_production() -> None:
    problems = DeploymentConfig.from_context(None).not_for_production()
    assert problems == [
        "cors_origins: http://localhost:3000 (an https origin of the site is needed)",
        "redirect_origins: http://localhost:3000 (an https origin of the site is needed)",
    ]
    site = {
        "cors_origins": ["https://www.example.co.jp"],
        "redirect_origins": ["https://www.example.co.jp", "http://lp.example.co.jp"],
        "public_api_url": "http://api.example.co.jp/",
    }
    assert DeploymentConfig.from_context(site).not_for_production() == [
        "redirect_origins: http://lp.example.co.jp (an https origin of the site is needed)",
        "public_api_url: http://api.example.co.jp/ (https is needed)",
    ]
    https = {"cors_origins": ["https://127.0.0.1"], "redirect_origins": ["https://x.example"]}
    assert DeploymentConfig.from_context(https).not_for_production() == [
        "cors_origins: https://127.0.0.1 (an https origin of the site is needed)"
    ]


def test_a_production_synth_refuses_local_origins_with_what_to_change() -> None:
    from infra.app import DeploymentRefused, build_app, cdk_json_context

    context = {**cdk_json_context(), "stage": "production"}
    with pytest.raises(DeploymentRefused) as refused:
        build_app(context=context)
    message = str(refused.value)
    assert "cdk.json's 'lead-nurture' block" in message
    assert "cors_origins: http://localhost:3000" in message
    assert "redirect_origins: http://localhost:3000" in message
